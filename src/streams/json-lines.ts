import { Transform, type TransformCallback } from 'node:stream';
import { toJson } from '../bencode/json.js';
import type { BValue } from '../bencode/types.js';

/**
 * Decoded bencode values in, their tagged JSON out: one compact line each, or indented.
 * Hand-written rather than ndjson.stringify: that one writes os.EOL, throws on BigInt and
 * would reorder integer-like dict keys (see bencode/json.ts).
 */
export class JsonLinesStream extends Transform {
  private readonly indent: string;
  constructor(options: { pretty?: boolean } = {}) {
    super({ writableObjectMode: true, readableObjectMode: false, writableHighWaterMark: 16, readableHighWaterMark: 64 * 1024 });
    this.indent = options.pretty ? '  ' : '';
  }

  override _transform(v: BValue, _enc: BufferEncoding, cb: TransformCallback): void {
    cb(null, toJson(v, this.indent) + '\n');
  }
}
