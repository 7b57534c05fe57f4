/**
 * The bencode value a tagged JSON value stands for (the inverse of toJson; the mapping is
 * described in json.ts).
 *
 * Nesting lives in an explicit stack, not on the JS stack: the recursive reader this replaces
 * overflowed Node 20's default stack near 1,800 nested objects, below the 5,000 levels
 * `bencode --max-depth` allows. Paths for error messages are built from the stack only when
 * there is an error (building one per value cost more than the conversion itself).
 */
import { isUtf8 } from 'node:buffer';
import { EncodeError, pathText, quoted } from './errors.js';
import { findDuplicateKey, jsonShape } from './json-scan.js';
import type { BDict, BValue } from './types.js';

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const INT_TEXT = /^-?(?:0|[1-9][0-9]*)$/;
const ASCII = /^[\x00-\x7f]*$/;
const MAX_SAFE = 9007199254740991n;
const DEFAULT_MAX_DEPTH = 512;

type Path = ReadonlyArray<string | number>;
/** no more path: the value being read itself */
const HERE: Path = [];

export interface FromJsonOptions {
  /** Containers nested deeper than this are refused. Default 512. */
  maxDepth?: number;
}

/**
 * The bencode value a JSON value stands for (the inverse of {@link toJson}). Reads the tagged
 * forms liberally (a `$int` within range, a `$hex` that is valid UTF-8). Throws
 * {@link EncodeError} naming the JSON path of anything that has no bencode form.
 *
 * A parsed value cannot show repeated object keys (JSON.parse kept the last): use
 * {@link fromJsonText} to have them refused.
 */
export function fromJson(j: unknown, options: FromJsonOptions = {}): BValue {
  return new Reader(options.maxDepth ?? DEFAULT_MAX_DEPTH).read(j);
}

/**
 * The bencode value a JSON text stands for: {@link fromJson} of `JSON.parse(text)`, and an
 * {@link EncodeError} for an object that repeats a key, or for nesting too deep to be within
 * `maxDepth` (checked before the text is parsed). A SyntaxError when it is not JSON.
 */
export function fromJsonText(text: string, options: FromJsonOptions = {}): BValue {
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  // a bencode level takes at most three JSON levels ({"$dict":[[k, v]]}), and a leaf one more
  // ({"$hex":…}): deeper JSON cannot be within maxDepth, whatever it holds
  const maxNesting = 3 * maxDepth + 1;
  const shape = jsonShape(text, maxNesting);
  if (shape.tooDeepAt >= 0) {
    throw new EncodeError('', `nesting deeper than ${maxDepth} levels (JSON nested more than ${maxNesting} deep at column ${shape.tooDeepAt + 1})`);
  }
  const reader = new Reader(maxDepth);
  const value = reader.read(JSON.parse(text));
  if (reader.keys !== shape.members) {
    // the parsed objects have fewer keys than the text: one was repeated (JSON.parse kept the last)
    const dup = findDuplicateKey(text);
    if (dup !== null) throw new EncodeError(pathText(dup.path), `duplicate key ${quoted(dup.key)}`);
  }
  return value;
}

/** The bytes of a `$hex` text, or null when it is not hex digit pairs. */
function hex(v: unknown): Buffer | null {
  // Buffer.from stops at the first bad digit or an odd one out, so for ASCII text it took
  // every pair iff the length matches: 5x cheaper than a regex test of a 56 KiB `pieces`
  // string first. (It reads some non-ASCII characters as digits: '\u0661' as 'a'.)
  if (typeof v !== 'string' || Buffer.byteLength(v, 'utf8') !== v.length) return null;
  const b = Buffer.from(v, 'hex');
  return b.length * 2 === v.length ? b : null;
}

/** A byte string in its JSON form, for messages. */
function shown(b: Buffer): string {
  if (isUtf8(b)) return quoted(b.toString('utf8'));
  return b.length <= 50 ? `{"$hex":"${b.toString('hex')}"}` : `{"$hex":"${b.subarray(0, 50).toString('hex')}…"} (${b.length} bytes)`;
}

const LIST = 0;
const OBJECT = 1;
/** the pairs of {"$dict":[[key, value], …]} */
const PAIRS = 2;

/** One open container: the JSON it comes from, what is built of it so far. */
interface Frame {
  kind: typeof LIST | typeof OBJECT | typeof PAIRS;
  /** LIST: the array; PAIRS: the $dict array; OBJECT: the object's keys */
  src: unknown[];
  obj: Record<string, unknown> | null;
  list: BValue[] | null;
  dict: BDict | null;
  /** OBJECT, PAIRS: the binary-string key of the value being read */
  key: string;
  /** PAIRS: 0 while reading a pair's key, 1 its value (for paths) */
  side: number;
  /** the next item; src[i - 1] is the one being read */
  i: number;
}

class Reader {
  /** keys of all the JSON objects read, tags included: fewer than the text has means a repeat */
  keys = 0;
  private readonly stack: Frame[] = [];

  constructor(private readonly maxDepth: number) {}

  read(root: unknown): BValue {
    const stack = this.stack;
    let j = root;
    for (;;) {
      // a complete value, or undefined when `j` opened a container
      let v = this.leafOrOpen(j);
      for (;;) {
        const f = stack[stack.length - 1];
        if (v !== undefined) {
          if (f === undefined) return v;
          if (f.kind === LIST) f.list![f.i - 1] = v;
          else f.dict!.set(f.key, v);
        }
        if (f!.i < f!.src.length) {
          j = this.next(f!);
          break;
        }
        stack.pop();
        v = f!.list ?? sorted(f!.dict!);
      }
    }
  }

