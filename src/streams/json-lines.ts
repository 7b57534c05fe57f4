import { Transform, type TransformCallback } from 'node:stream';
import { toJsonChunks } from '../bencode/json.js';
import type { BValue } from '../bencode/types.js';

/**
 * Decoded bencode values in, their tagged JSON out: one compact line each, or indented.
 * Hand-written rather than ndjson.stringify: that one writes os.EOL, throws on BigInt and
 * would reorder integer-like dict keys (see bencode/json.ts).
 *
 * A value's JSON goes out in pieces of about 1 MiB (toJsonChunks) rather than as one string:
 * the JSON of a value the limits let through can be longer than V8 lets a string be (two
 * 128 MiB non-UTF-8 strings are over 512 Mi characters of hex).
 */
export class JsonLinesStream extends Transform {
  private readonly indent: string;
  // A Transform cannot wait for its reader in the middle of _transform, so the pieces of one
  // value are pushed without heeding push()'s answer; the backpressure applies between values.
  // What piles up so is the JSON of one value, and a value is bounded by the decoder's
  // --max-value (256 MiB by default): its JSON is at most ~6× that (a control character is
  // written `\u0001`), plus the indentation of --pretty. The value itself is in memory anyway.
  private readonly pushPiece = (chunk: string): void => {
    this.push(chunk);
  };

  constructor(options: { pretty?: boolean } = {}) {
    super({ writableObjectMode: true, readableObjectMode: false, writableHighWaterMark: 16, readableHighWaterMark: 64 * 1024 });
    this.indent = options.pretty ? '  ' : '';
  }

  override _transform(v: BValue, _enc: BufferEncoding, cb: TransformCallback): void {
    cb(null, toJsonChunks(v, this.pushPiece, this.indent) + '\n');
  }
}
