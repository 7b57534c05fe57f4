import { Transform, type TransformCallback } from 'node:stream';

/** A streaming parser: bytes in, in any chunking (calling `emit` for what they complete), then the end. */
export interface ChunkParser<T> {
  write(chunk: Buffer, emit: (value: T) => void): void;
  /** the input ended: emits what only the end completes, throws when it stopped inside a value */
  end(emit: (value: T) => void): void;
}

/**
 * A Transform around a ChunkParser: bytes in, the parser's values out. The parser's errors
 * (each saying where) fail the stream; nothing is held beyond what the parser holds.
 */
export class ChunkParserStream<T> extends Transform {
  readonly parser: ChunkParser<T>;

  constructor(parser: ChunkParser<T>, highWaterMarks: { writable: number; readable: number }) {
    super({ writableObjectMode: false, readableObjectMode: true, writableHighWaterMark: highWaterMarks.writable, readableHighWaterMark: highWaterMarks.readable });
    this.parser = parser;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.parser.write(chunk, (v) => this.push(v));
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.parser.end((v) => this.push(v));
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }
}
