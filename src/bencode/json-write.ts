/**
 * A bencode value as tagged JSON text (the mapping is described in json.ts).
 *
 * Written as text by hand: a JS object would reorder integer-like keys ("10" before "2" in a
 * bencoded dict must stay so) and JSON.stringify cannot write BigInt. Nesting lives in an
 * explicit stack, not on the JS stack: the recursive writer this replaces overflowed Node 20's
 * default stack near 2,500 nested lists, below the 5,000 levels `bdecode --max-depth` allows.
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
 * to call (toJson is synchronous and calls no user code): allocating them per call or per dict
 * made bdecode's peak RSS twice as high on a stream of small values (more garbage, more of it
 * promoted) and toJson ~12% slower on a torrent of 5,000 file dicts than the recursive writer
 * this replaces. A frame lets go of the value's parts when it closes.
 */
interface Frame {
  kind: typeof LIST | typeof OBJECT | typeof PAIRS;
  /** the list itself, or `vals` */
  items: ReadonlyArray<BValue | undefined>;
  /** a dict's values, in order */
  vals: Array<BValue | undefined>;
  /** OBJECT: `"key":` before each value; PAIRS: `[key,` (JSON text, tagged as needed) */
  prefixes: string[];
  /** how many items (the arrays may be longer) */
  n: number;
  i: number;
  /** the level of its closing bracket (0 = top), for indentation */
  level: number;
}

const FRAMES: Frame[] = [];
let busy = false;
const NO_ITEMS: readonly BValue[] = [];
/** `\n` and the indentation of each level, for the indent last used */
const NEWLINES: string[] = [];
let newlinesOf = '';

function newline(level: number): string {
  if (newlinesOf === '') return '';
  while (NEWLINES.length <= level) NEWLINES.push('\n' + newlinesOf.repeat(NEWLINES.length));
  return NEWLINES[level]!;
}

function bytesJson(b: Buffer): string {
  return isUtf8(b) ? JSON.stringify(b.toString('utf8')) : `{"$hex":"${b.toString('hex')}"}`;
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

/** A bencode value as one line of compact JSON, or indented with `indent` per level. */
export function toJson(v: BValue, indent = ''): string {
  if (typeof v === 'number' || typeof v === 'bigint') return intJson(v);
  if (Buffer.isBuffer(v)) return bytesJson(v);
  if (indent !== newlinesOf) {
    newlinesOf = indent;
    NEWLINES.length = 0;
  }
  // (a call from inside a call, say from a Map subclass's getter, gets frames of its own)
  const frames = busy ? [] : FRAMES;
  busy = true;
  try {
    return write(v, frames, indent ? ': ' : ':', indent ? ', ' : ',');
  } catch (e) {
    // a value that is not a BValue: let go of the frames, whatever they hold
    frames.length = 0;
    throw e;
  } finally {
    busy = frames !== FRAMES;
  }
}

function write(v: BValue, frames: Frame[], colon: string, comma: string): string {
  let depth = 0;
  let out = '';
  let cur: BValue = v;
  let level = 0;
  for (;;) {
    // write the opening of `cur` (a container at `level`), or all of it
    if (typeof cur === 'number' || typeof cur === 'bigint') {
      out += intJson(cur);
    } else if (Buffer.isBuffer(cur)) {
      out += bytesJson(cur);
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
      openDict(f, cur, colon, comma);
      f.level = level;
      out += f.kind === OBJECT ? '{' : '{' + newline(level + 1) + '"$dict"' + colon + '[';
    }
    // the next value: the next item of the innermost open container, closing finished ones
    for (;;) {
      if (depth === 0) return out;
      const f = frames[depth - 1]!;
      if (f.i < f.n) {
        const i = f.i++;
        if (f.kind === LIST) {
          out += (i > 0 ? ',' : '') + newline(f.level + 1);
          level = f.level + 1;
        } else if (f.kind === OBJECT) {
          out += (i > 0 ? ',' : '') + newline(f.level + 1) + f.prefixes[i]!;
          level = f.level + 1;
        } else {
          // a pair's `]` follows its value
          out += (i > 0 ? '],' : '') + newline(f.level + 2) + f.prefixes[i]!;
          level = f.level + 2;
        }
        cur = f.items[i]!;
        break;
      }
      if (f.kind === LIST) out += newline(f.level) + ']';
      else if (f.kind === OBJECT) out += newline(f.level) + '}';
      else out += ']' + newline(f.level + 1) + ']' + newline(f.level) + '}';
      // let go of the value's parts
      if (f.kind !== LIST) for (let k = 0; k < f.n; k++) f.vals[k] = undefined;
      f.items = NO_ITEMS;
      depth--;
    }
  }
}

function frameAt(frames: Frame[], depth: number): Frame {
  let f = frames[depth];
  if (f === undefined) {
    f = { kind: LIST, items: NO_ITEMS, vals: [], prefixes: [], n: 0, i: 0, level: 0 };
    frames.push(f);
  }
  return f;
}

/** Opens a non-empty dict: an object when every key is UTF-8, else the $dict pairs. */
function openDict(f: Frame, d: BDict, colon: string, comma: string): void {
  const vals = f.vals;
  const prefixes = f.prefixes;
  let n = 0;
  f.kind = OBJECT;
  // (keys() then values() is faster than destructuring entries)
  for (const k of d.keys()) {
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
    for (const k of d.keys()) prefixes[n++] = '[' + bytesJson(Buffer.from(k, 'latin1')) + comma;
  }
  n = 0;
  for (const val of d.values()) vals[n++] = val;
  f.items = vals;
  f.n = n;
  f.i = 0;
}
