import { isUtf8 } from 'node:buffer';
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
  private parts: Buffer[] = [];
  private partLen = 0;
  private lineNo = 0;

  constructor(maxLineLength = DEFAULT_MAX_LINE, parse: LineParse = (text) => JSON.parse(text)) {
    this.maxLine = maxLineLength;
    this.parse = parse;
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
        this.parts.push(chunk.subarray(start, nl));
        line = Buffer.concat(this.parts, this.partLen + nl - start);
        this.parts = [];
        this.partLen = 0;
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
      this.partLen += rest.length;
      if (this.partLen > this.maxLine) throw this.tooLong(this.lineNo + 1);
      this.parts.push(rest);
    }
  }

  /** The input ended: a last line without a newline still counts. */
  end(emit: (line: NdjsonLine) => void): void {
    if (this.partLen === 0) return;
    this.lineNo++;
    const last = Buffer.concat(this.parts, this.partLen);
    this.parts = [];
    this.partLen = 0;
    this.parseLine(last, emit);
  }

  private tooLong(line: number): NdjsonError {
    return new NdjsonError(line, `line longer than ${this.maxLine} bytes`);
  }

  private parseLine(raw: Buffer, emit: (line: NdjsonLine) => void): void {
    let end = raw.length;
    if (end > 0 && raw[end - 1] === 0x0d) end--;
    const line = raw.subarray(0, end);
    if (!isUtf8(line)) throw new NdjsonError(this.lineNo, 'not valid UTF-8');
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
