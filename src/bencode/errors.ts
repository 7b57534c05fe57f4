/** A bencode input error at a byte offset: the first byte that cannot be accepted (0-based). */
export class BencodeError extends Error {
  readonly offset: number;
  /** The message without the offset, e.g. "expected ':' after string length". */
  readonly reason: string;
  constructor(offset: number, reason: string) {
    super(`byte ${offset}: ${reason}`);
    this.name = 'BencodeError';
    this.offset = offset;
    this.reason = reason;
  }
}

/** A value that has no bencode form (a float, null, a boolean…), with where it was found. */
export class EncodeError extends Error {
  readonly path: string;
  constructor(path: string, reason: string) {
    super(path ? `at ${path}: ${reason}` : reason);
    this.name = 'EncodeError';
    this.path = path;
  }
}

/** Characters of a key or string quoted in a message: the rest is counted, not shown. */
const QUOTE_MAX = 100;

/**
 * `text` as JSON for a message, cut after its first characters: keys can be megabytes long, and
 * quoting one whole made a line of hundreds of MiB (or an internal error past V8's string limit).
 */
export function quoted(text: string): string {
  if (text.length <= QUOTE_MAX) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, QUOTE_MAX))}… (${text.length} characters)`;
}

/** Path components shown at each end of a long path: a message must stay one readable line. */
const PATH_ENDS = 8;

/**
 * The JSON path of keys and indexes (`.info.files[3]`), its middle elided when it is long: a
 * value 5,000 levels deep would otherwise give an error line of 15,000 characters.
 */
export function pathText(parts: ReadonlyArray<string | number>): string {
  const one = (p: string | number): string => (typeof p === 'number' ? `[${p}]` : p.length <= QUOTE_MAX ? `.${p}` : `.${quoted(p)}`);
  if (parts.length <= 2 * PATH_ENDS + 1) return parts.map(one).join('');
  const head = parts.slice(0, PATH_ENDS).map(one).join('');
  const tail = parts.slice(-PATH_ENDS).map(one).join('');
  return `${head}…(${parts.length - 2 * PATH_ENDS} more)…${tail}`;
}
