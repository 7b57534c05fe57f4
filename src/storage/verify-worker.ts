/** Worker thread for verify.ts: reads and hashes the blocks of pieces it is sent. */
import { parentPort, workerData } from 'node:worker_threads';
import { padHash } from '../metainfo/merkle.js';
import { digestPiece, type PieceDigest } from '../metainfo/piece-check.js';
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
const SHA1: PieceDigest = { kind: 'sha1' };

/** The piece's digest as piece-check.ts computes it for the swarm: SHA-1, merkle root, or both. */
function digest(index: number, data: Buffer): Buffer {
  if (job.digests === 'sha1') return digestPiece(SHA1, data);
  const shape = v2PieceShape(torrent, index);
  if (shape === null) {
    // a piece of alignment only (create's hybrids): no file bytes, a zero node
    return job.digests === 'v2' ? padHash(0) : Buffer.concat([digestPiece(SHA1, data), padHash(0)]);
  }
  return digestPiece({ kind: job.digests === 'v2' ? 'merkle' : 'both', dataLength: shape.bytes, leaves: shape.leaves }, data);
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
