import { Transform, type TransformCallback } from 'node:stream';
import { encode } from '../bencode/encoder.js';
import type { BEncodable } from '../bencode/types.js';

/** Values in, canonical bencode bytes out. */
export class BencodeStream extends Transform {
  constructor(options: { highWaterMark?: number } = {}) {
    super({ writableObjectMode: true, readableObjectMode: false, writableHighWaterMark: 16, readableHighWaterMark: options.highWaterMark ?? 64 * 1024 });
  }

  override _transform(v: BEncodable, _enc: BufferEncoding, cb: TransformCallback): void {
    let out: Buffer;
    try {
      out = encode(v);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb(null, out);
  }
}
