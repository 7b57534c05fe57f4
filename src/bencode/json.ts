/**
 * The tagged JSON mapping of bencode (design.md §2, man torrent-tools-formats(7)):
 *
 * - a byte string that is valid UTF-8 → JSON string; any other → {"$hex":"…"}
 * - an integer beyond ±(2^53−1) → {"$int":"…"}
 * - a dict whose keys are all UTF-8 → JSON object in the same key order, a key starting with
 *   `$` written with one more `$`; otherwise {"$dict":[[key, value], …]} with tagged keys.
 *
 * Written as text by hand: a JS object would reorder integer-like keys ("10" before "2" in a
 * bencoded dict must stay so) and JSON.stringify cannot write BigInt.
 */
import { isUtf8 } from 'node:buffer';
import { EncodeError } from './errors.js';
import type { BDict, BValue } from './types.js';

const ASCII = /^[\x00-\x7f]*$/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const INT_TEXT = /^-?(?:0|[1-9][0-9]*)$/;
const HEX_TEXT = /^(?:[0-9a-fA-F]{2})*$/;
const MAX_SAFE = 9007199254740991n;

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
  return write(v, indent, '\n');
}

function write(v: BValue, indent: string, nl: string): string {
  if (typeof v === 'number' || typeof v === 'bigint') return intJson(v);
  if (Buffer.isBuffer(v)) return bytesJson(v);
  const inner = indent ? nl + indent : '';
  const sep = indent ? ',' + inner : ',';
  const colon = indent ? ': ' : ':';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    let s = '[' + inner;
    for (let i = 0; i < v.length; i++) {
      if (i > 0) s += sep;
      s += write(v[i]!, indent, inner);
    }
    return s + (indent ? nl : '') + ']';
  }
  const d = v as BDict;
  if (d.size === 0) return '{}';
  const texts: string[] = [];
  let allText = true;
  for (const k of d.keys()) {
    const t = keyText(k);
    if (t === null) {
      allText = false;
      break;
    }
    texts.push(t);
  }
  if (allText) {
    let s = '{' + inner;
    let i = 0;
    for (const val of d.values()) {
      if (i > 0) s += sep;
      const t = texts[i++]!;
      s += JSON.stringify(t.charCodeAt(0) === 0x24 ? '$' + t : t) + colon + write(val, indent, inner);
    }
    return s + (indent ? nl : '') + '}';
  }
  // some key is not UTF-8: the $dict form keeps every key byte and the order
  const inner2 = indent ? inner + indent : '';
  const sep2 = indent ? ',' + inner2 : ',';
  let s = '{' + inner + '"$dict"' + colon + '[' + inner2;
  let i = 0;
  for (const [k, val] of d) {
    if (i++ > 0) s += sep2;
    const kb = Buffer.from(k, 'latin1');
    s += '[' + bytesJson(kb) + (indent ? ', ' : ',') + write(val, indent, inner2) + ']';
  }
  return s + (indent ? inner : '') + ']' + (indent ? nl : '') + '}';
}

export interface FromJsonOptions {
  /** Containers nested deeper than this are refused. Default 512. */
  maxDepth?: number;
}

/**
 * The bencode value a JSON value stands for (the inverse of {@link toJson}). Reads the tagged
 * forms liberally (a `$int` within range, a `$hex` that is valid UTF-8). Throws
 * {@link EncodeError} naming the JSON path of anything that has no bencode form.
 */
export function fromJson(j: unknown, options: FromJsonOptions = {}): BValue {
  return from(j, '', 0, options.maxDepth ?? 512);
}

function str(s: string, path: string): Buffer {
  if (LONE_SURROGATE.test(s)) throw new EncodeError(path, 'string has a lone UTF-16 surrogate: it has no UTF-8 form (use {"$hex":…})');
  return Buffer.from(s, 'utf8');
}

function only(o: object, tag: string, path: string): void {
  if (Object.keys(o).length !== 1) throw new EncodeError(path, `an object with "${tag}" must have no other key`);
}

