/** Worker thread for hash-pool.ts: the SHA-1 of each buffer it is sent, sent back with it (moved memory) or read in place (shared). */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

parentPort!.on('message', (m: { id: number; buf: ArrayBuffer | SharedArrayBuffer; offset: number; length: number }) => {
  const digest = createHash('sha1').update(new Uint8Array(m.buf, m.offset, m.length)).digest();
  // moved memory goes back; shared memory was only read here
  parentPort!.postMessage({ id: m.id, digest, buf: m.buf, offset: m.offset, length: m.length }, m.buf instanceof SharedArrayBuffer ? [] : [m.buf]);
});