  /** The value of a JSON leaf (tags included), or undefined after opening a frame for a container. */
  private leafOrOpen(j: unknown): BValue | undefined {
    switch (typeof j) {
      case 'string':
        return this.str(j, HERE);
      case 'number':
        if (!Number.isInteger(j)) this.fail(HERE, `bencode has no fractions: ${j}`);
        if (!Number.isSafeInteger(j)) this.fail(HERE, `integer ${j} is beyond ±(2^53−1) and may have lost digits in JSON: write it as {"$int":"…"}`);
        return j === 0 ? 0 : j;
      case 'object':
        break;
      case 'boolean':
        this.fail(HERE, `bencode has no booleans: ${j}`);
      default:
        this.fail(HERE, `bencode has no form for a ${typeof j}`);
    }
    if (j === null) this.fail(HERE, 'bencode has no null');
    if (Array.isArray(j)) {
      this.open(LIST, j, null);
      return undefined;
    }
    const o = j as Record<string, unknown>;
    const keys = Object.keys(o);
    this.keys += keys.length;
    if (Object.hasOwn(o, '$hex')) {
      this.only(keys, '$hex', HERE);
      const b = hex(o['$hex']);
      if (b === null) this.fail(['$hex'], '"$hex" must be a string of hex digit pairs');
      return b;
    }
    if (Object.hasOwn(o, '$int')) {
      this.only(keys, '$int', HERE);
      const t = o['$int'];
      if (typeof t !== 'string' || !INT_TEXT.test(t) || t === '-0') {
        this.fail(['$int'], '"$int" must be a decimal integer string with no leading zeros');
      }
      if (t.length > 4096) this.fail(['$int'], 'integer longer than 4096 digits');
      const b = BigInt(t);
      return b >= -MAX_SAFE && b <= MAX_SAFE ? Number(b) : b;
    }
    if (Object.hasOwn(o, '$dict')) {
      this.only(keys, '$dict', HERE);
      const pairs = o['$dict'];
      if (!Array.isArray(pairs)) this.fail(['$dict'], '"$dict" must be an array of [key, value] pairs');
      this.open(PAIRS, pairs, null);
      return undefined;
    }
    this.open(OBJECT, keys, o);
    return undefined;
  }

  private open(kind: Frame['kind'], src: unknown[], obj: Record<string, unknown> | null): void {
    if (this.stack.length >= this.maxDepth) this.fail(HERE, `nesting deeper than ${this.maxDepth} levels`);
    const list = kind === LIST ? (new Array(src.length) as BValue[]) : null;
    this.stack.push({ kind, src, obj, list, dict: list === null ? new Map() : null, key: '', side: 0, i: 0 });
  }

  /** The next JSON value of the container, its key (if any) checked and set. */
  private next(f: Frame): unknown {
    const i = f.i++;
    if (f.kind === LIST) return f.src[i];
    if (f.kind === OBJECT) {
      const name = f.src[i] as string;
      let real = name;
      if (name.charCodeAt(0) === 0x24) {
        if (name.charCodeAt(1) !== 0x24) {
          this.fail(HERE, `unknown tag ${quoted(name)} (a key that starts with '$' is written with one more '$')`, 1);
        }
        real = name.slice(1);
      }
      f.key = ASCII.test(real) ? real : this.str(real, HERE, 1).toString('latin1');
      return f.obj![name];
    }
    f.side = 0;
    const p: unknown = f.src[i];
    if (!Array.isArray(p) || p.length !== 2) this.fail(HERE, 'expected a [key, value] pair', 1);
    const kj: unknown = p[0];
    let kb: Buffer | null = null;
    if (typeof kj === 'string') kb = this.str(kj, HERE);
    else if (kj !== null && typeof kj === 'object' && !Array.isArray(kj) && Object.hasOwn(kj, '$hex')) {
      const keys = Object.keys(kj);
      this.keys += keys.length;
      this.only(keys, '$hex', HERE);
      kb = hex((kj as Record<string, unknown>)['$hex']);
      if (kb === null) this.fail(['$hex'], '"$hex" must be a string of hex digit pairs');
    } else {
      this.fail(HERE, 'a dict key must be a string or {"$hex":…}');
    }
    const k = kb.toString('latin1');
    if (f.dict!.has(k)) this.fail(HERE, `duplicate dict key ${shown(kb)}`);
    f.side = 1;
    f.key = k;
    return p[1];
  }

  private str(s: string, at: Path, up = 0): Buffer {
    if (LONE_SURROGATE.test(s)) this.fail(at, 'string has a lone UTF-16 surrogate: it has no UTF-8 form (use {"$hex":…})', up);
    return Buffer.from(s, 'utf8');
  }

  private only(keys: string[], tag: string, at: Path): void {
    if (keys.length !== 1) this.fail(at, `an object with "${tag}" must have no other key`);
  }

  /**
   * Throws the error at the value being read plus `at`; `up` levels less for an error about a
   * key (1: the object's path for an error about one of its keys, or a $dict pair's path).
   */
  private fail(at: Path, reason: string, up = 0): never {
    const parts: Array<string | number> = [];
    for (const f of this.stack) {
      if (f.kind === LIST) parts.push(f.i - 1);
      else if (f.kind === OBJECT) parts.push(f.src[f.i - 1] as string);
      else parts.push('$dict', f.i - 1, f.side);
    }
    parts.length -= up;
    throw new EncodeError(pathText(parts.concat(at)), reason);
  }
}

/** The dict in canonical (raw byte) order: JSON objects put integer-like keys first. */
function sorted(d: BDict): BDict {
  let prev: string | null = null;
  for (const k of d.keys()) {
    if (prev !== null && prev > k) return new Map([...d].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
    prev = k;
  }
  return d;
}