function hex(v: unknown, path: string): Buffer {
  if (typeof v !== 'string' || !HEX_TEXT.test(v)) throw new EncodeError(path, '"$hex" must be a string of hex digit pairs');
  return Buffer.from(v, 'hex');
}

function from(j: unknown, path: string, depth: number, maxDepth: number): BValue {
  switch (typeof j) {
    case 'string':
      return str(j, path);
    case 'number':
      if (!Number.isInteger(j)) throw new EncodeError(path, `bencode has no fractions: ${j}`);
      if (!Number.isSafeInteger(j)) throw new EncodeError(path, `integer ${j} is beyond ±(2^53−1) and may have lost digits in JSON: write it as {"$int":"…"}`);
      return j === 0 ? 0 : j;
    case 'boolean':
      throw new EncodeError(path, `bencode has no booleans: ${j}`);
    case 'object':
      break;
    default:
      throw new EncodeError(path, `bencode has no form for a ${typeof j}`);
  }
  if (j === null) throw new EncodeError(path, 'bencode has no null');
  if (depth >= maxDepth) throw new EncodeError(path, `nesting deeper than ${maxDepth} levels`);
  if (Array.isArray(j)) {
    const out: BValue[] = new Array(j.length);
    for (let i = 0; i < j.length; i++) out[i] = from(j[i], `${path}[${i}]`, depth + 1, maxDepth);
    return out;
  }
  const o = j as Record<string, unknown>;
  if (Object.hasOwn(o, '$hex')) {
    only(o, '$hex', path);
    return hex(o['$hex'], path + '.$hex');
  }
  if (Object.hasOwn(o, '$int')) {
    only(o, '$int', path);
    const t = o['$int'];
    if (typeof t !== 'string' || !INT_TEXT.test(t) || t === '-0') {
      throw new EncodeError(path + '.$int', '"$int" must be a decimal integer string with no leading zeros');
    }
    if (t.length > 4096) throw new EncodeError(path + '.$int', 'integer longer than 4096 digits');
    const b = BigInt(t);
    return b >= -MAX_SAFE && b <= MAX_SAFE ? Number(b) : b;
  }
  const d: BDict = new Map();
  if (Object.hasOwn(o, '$dict')) {
    only(o, '$dict', path);
    const pairs = o['$dict'];
    if (!Array.isArray(pairs)) throw new EncodeError(path + '.$dict', '"$dict" must be an array of [key, value] pairs');
    for (let i = 0; i < pairs.length; i++) {
      const p: unknown = pairs[i];
      const pp = `${path}.$dict[${i}]`;
      if (!Array.isArray(p) || p.length !== 2) throw new EncodeError(pp, 'expected a [key, value] pair');
      const kj: unknown = p[0];
      let kb: Buffer;
      if (typeof kj === 'string') kb = str(kj, pp + '[0]');
      else if (kj !== null && typeof kj === 'object' && !Array.isArray(kj) && Object.hasOwn(kj, '$hex')) {
        only(kj, '$hex', pp + '[0]');
        kb = hex((kj as Record<string, unknown>)['$hex'], pp + '[0].$hex');
      } else throw new EncodeError(pp + '[0]', 'a dict key must be a string or {"$hex":…}');
      const k = kb.toString('latin1');
      if (d.has(k)) throw new EncodeError(pp + '[0]', `duplicate dict key ${JSON.stringify(kb.toString('utf8'))}`);
      d.set(k, from(p[1], pp + '[1]', depth + 1, maxDepth));
    }
    return sorted(d);
  }
  for (const key of Object.keys(o)) {
    let real = key;
    if (key.charCodeAt(0) === 0x24) {
      if (key.charCodeAt(1) !== 0x24) {
        throw new EncodeError(path, `unknown tag ${JSON.stringify(key)} (a key that starts with '$' is written with one more '$')`);
      }
      real = key.slice(1);
    }
    const kb = str(real, path);
    d.set(kb.toString('latin1'), from(o[key], `${path}.${key}`, depth + 1, maxDepth));
  }
  return sorted(d);
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
