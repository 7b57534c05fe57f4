/**
 * The in-memory form of bencode values.
 *
 * - integers: `number` when within ±(2^53−1), `bigint` beyond (never lossy);
 * - byte strings: `Buffer` (the decoder hands out zero-copy slices of its input where it can);
 * - lists: arrays;
 * - dicts: `Map` keyed by *binary strings*: each key byte is one UTF-16 code unit (Node's
 *   'latin1' encoding), so any byte sequence is a key, the map keeps the file's key order, and a
 *   `__proto__` or `constructor` key is ordinary data. For ASCII keys this is the plain text
 *   (`dict.get('info')`); use {@link keyOf} for keys given as UTF-8 text.
 */
export type BValue = number | bigint | Buffer | BValue[] | BDict;
export type BDict = Map<string, BValue>;

/** Anything the encoder accepts: decoded values plus JS-friendly forms (UTF-8 strings, plain objects). */
export type BEncodable =
  | number
  | bigint
  | string
  | Uint8Array
  | readonly BEncodable[]
  | ReadonlyMap<string, BEncodable>
  | { readonly [key: string]: BEncodable };

/** The binary-string form of a dict key given as UTF-8 text. */
export function keyOf(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** The raw bytes of a binary-string dict key. */
export function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'latin1');
}

export function isDict(v: unknown): v is BDict {
  return v instanceof Map;
}

export function isBytes(v: unknown): v is Buffer {
  return Buffer.isBuffer(v);
}

export function isInteger(v: unknown): v is number | bigint {
  return (typeof v === 'number' && Number.isSafeInteger(v)) || typeof v === 'bigint';
}

/** Byte range [start, end) of a value in the decoder's input (absolute stream offsets). */
export interface Span {
  start: number;
  end: number;
}
