/** Worker thread for hash-pool.ts: the SHA-1 of each buffer it is sent, sent back with it. */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

parentPort!.on('message', (m: { id: number; buf: ArrayBuffer; offset: number; length: number }) => {
  const digest = createHash('sha1').update(new Uint8Array(m.buf, m.offset, m.length)).digest();
  parentPort!.postMessage({ id: m.id, digest, buf: m.buf, offset: m.offset, length: m.length }, [m.buf]);
});
