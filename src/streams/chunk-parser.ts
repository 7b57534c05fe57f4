import { Transform, type TransformCallback } from 'node:stream';
import { DeferredError } from './deferred-error.js';

/** A streaming parser: bytes in, in any chunking (calling `emit` for what they complete), then the end. */
export interface ChunkParser<T> {
  write(chunk: Buffer, emit: (value: T) => void): void;
  /** the input ended: emits what only the end completes, throws when it stopped inside a value */
  end(emit: (value: T) => void): void;
}

export interface ChunkParserStreamOptions {
  writable: number;
  readable: number;
  /**
   * Which of the parser's errors are deferred (deferred-error.ts): the values before it go out,
   * then a DeferredError as the last object, and the output ends; the rest of the input is read
   * and dropped. Others (and all, without this) fail the stream at once.
   */
  defer?: (e: unknown) => boolean;
}

/**
 * A Transform around a ChunkParser: bytes in, the parser's values out. The parser's errors
 * (each saying where) fail the stream, or end it with a DeferredError (`defer`); nothing is
 * held beyond what the parser holds.
 */
export class ChunkParserStream<T> extends Transform {
  readonly parser: ChunkParser<T>;
  private readonly defer: (e: unknown) => boolean;
  /** a deferred error ended the output: what comes after it is not parsed */
  private over = false;

  constructor(parser: ChunkParser<T>, options: ChunkParserStreamOptions) {
    super({ writableObjectMode: false, readableObjectMode: true, writableHighWaterMark: options.writable, readableHighWaterMark: options.readable });
    this.parser = parser;
    this.defer = options.defer ?? ((): boolean => false);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.over) this.step(() => this.parser.write(chunk, (v) => this.push(v)), cb);
    else cb();
  }

  override _flush(cb: TransformCallback): void {
    if (!this.over) this.step(() => this.parser.end((v) => this.push(v)), cb);
    else cb();
  }

  /** Runs a parser step: the values it completed are pushed already when it throws. */
  private step(run: () => void, cb: TransformCallback): void {
    try {
      run();
    } catch (e) {
      if (!this.defer(e)) {
        cb(e as Error);
        return;
      }
      this.over = true;
      this.push(new DeferredError(e as Error));
      this.push(null);
    }
    cb();
  }
}
