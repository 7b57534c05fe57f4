/** NDJSON lines in, peer records out: any line with `ip` and `port` is a peer (design.md §2). */
import { Transform, type TransformCallback } from 'node:stream';
import { peerFromJson, type PeerRecord } from '../peers/record.js';
import type { NdjsonLine } from './ndjson-parse.js';

export class PeerRecordStream extends Transform {
  private readonly onSkip: (line: number, why: string) => void;
  constructor(onSkip: (line: number, why: string) => void = () => {}) {
    super({ objectMode: true, highWaterMark: 64 });
    this.onSkip = onSkip;
  }

  override _transform(rec: NdjsonLine, _enc: BufferEncoding, cb: TransformCallback): void {
    const v = rec.value;
    // records without ip/port (events, stats) pass silently: jq filters compose
    if (v === null || typeof v !== 'object' || !('ip' in v) || !('port' in v)) return cb();
    const p = peerFromJson(v);
    if (typeof p === 'string') {
      this.onSkip(rec.line, p);
      return cb();
    }
    cb(null, p satisfies PeerRecord);
  }
}
