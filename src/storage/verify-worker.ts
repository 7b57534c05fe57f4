/** Worker thread for verify.ts: reads and digests the blocks of pieces it is sent (SHA-1 unless told). */
import { createHash } from 'node:crypto';
import { digestPiece, type PieceDigest } from '../metainfo/piece-check.js';
import { parentPort, workerData } from 'node:worker_threads';
import type { Torrent } from '../metainfo/torrent.js';
import { FileStore } from './file-store.js';
import { allocReadBuffer } from './io-buffer.js';
import type { VerifyJob } from './verify.js';

const job = workerData as VerifyJob;
// the store only reads the layout fields; hashes are compared by the caller
const torrent = job.torrent as Torrent;
const store = await FileStore.open(torrent, job.root, { mode: 'read', maxOpen: 32, blockingReads: true });
const buf = allocReadBuffer(torrent.pieceLength);

parentPort!.on('message', (msg: { block: number; pieces: number[]; how?: Array<PieceDigest | null> } | null) => {
  if (msg === null) {
    void store.close().then(() => parentPort!.close());
    return;
  }
  void (async () => {
    const digests: Array<Buffer | null> = [];
    for (let k = 0; k < msg.pieces.length; k++) {
      const how = msg.how === undefined ? undefined : msg.how[k]!;
      if (how === null) {
        digests.push(null);
        continue;
      }
      const data = await store.readPiece(msg.pieces[k]!, buf);
      digests.push(data === null ? null : how === undefined ? createHash('sha1').update(data).digest() : digestPiece(how, data));
    }
    parentPort!.postMessage({ block: msg.block, digests });
  })();
});
