/**
 * Leechers that try to lock a seeder out, on real sockets: each handshakes, then either idles
 * (holding a connection slot) or says it is interested, queues requests and never reads what
 * comes back (holding an upload slot while its socket fills).
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { encodeHandshake, encodeMessage, encodeRequests, reservedBits } from '../../src/wire/protocol.js';

export interface HostileLeechers {
  /** connections still open */
  readonly open: number;
  close(): void;
}

export async function startHostileLeechers(o: { port: number; infoHash: Buffer; count: number; mode: 'idle' | 'no-read'; requests?: Array<{ index: number; begin: number; length: number }> }): Promise<HostileLeechers> {
  const sockets = new Set<Socket>();
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const s = connect({ host: '127.0.0.1', port: o.port });
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
      sockets.add(s);
      s.once('connect', () => {
        s.write(encodeHandshake({ reserved: reservedBits({ fast: true, extended: false }), infoHash: o.infoHash, peerId: Buffer.concat([Buffer.from('-XX0001-'), randomBytes(12)]) }));
        if (o.mode === 'no-read') {
          s.write(encodeMessage({ type: 'interested' }) as Buffer);
          // never read (so it cannot see when it is unchoked): requests keep coming, a batch
          // every 200 ms, so that some are queued whenever it holds a slot; the kernel's
          // buffers fill and the seeder's sends stop leaving
          s.pause();
          const batch = o.requests ?? [];
          const timer = setInterval(() => {
            if (s.writableLength < 1 << 20) s.write(encodeRequests(batch));
          }, 200);
          s.once('close', () => clearInterval(timer));
        } else {
          s.resume();
        }
        resolve();
      });
    });
  for (let i = 0; i < o.count; i++) await one();
  return {
    get open() {
      return sockets.size;
    },
    close: () => {
      for (const s of sockets) s.destroy();
    },
  };
}
