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
