import { BencodeDecoder, type DecodeOptions } from '../bencode/decoder.js';
import type { BValue } from '../bencode/types.js';
import { ChunkParserStream } from './chunk-parser.js';

/**
 * Bytes in, one decoded value out per top-level bencode value, as soon as it completes.
 * Memory is bounded by the decoder's value-size limit, whatever the stream's length.
 */
export class BdecodeStream extends ChunkParserStream<BValue> {
  readonly decoder: BencodeDecoder;
  constructor(options: DecodeOptions & { highWaterMark?: number } = {}) {
    const { highWaterMark, ...decodeOptions } = options;
    const decoder = new BencodeDecoder(decodeOptions);
    super(decoder, { writable: 64 * 1024, readable: highWaterMark ?? 16 });
    this.decoder = decoder;
  }
}
