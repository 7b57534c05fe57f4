/**
 * A bencode value as tagged JSON text (the mapping is described in json.ts).
 *
 * Written as text by hand: a JS object would reorder integer-like keys ("10" before "2" in a
 * bencoded dict must stay so) and JSON.stringify cannot write BigInt. Nesting lives in an
 * explicit stack, not on the JS stack: the recursive writer this replaces overflowed Node 20's
 * default stack near 2,500 nested lists, below the 5,000 levels `bdecode --max-depth` allows.
 *
 * The text may also be longer than a JS string can be (V8: 2^29−24 = 536,870,888 characters):
 * the limits let through a list of two 128 MiB non-UTF-8 strings (over 512 Mi characters of
 * hex), or 90 MB of control characters (JSON.stringify writes each as 6: `\u0001`).
 * toJsonChunks hands the text over in pieces of about `chunkSize` characters instead, and
 * writes a byte string longer than a slice (64 KiB, or chunkSize if smaller) slice by slice:
 * no string it builds is much longer than a chunk, whatever the value. toJson is the same
 * writer with chunks of unlimited size.
 */
import { isUtf8 } from 'node:buffer';
import type { BDict, BValue } from './types.js';

const ASCII = /^[\x00-\x7f]*$/;
const MAX_SAFE = 9007199254740991n;

const LIST = 0;
/** a dict whose keys are all UTF-8: a JSON object */
const OBJECT = 1;
/** a dict with a key that is not UTF-8: {"$dict":[[key, value], …]} */
const PAIRS = 2;

/**
 * One open container: what is left of it to write. Frames and their arrays are kept from call
 * to call (a call from inside a call gets frames of its own): allocating them per call or per
 * dict made bdecode's peak RSS twice as high on a stream of small values (more garbage, more
 * of it promoted) and toJson ~12% slower on a torrent of 5,000 file dicts than the recursive
 * writer this replaces. A frame lets go of the value's parts when it closes.
 */
interface Frame {
  kind: typeof LIST | typeof OBJECT | typeof PAIRS;
  /** the list itself, or `vals` */
  items: ReadonlyArray<BValue | undefined>;
  /** a dict's values, in order */
  vals: Array<BValue | undefined>;
  /**
   * OBJECT: `"key":` before each value; PAIRS: `[key,` (JSON text, tagged as needed). '' for a
   * key longer than a slice, written slice by slice from `bigKeys` instead.
   */
  prefixes: string[];
  /** the keys whose prefix is '', at their index; null when there are none */
  bigKeys: string[] | null;
  /** how many items (the arrays may be longer) */
  n: number;
  i: number;
  /** the level of its closing bracket (0 = top), for indentation */
  level: number;
}

/** Characters past which toJsonChunks hands its text over, by default. */
export const JSON_CHUNK_SIZE = 1024 * 1024;
/** Byte strings (and keys) longer than this, or than the chunk size, are written slice by slice. */
const SLICE = 64 * 1024;
const NO_EMIT = (): void => {};

const FRAMES: Frame[] = [];
let busy = false;
const NO_ITEMS: readonly BValue[] = [];

/** `\n` and the indentation of each level, for one indent */
interface Newlines {
  indent: string;
  lines: string[];
}
/** the table of the indent last used (a call keeps the one it started with) */
let newlines: Newlines = { indent: '', lines: [] };

function newline(nl: Newlines, level: number): string {
  if (nl.indent === '') return '';
  const lines = nl.lines;
  while (lines.length <= level) lines.push('\n' + nl.indent.repeat(lines.length));
  return lines[level]!;
}

function bytesJson(b: Buffer): string {
  return isUtf8(b) ? JSON.stringify(b.toString('utf8')) : `{"$hex":"${b.toString('hex')}"}`;
}

/**
 * `out` followed by the JSON of `b`, written a slice of at most `slice` bytes at a time, and
 * handed to `emit` whenever it passes `chunk` characters. With `dollar`, a text that starts
 * with `$` gets one more (an object key).
 */
