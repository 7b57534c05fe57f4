import { constants, isAscii, isUtf8 } from 'node:buffer';
import { ChunkParserStream, type ChunkParser } from './chunk-parser.js';

/** A parse error at a 1-based line of NDJSON input. */
export class NdjsonError extends Error {
  readonly line: number;
  constructor(line: number, reason: string) {
    super(`${line}: ${reason}`);
    this.name = 'NdjsonError';
    this.line = line;
  }
}

export interface NdjsonLine {
  /** 1-based line number in the input */
  line: number;
  value: unknown;
}

export const DEFAULT_MAX_LINE = 64 * 1024 * 1024;

/**
 * The longest line that can be read, in characters (UTF-16 code units): a line is parsed as
 * one JS string, and V8 lets none be longer (2^29−24 = 536,870,888). A longer line is refused
 * whatever the line limit, naming the line.
 */
export const MAX_LINE_CHARS = constants.MAX_STRING_LENGTH;

/** Characters (UTF-16 code units) of UTF-8 bytes: one per byte that is not a continuation, two for a 4-byte sequence. */
function utf16Length(b: Buffer): number {
  if (isAscii(b)) return b.length;
  let n = b.length;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if ((c & 0xc0) === 0x80) n--;
    else if (c >= 0xf0) n++;
  }
  return n;
}

/**
 * Turns a line's text into its value. A SyntaxError becomes "invalid JSON: …" at the line; a
 * hook says where its own errors are by throwing an NdjsonError; anything else passes as is.
 */
export type LineParse = (text: string, line: number) => unknown;

/**
 * NDJSON bytes in, `{line, value}` out, one per non-blank line.
 *
 * Lines are split on raw bytes here rather than with split2 or ndjson.parse: split2 decodes
 * to strings before it splits and its overflow error cannot say which line; ndjson@2 drops line
 * numbers and ends the stream at the first error. Errors here always carry the line number, a
 * line longer than `maxLineLength` bytes is refused before it is buffered further, and invalid
 * UTF-8 is refused rather than silently replaced.
 */
export class NdjsonLineParser implements ChunkParser<NdjsonLine> {
  private readonly maxLine: number;
  private readonly parse: LineParse;
  private readonly maxChars: number;
  private parts: Buffer[] = [];
  private partLen = 0;
  /** characters of `parts`, counted only once they hold more than `maxChars` bytes; else -1 */
  private partChars = -1;
  private lineNo = 0;

  /** `maxLineChars` cannot be raised past MAX_LINE_CHARS (a test lowers it). */
  constructor(maxLineLength = DEFAULT_MAX_LINE, parse: LineParse = (text) => JSON.parse(text), maxLineChars = MAX_LINE_CHARS) {
    this.maxLine = maxLineLength;
    this.parse = parse;
    this.maxChars = Math.min(maxLineChars, MAX_LINE_CHARS);
  }

  /** Lines read so far. */
  get lines(): number {
    return this.lineNo;
  }

  write(chunk: Buffer, emit: (line: NdjsonLine) => void): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      let line: Buffer;
      if (this.partLen > 0) {
        const last = chunk.subarray(start, nl);
        this.hold(last, this.lineNo + 1);
        this.parts.push(last);
        line = Buffer.concat(this.parts, this.partLen);
        this.parts = [];
        this.partLen = 0;
        this.partChars = -1;
      } else {
        line = chunk.subarray(start, nl);
      }
      this.lineNo++;
      if (line.length > this.maxLine) throw this.tooLong(this.lineNo);
      this.parseLine(line, emit);
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.hold(rest, this.lineNo + 1);
      this.parts.push(rest);
    }
  }

  /**
   * Counts `piece` into the line being gathered, refusing the line (`line`) as soon as it is
   * too long: longer than the line limit in bytes, or than a string can be in characters (so a
   * line that cannot be read is not gathered to its end first).
   */
  private hold(piece: Buffer, line: number): void {
    this.partLen += piece.length;
    if (this.partLen > this.maxLine) throw this.tooLong(line);
    if (this.partLen <= this.maxChars) return;
    // (a byte is at most one character: until here the line cannot be too long to be a string)
    if (this.partChars < 0) {
      this.partChars = 0;
      for (const p of this.parts) this.partChars += utf16Length(p);
    }
    this.partChars += utf16Length(piece);
    // (+1: a `\r` before the newline is no part of the text)
    if (this.partChars > this.maxChars + 1) throw this.tooLongText(line);
  }

  /** The input ended: a last line without a newline still counts. */
  end(emit: (line: NdjsonLine) => void): void {
    if (this.partLen === 0) return;
    this.lineNo++;
    const last = Buffer.concat(this.parts, this.partLen);
    this.parts = [];
    this.partLen = 0;
    this.partChars = -1;
    this.parseLine(last, emit);
  }

  private tooLong(line: number): NdjsonError {
    return new NdjsonError(line, `line longer than ${this.maxLine} bytes`);
  }

  private tooLongText(line: number): NdjsonError {
    return new NdjsonError(line, `line longer than ${this.maxChars} characters, the most one JSON text can have (the longest string V8 can make)`);
  }

  private parseLine(raw: Buffer, emit: (line: NdjsonLine) => void): void {
    let end = raw.length;
    if (end > 0 && raw[end - 1] === 0x0d) end--;
    const line = raw.subarray(0, end);
    if (!isUtf8(line)) throw new NdjsonError(this.lineNo, 'not valid UTF-8');
    // (a line given whole in one chunk was not counted by hold())
    if (line.length > this.maxChars && utf16Length(line) > this.maxChars) throw this.tooLongText(this.lineNo);
    const text = line.toString('utf8');
    if (text.trim() === '') return;
    let value: unknown;
    try {
      value = this.parse(text, this.lineNo);
    } catch (e) {
      if (e instanceof SyntaxError) throw new NdjsonError(this.lineNo, `invalid JSON: ${e.message}`);
      throw e;
    }
    emit({ line: this.lineNo, value } satisfies NdjsonLine);
  }
}

/** NDJSON bytes in, `{line, value}` out (see NdjsonLineParser). */
export class NdjsonParseStream extends ChunkParserStream<NdjsonLine> {
  private readonly lineParser: NdjsonLineParser;

  constructor(options: { maxLineLength?: number; highWaterMark?: number } = {}) {
    const parser = new NdjsonLineParser(options.maxLineLength);
    super(parser, { writable: 64 * 1024, readable: options.highWaterMark ?? 16 });
    this.lineParser = parser;
  }

  /** Lines read so far. */
  get lines(): number {
    return this.lineParser.lines;
  }
}
