/**
 * Dialling peers again: back-off for peers that fail or accept and close at once, an
 * immediate MSE redial for one that hangs up on the plaintext handshake, patience for a peer
 * that served us and went away, and never again for a ban. Real sockets on loopback.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, test } from 'node:test';
import { Connector, type ConnectionEnd } from '../src/swarm/connector.js';
import type { PeerRecord } from '../src/peers/record.js';
import type { WireSocket } from '../src/wire/memory-pipe.js';
import { Session } from '../src/session/session.js';
import { Swarm } from '../src/swarm/swarm.js';
import { makeTorrent } from './helpers/torrent.js';

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** A server that accepts and at once closes every connection; counts them. */
async function slammer(): Promise<{ port: number; accepted: () => number }> {
  let n = 0;
  const server = createServer((s) => {
    n++;
    s.destroy();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as { port: number }).port, accepted: () => n };
}

interface Dial {
  at: number;
  encrypt: boolean;
}

/** A connector whose sockets end as `end` says once the peer closes them. */
function connector(end: (dial: number) => Omit<ConnectionEnd, 'hungUp'>, base = 40, maxAttempts = 4): { c: Connector; dials: Dial[] } {
  const dials: Dial[] = [];
  const t0 = Date.now();
  const c: Connector = new Connector(
    { maxPeers: 10, halfOpen: 4, connectTimeoutMs: 2000, retryBaseMs: base, maxAttempts },
    (socket: WireSocket, rec: PeerRecord, _reads, encrypt) => {
      const n = dials.push({ at: Date.now() - t0, encrypt });
      socket.on('error', () => {});
      socket.on('close', () => c.release(`${rec.ip}:${rec.port}`, rec, { ...end(n), hungUp: true }));
    },
    () => {},
  );
  return { c, dials };
}

const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a peer that accepts and hangs up at once: MSE tried at once, then back-off, then given up', async () => {
  const s = await slammer();
  // a base wait far above a loopback dial, so that "at once" and "after a wait" cannot be confused
  const { c, dials } = connector(() => ({ retry: true, handshook: false, useful: false }), 200);
  c.add({ ip: '127.0.0.1', port: s.port, source: 'cli' });
  await settle(3000);
  c.stop();
  assert.deepEqual(dials.map((d) => d.encrypt), [false, true, false, true, false], 'plaintext, MSE at once (free), then alternating');
  assert.ok(dials[1]!.at - dials[0]!.at < 150, `the MSE redial waits for nothing (${dials[1]!.at - dials[0]!.at} ms)`);
  const gaps = dials.slice(2).map((d, i) => d.at - dials[i + 1]!.at);
  assert.ok(gaps[0]! >= 190 && gaps[1]! >= 390, `back-off doubles: ${gaps.join(', ')} ms`);
  assert.equal(c.pending, 0, 'given up after 4 failures in a row');
  assert.equal(s.accepted(), 5);
});

test('a peer that served us and went away is dialled again soon, with the method that worked', async () => {
  const s = await slammer();
  // every connection handshakes and delivers data before the peer closes it (a peer restarting)
  const { c, dials } = connector((n) => ({ retry: n < 6, handshook: true, useful: true }), 100);
  c.add({ ip: '127.0.0.1', port: s.port, source: 'cli' });
  await settle(2500);
  c.stop();
  assert.equal(dials.length, 6, 'redialled after every useful connection, until told to stop');
  assert.ok(dials.every((d) => !d.encrypt), 'the method that worked is kept');
  const gaps = dials.slice(1).map((d, i) => d.at - dials[i]!.at);
  assert.ok(gaps.every((g) => g >= 90) && gaps.at(-1)! < 380, `one base wait each, no growing back-off: ${gaps.join(', ')} ms`);
});

test('unreachable peers are given up after a bounded count; a banned one is never dialled', async () => {
  const s = await slammer();
  await new Promise<void>((r) => servers.pop()!.close(() => r())); // now nothing listens there
  const { c, dials } = connector(() => ({ retry: true, handshook: false, useful: false }));
  c.add({ ip: '127.0.0.1', port: s.port, source: 'cli' });
  c.ban('127.0.0.1:1');
  assert.equal(c.add({ ip: '127.0.0.1', port: 1, source: 'cli' }), false);
  assert.equal(c.add({ ip: 'localhost', port: 2, source: 'cli' }), false, 'a host name never reaches the dialler');
  await settle(1200);
  assert.equal(c.pending + c.connecting, 0, 'given up');
  assert.equal(dials.length, 0);
  c.stop();
});

test('our own listening address, echoed back by a tracker, is never dialled', async () => {
  const { torrent } = makeTorrent('self.bin', [{ path: ['self.bin'], data: Buffer.alloc(40_000, 1) }], 16384, true);
  const session = new Session();
  const port = await session.listen(0, '127.0.0.1');
  const swarm = new Swarm({ torrent, ...session.swarmOptions() });
  const peers: string[] = [];
  swarm.on('peer', (p) => peers.push(`${p.ip}:${p.port}`));
  for (const ip of ['127.0.0.1', '127.0.0.2', '::1', '0.0.0.0']) swarm.addPeer({ ip, port, source: 'tracker' });
  swarm.addPeer({ ip: '127.0.0.1', port: port === 65535 ? 1 : port + 1, source: 'tracker' });
  assert.deepEqual(peers, [`127.0.0.1:${port === 65535 ? 1 : port + 1}`], 'only the other port is a peer');
  swarm.destroy();
  await session.close();
});