function bigBytesJson(b: Buffer, dollar: boolean, out: string, emit: (chunk: string) => void, chunk: number, slice: number): string {
  const n = b.length;
  if (!isUtf8(b)) {
    out += '{"$hex":"';
    for (let s = 0; s < n; s += slice) {
      out += b.toString('hex', s, Math.min(n, s + slice));
      if (out.length >= chunk) {
        emit(out);
        out = '';
      }
    }
    return out + '"}';
  }
  out += dollar && b[0] === 0x24 ? '"$' : '"';
  for (let s = 0; s < n; ) {
    // each slice ends on a character boundary (never before a continuation byte), so no
    // character, and no surrogate pair of one beyond U+FFFF, is cut; JSON.stringify escapes
    // character by character, so the slices' escapes make the whole string's
    let e = Math.min(n, s + slice);
    while (e < n && (b[e]! & 0xc0) === 0x80) e++;
    out += JSON.stringify(b.toString('utf8', s, e)).slice(1, -1);
    s = e;
    if (out.length >= chunk) {
      emit(out);
      out = '';
    }
  }
  return out + '"';
}

/** UTF-8 text of a binary-string key, or null when its bytes are not UTF-8. */
function keyText(k: string): string | null {
  if (ASCII.test(k)) return k;
  const b = Buffer.from(k, 'latin1');
  return isUtf8(b) ? b.toString('utf8') : null;
}

function intJson(v: number | bigint): string {
  if (typeof v === 'number') return String(v === 0 ? 0 : v);
  return v >= -MAX_SAFE && v <= MAX_SAFE ? String(v) : `{"$int":"${v}"}`;
}

/**
 * A bencode value as one line of compact JSON, or indented with `indent` per level. Throws a
 * RangeError when the text would be longer than V8 lets a string be (2^29−24 characters):
 * toJsonChunks writes any value.
 */
export function toJson(v: BValue, indent = ''): string {
  if (typeof v === 'number' || typeof v === 'bigint') return intJson(v);
  if (Buffer.isBuffer(v) && v.length <= SLICE) return bytesJson(v);
  return run(v, indent, NO_EMIT, Infinity);
}

/**
 * The text of toJson(v, indent), in pieces: each time the text written passes `chunkSize`
 * characters it goes to `emit` (a piece can pass it by a slice's worth of a byte string: up
 * to 6 × 64 KiB characters when every byte is a control character), and the rest, not
 * emitted, is returned (to append a newline to). Any value the decoder's limits let through
 * can be written so. When `emit` throws, the value is left part written.
 */
export function toJsonChunks(v: BValue, emit: (chunk: string) => void, indent = '', chunkSize = JSON_CHUNK_SIZE): string {
  if (!(chunkSize >= 1)) throw new RangeError('chunkSize must be at least 1');
  if (typeof v === 'number' || typeof v === 'bigint') return intJson(v);
  return run(v, indent, emit, chunkSize);
}

function run(v: BValue, indent: string, emit: (chunk: string) => void, chunk: number): string {
  if (indent !== newlines.indent) newlines = { indent, lines: [] };
  // (a call from inside a call, say from a Map subclass's getter or from `emit`, gets frames of its own)
  const frames = busy ? [] : FRAMES;
  busy = true;
  try {
    return write(v, frames, newlines, indent ? ': ' : ':', indent ? ', ' : ',', emit, chunk, Math.min(SLICE, chunk));
  } catch (e) {
    // a value that is not a BValue, or an emit that threw: let go of the frames, whatever they hold
    frames.length = 0;
    throw e;
  } finally {
    busy = frames !== FRAMES;
  }
}

