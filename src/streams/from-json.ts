import { Transform, type TransformCallback } from 'node:stream';
import { EncodeError } from '../bencode/errors.js';
import { fromJson, fromJsonText, type FromJsonOptions } from '../bencode/json.js';
import type { BValue } from '../bencode/types.js';
import { ChunkParserStream } from './chunk-parser.js';
import { NdjsonError, NdjsonLineParser, type NdjsonLine } from './ndjson-parse.js';

/**
 * Parsed NDJSON lines in (from NdjsonParseStream), the bencode values they stand for out.
 * JSON.parse has already dropped repeated keys by then: FromJsonTextStream refuses them.
 */
export class FromJsonStream extends Transform {
  private readonly options: FromJsonOptions;
  constructor(options: FromJsonOptions = {}) {
    super({ objectMode: true, highWaterMark: 16 });
    this.options = options;
  }

  override _transform(rec: NdjsonLine, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      cb(null, fromJson(rec.value, this.options));
    } catch (e) {
      cb(new NdjsonError(rec.line, (e as Error).message));
    }
  }
}

/**
 * NDJSON bytes in, the bencode value of each line out (`bencode`'s reader): like
 * NdjsonParseStream into FromJsonStream, but each line's text is read by fromJsonText, which
 * refuses repeated object keys and nesting beyond `maxDepth` before parsing. Errors are
 * NdjsonErrors naming the line.
 */
export class FromJsonTextStream extends ChunkParserStream<BValue> {
  constructor(options: FromJsonOptions & { maxLineLength?: number; highWaterMark?: number } = {}) {
    const lines = new NdjsonLineParser(options.maxLineLength, (text, line) => {
      try {
        return fromJsonText(text, options);
      } catch (e) {
        if (e instanceof EncodeError) throw new NdjsonError(line, e.message);
        throw e;
      }
    });
    const emitValue = (emit: (v: BValue) => void) => (rec: NdjsonLine): void => emit(rec.value as BValue);
    super(
      { write: (chunk, emit) => lines.write(chunk, emitValue(emit)), end: (emit) => lines.end(emitValue(emit)) },
      { writable: 64 * 1024, readable: options.highWaterMark ?? 16 },
    );
  }
}
