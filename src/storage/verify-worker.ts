/** Worker thread for verify.ts: reads and hashes the blocks of pieces it is sent. */
import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { padHash, pieceRoot } from '../metainfo/merkle.js';
import { v2PieceShape } from '../metainfo/pieces.js';
import type { Torrent } from '../metainfo/torrent.js';
import { FileStore } from './file-store.js';
import { allocReadBuffer } from './io-buffer.js';
import type { VerifyJob } from './verify.js';

const job = workerData as VerifyJob;
// the store only reads the layout fields; hashes are compared by the caller
const torrent = job.torrent as Torrent;
const store = await FileStore.open(torrent, job.root, { mode: 'read', maxOpen: 32, blockingReads: true });
const buf = allocReadBuffer(torrent.pieceLength);

function digest(index: number, data: Buffer): Buffer {
  const sha1 = job.digests === 'v2' ? null : createHash('sha1').update(data).digest();
  if (job.digests === 'sha1') return sha1!;
  const shape = v2PieceShape(torrent, index);
  const v2 = shape === null ? padHash(0) : pieceRoot(data.subarray(0, shape.bytes), shape.leaves);
  return sha1 === null ? v2 : Buffer.concat([sha1, v2]);
}

parentPort!.on('message', (msg: { block: number; pieces: number[] } | null) => {
  if (msg === null) {
    void store.close().then(() => parentPort!.close());
    return;
  }
  void (async () => {
    const digests: Array<Buffer | null> = [];
    for (const i of msg.pieces) {
      const data = await store.readPiece(i, buf);
      digests.push(data === null ? null : digest(i, data));
    }
    parentPort!.postMessage({ block: msg.block, digests });
  })();
});
