import { Transform, type TransformCallback } from 'node:stream';
import { fromJson, type FromJsonOptions } from '../bencode/json.js';
import { NdjsonError, type NdjsonLine } from './ndjson-parse.js';

/** Parsed NDJSON lines in (from NdjsonParseStream), the bencode values they stand for out. */
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
