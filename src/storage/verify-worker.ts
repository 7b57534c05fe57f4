/** Worker thread for verify.ts: reads and hashes the blocks of pieces it is sent. */
import { parentPort, workerData } from 'node:worker_threads';
import type { Torrent } from '../metainfo/torrent.js';
import { FileStore } from './file-store.js';
import { hashMatches, type VerifyJob } from './verify.js';

const job = workerData as VerifyJob;
const torrent = { ...job.torrent, pieceHashes: Buffer.from(job.torrent.pieceHashes) } as Torrent;
const store = await FileStore.open(torrent, job.root, { mode: 'read', maxOpen: 32 });
const buf = Buffer.allocUnsafe(torrent.pieceLength);

parentPort!.on('message', (msg: { block: number; pieces: number[] } | null) => {
  if (msg === null) {
    void store.close().then(() => parentPort!.close());
    return;
  }
  void (async () => {
    const results: boolean[] = [];
    for (const i of msg.pieces) {
      const data = await store.readPiece(i, buf);
      results.push(data !== null && hashMatches(torrent, i, data));
    }
    parentPort!.postMessage({ block: msg.block, results });
  })();
});