function write(v: BValue, frames: Frame[], nl: Newlines, colon: string, comma: string, emit: (chunk: string) => void, chunk: number, slice: number): string {
  let depth = 0;
  let out = '';
  let cur: BValue = v;
  let level = 0;
  for (;;) {
    // write the opening of `cur` (a container at `level`), or all of it
    if (typeof cur === 'number' || typeof cur === 'bigint') {
      out += intJson(cur);
    } else if (Buffer.isBuffer(cur)) {
      if (cur.length <= slice) out += bytesJson(cur);
      else out = bigBytesJson(cur, false, out, emit, chunk, slice);
    } else if (Array.isArray(cur)) {
      if (cur.length === 0) out += '[]';
      else {
        out += '[';
        const f = frameAt(frames, depth++);
        f.kind = LIST;
        f.items = cur;
        f.n = cur.length;
        f.i = 0;
        f.level = level;
      }
    } else if (cur.size === 0) {
      out += '{}';
    } else {
      const f = frameAt(frames, depth++);
      openDict(f, cur, colon, comma, slice);
      f.level = level;
      out += f.kind === OBJECT ? '{' : '{' + newline(nl, level + 1) + '"$dict"' + colon + '[';
    }
    // the next value: the next item of the innermost open container, closing finished ones
    for (;;) {
      if (out.length >= chunk) {
        emit(out);
        out = '';
      }
      if (depth === 0) return out;
      const f = frames[depth - 1]!;
      if (f.i < f.n) {
        const i = f.i++;
        if (f.kind === LIST) {
          out += (i > 0 ? ',' : '') + newline(nl, f.level + 1);
          level = f.level + 1;
        } else if (f.kind === OBJECT) {
          const p = f.prefixes[i]!;
          out += (i > 0 ? ',' : '') + newline(nl, f.level + 1) + p;
          if (p === '') out = bigBytesJson(Buffer.from(f.bigKeys![i]!, 'latin1'), true, out, emit, chunk, slice) + colon;
          level = f.level + 1;
        } else {
          // a pair's `]` follows its value
          const p = f.prefixes[i]!;
          out += (i > 0 ? '],' : '') + newline(nl, f.level + 2) + p;
          if (p === '') out = bigBytesJson(Buffer.from(f.bigKeys![i]!, 'latin1'), false, out + '[', emit, chunk, slice) + comma;
          level = f.level + 2;
        }
        cur = f.items[i]!;
        break;
      }
      if (f.kind === LIST) out += newline(nl, f.level) + ']';
      else if (f.kind === OBJECT) out += newline(nl, f.level) + '}';
      else out += ']' + newline(nl, f.level + 1) + ']' + newline(nl, f.level) + '}';
      // let go of the value's parts
      if (f.kind !== LIST) {
        for (let k = 0; k < f.n; k++) f.vals[k] = undefined;
        f.bigKeys = null;
      }
      f.items = NO_ITEMS;
      depth--;
    }
  }
}

function frameAt(frames: Frame[], depth: number): Frame {
  let f = frames[depth];
  if (f === undefined) {
    f = { kind: LIST, items: NO_ITEMS, vals: [], prefixes: [], bigKeys: null, n: 0, i: 0, level: 0 };
    frames.push(f);
  }
  return f;
}

/**
 * Opens a non-empty dict: an object when every key is UTF-8, else the $dict pairs. A key
 * longer than `slice` bytes gets no prefix text here: it is written slice by slice.
 */
function openDict(f: Frame, d: BDict, colon: string, comma: string, slice: number): void {
  const vals = f.vals;
  const prefixes = f.prefixes;
  let n = 0;
  f.kind = OBJECT;
  f.bigKeys = null;
  // (keys() then values() is faster than destructuring entries)
  for (const k of d.keys()) {
    if (k.length > slice) {
      if (!ASCII.test(k) && !isUtf8(Buffer.from(k, 'latin1'))) {
        f.kind = PAIRS;
        break;
      }
      (f.bigKeys ??= [])[n] = k;
      prefixes[n++] = '';
      continue;
    }
    const t = keyText(k);
    if (t === null) {
      f.kind = PAIRS;
      break;
    }
    prefixes[n++] = JSON.stringify(t.charCodeAt(0) === 0x24 ? '$' + t : t) + colon;
  }
  if (f.kind === PAIRS) {
    // some key is not UTF-8: the $dict form keeps every key byte and the order
    n = 0;
    f.bigKeys = null;
    for (const k of d.keys()) {
      if (k.length > slice) {
        (f.bigKeys ??= [])[n] = k;
        prefixes[n++] = '';
      } else {
        prefixes[n++] = '[' + bytesJson(Buffer.from(k, 'latin1')) + comma;
      }
    }
  }
  n = 0;
  for (const val of d.values()) vals[n++] = val;
  f.items = vals;
  f.n = n;
  f.i = 0;
}
