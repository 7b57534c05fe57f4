/**
 * Two uTP endpoints in this process over real UDP sockets on 127.0.0.1, optionally with a
 * lossy relay (udp-relay.ts) between them, and a helper that sends bytes one way and checks
 * what arrives.
 */
import { createSocket, type Socket } from 'node:dgram';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { UtpEndpoint, type UtpEndpointOptions } from '../../src/utp/endpoint.js';
import { looksLikeUtp } from '../../src/utp/packet.js';
import type { UtpStream } from '../../src/utp/stream.js';

export interface UdpEndpoint {
  endpoint: UtpEndpoint;
  socket: Socket;
  port: number;
  close(): Promise<void>;
}

/** A uTP endpoint on its own UDP socket (what the shared socket will be in the session). */
export async function udpEndpoint(options: UtpEndpointOptions = {}): Promise<UdpEndpoint> {
  const socket = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const endpoint = new UtpEndpoint({
    send: (buf, port, address) => socket.send(buf as Uint8Array, port, address),
  }, options);
  socket.on('message', (msg, rinfo) => {
    if (looksLikeUtp(msg)) endpoint.receive(msg, rinfo.address, rinfo.port);
  });
  return {
    endpoint,
    socket,
    port: socket.address().port,
    async close() {
      endpoint.close();
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}

/** The next incoming stream. */
export function nextConnection(e: UtpEndpoint): Promise<UtpStream> {
  return once(e, 'connection').then(([s]) => s as UtpStream);
}

/** Writes `data` to `from` in chunks of `chunk` bytes, honouring back-pressure. */
export async function writeAll(from: UtpStream, data: Buffer, chunk = 16 * 1024): Promise<void> {
  for (let at = 0; at < data.length; at += chunk) {
    if (!from.write(data.subarray(at, Math.min(data.length, at + chunk)))) {
      await once(from, 'drain');
    }
  }
}

/** Collects `n` bytes from `to`, resolves with their SHA-1 (or rejects on error/close before). */
export function readBytes(to: UtpStream, n: number): Promise<{ hash: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha1');
    let got = 0;
    // n bytes and no more are this reader's: the next readBytes takes what follows
    const onData = (b: Buffer): void => {
      h.update(b);
      got += b.length;
      if (got === n) {
        to.off('data', onData);
        resolve({ hash: h.digest('hex'), bytes: got });
      }
      if (got > n) reject(new Error(`read ${got} bytes, expected ${n}`));
    };
    to.on('data', onData);
    to.on('error', reject);
    to.on('close', () => {
      if (got < n) reject(new Error(`closed after ${got} of ${n} bytes`));
    });
  });
}

export function sha1(b: Buffer): string {
  return createHash('sha1').update(b).digest('hex');
}

/**
 * Dials `port` from `a` (b accepts), sends `up` from the dialler and `down` back at once,
 * checks both arrive byte-identical, then ends with the dialler's FIN and waits for the other
 * side's 'end' and 'close'. Resolves with the transfer's milliseconds.
 */
export async function exchange(a: UtpEndpoint, b: UtpEndpoint, port: number, up: Buffer, down: Buffer, why: string): Promise<number> {
  const accepted = nextConnection(b);
  const client = a.connect('127.0.0.1', port);
  await once(client, 'connect');
  const server = await accepted;
  const t0 = performance.now();
  const gotUp = readBytes(server, up.length);
  const gotDown = readBytes(client, down.length);
  await Promise.all([writeAll(client, up), writeAll(server, down)]);
  const [u, d] = await Promise.all([gotUp, gotDown]);
  const ms = performance.now() - t0;
  assert.equal(u.hash, sha1(up), why);
  assert.equal(d.hash, sha1(down), why);
  const ended = once(server, 'end');
  const closed = new Promise((resolve) => server.once('close', resolve));
  client.destroy();
  await ended;
  await closed;
  return ms;
}
