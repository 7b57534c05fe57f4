/**
 * Worker thread for hash-pool.ts: the digest of each buffer it is sent (SHA-1, or a merkle root
 * as piece-check.ts says), sent back with it (moved memory) or read in place (shared).
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { digestPiece, type PieceDigest } from '../metainfo/piece-check.js';

interface Request {
  id: number;
  buf: ArrayBuffer | SharedArrayBuffer;
  offset: number;
  length: number;
  how?: PieceDigest;
  withLeaves?: boolean;
}

parentPort!.on('message', (m: Request) => {
  const data = new Uint8Array(m.buf, m.offset, m.length);
  let digest: Buffer;
  let leaves: Buffer | null = null;
  if (m.how === undefined) digest = createHash('sha1').update(data).digest();
  else ({ digest, leaves } = digestPiece(m.how, data, true));
  const reply = { id: m.id, digest, buf: m.buf, offset: m.offset, length: m.length, leaves: m.withLeaves === true && leaves ? new Uint8Array(leaves) : undefined };
  // (the leaves are copied out of Node's small-buffer pool, which cloning would send whole)
  // moved memory goes back; shared memory was only read here
  parentPort!.postMessage(reply, m.buf instanceof SharedArrayBuffer ? [] : [m.buf]);
});
