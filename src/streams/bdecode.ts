import { Transform, type TransformCallback } from 'node:stream';
import { BencodeDecoder, type DecodeOptions } from '../bencode/decoder.js';
import type { BValue } from '../bencode/types.js';

/**
 * Bytes in, one decoded value out per top-level bencode value, as soon as it completes.
 * Memory is bounded by the decoder's value-size limit, whatever the stream's length.
 */
export class BdecodeStream extends Transform {
  readonly decoder: BencodeDecoder;
  constructor(options: DecodeOptions & { highWaterMark?: number } = {}) {
    const { highWaterMark, ...decodeOptions } = options;
    super({ writableObjectMode: false, readableObjectMode: true, writableHighWaterMark: 64 * 1024, readableHighWaterMark: highWaterMark ?? 16 });
    this.decoder = new BencodeDecoder(decodeOptions);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.decoder.write(chunk, (v: BValue) => this.push(v));
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.decoder.end();
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }
}
