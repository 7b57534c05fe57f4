import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Server } from 'node:net';
import { after, afterEach, test } from 'node:test';
import { Allowance, MIN_TICK_MS, QUANTUM, TokenBucket, type Bandwidth, type Clock } from '../src/wire/bandwidth.js';
import type { WireLimits } from '../src/wire/frame-decoder.js';
import { PeerConnection } from '../src/wire/peer-connection.js';
import type { WireMessage } from '../src/wire/protocol.js';

/** Time that moves only when told; timers fire in order as it passes them. */
class FakeClock implements Clock {
  t = 0;
  private timers: Array<{ at: number; fn: () => void; live: boolean }> = [];

  now(): number {
    return this.t;
  }

  setTimer(ms: number, fn: () => void): () => void {
    const e = { at: this.t + ms, fn, live: true };
    this.timers.push(e);
    return () => {
      e.live = false;
    };
  }

  get pending(): number {
    return this.timers.filter((e) => e.live).length;
  }

  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers = this.timers.filter((e) => e.live);
      let next: (typeof this.timers)[number] | undefined;
      for (const e of this.timers) if (e.at <= end && (next === undefined || e.at < next.at)) next = e;
      if (next === undefined) break;
      next.live = false;
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }
}

/**
 * Something that moves `chunk` bytes at a time whenever its allowance lets it (a writer, or a
 * reader whose every read is `chunk`), with `backlog` bytes to move (Infinity: for ever).
 */
class Mover {
  moved = 0;
  wakeups = 0;
  readonly a: Allowance;
  constructor(bucket: TokenBucket, readonly chunk: number, public backlog = Infinity) {
    this.a = new Allowance(bucket, () => {
      this.wakeups++;
      this.pump();
    });
  }

  /** As a writer does: asks, moves, is charged. */
  pump(): void {
    while (this.backlog > 0 && this.a.acquire()) {
      const n = Math.min(this.chunk, this.backlog);
      this.moved += n;
      this.backlog -= n;
      this.a.spend(n);
    }
  }
}

const KiB = 1024;
const MiB = 1024 * 1024;

test('rate and burst: a full bucket lets its burst through at once, then the rate', () => {
  const clock = new FakeClock();
  const b = new TokenBucket(100 * KiB, { clock });
  assert.equal(b.burst, 25 * KiB);
  const m = new Mover(b, 1000);
  m.pump();
  // the burst, and at most the quantum its last grant borrowed from the next refill
  assert.ok(m.moved >= 25 * KiB && m.moved <= 25 * KiB + QUANTUM, `at once: ${m.moved}`);
  clock.advance(10_000);
  const expected = 25 * KiB + 100 * KiB * 10;
  assert.ok(Math.abs(m.moved - expected) <= QUANTUM + 1000, `10 s: ${m.moved}, expected ${expected}`);
  // steady state: exactly the rate, within a quantum
  const before = m.moved;
  clock.advance(5_000);
  assert.ok(Math.abs(m.moved - before - 500 * KiB) <= QUANTUM + 1000, `5 more s: ${m.moved - before}`);
  // an explicit burst
  const c = new TokenBucket(1000, { clock, burst: 300 });
  const n = new Mover(c, 100);
  n.pump();
  assert.equal(n.moved, 300);
});

test('a read larger than the credit is a debt: paid before the reader moves again', () => {
  const clock = new FakeClock();
  const b = new TokenBucket(64 * KiB, { clock, burst: 16 * KiB });
  const reader = new Mover(b, 64 * KiB);
  reader.pump();
  assert.equal(reader.moved, 64 * KiB); // one read happened: 48 KiB beyond the burst
  clock.advance(700); // 44.8 KiB of tokens: not yet the debt
  assert.equal(reader.moved, 64 * KiB);
  clock.advance(10_000);
  // 16 KiB burst + 64 KiB/s × 10.7 s, within one read
  assert.ok(Math.abs(reader.moved - (16 * KiB + 64 * KiB * 10.7)) <= 64 * KiB, `moved ${reader.moved}`);
});

test('parent chaining: a torrent limit inside a global one; the global holds for the sum', () => {
  const clock = new FakeClock();
  const global = new TokenBucket(1000 * KiB, { clock });
  const a = new TokenBucket(300 * KiB, { clock, parent: global });
  const free = new TokenBucket(0, { clock, parent: global }); // no limit of its own
  const ma = [new Mover(a, 16 * KiB), new Mover(a, 16 * KiB)];
  const mb = [new Mover(free, 16 * KiB), new Mover(free, 4 * KiB), new Mover(global, 64 * KiB)];
  for (const m of [...ma, ...mb]) m.pump();
  clock.advance(1000); // past the bursts
  const s0 = [...ma, ...mb].map((m) => m.moved);
  clock.advance(20_000);
  const d = [...ma, ...mb].map((m, i) => m.moved - s0[i]!);
  const sumA = d[0]! + d[1]!;
  const sum = d.reduce((x, y) => x + y, 0);
  assert.ok(Math.abs(sumA / 20 - 300 * KiB) <= 300 * KiB * 0.03, `torrent a: ${sumA / 20} B/s`);
  assert.ok(Math.abs(sum / 20 - 1000 * KiB) <= 1000 * KiB * 0.03, `global: ${sum / 20} B/s`);
  // the rest of the global rate is shared by the byte among the others, whatever their chunks
  for (const x of d.slice(2)) assert.ok(Math.abs(x / 20 - 700 * KiB / 3) <= 700 * KiB / 3 * 0.1, `others: ${d.slice(2).map((y) => y / 20)}`);
  // both of a's connections get their half
  assert.ok(Math.abs(d[0]! - d[1]!) <= 2 * QUANTUM, `a: ${d[0]} ${d[1]}`);
});

test('1,000 waiters: a refill wakes a few in turn, every one gets its share, one timer per bucket', () => {
  const clock = new FakeClock();
  const b = new TokenBucket(1 * MiB, { clock });
  const movers = Array.from({ length: 1000 }, () => new Mover(b, 16 * KiB));
  for (const m of movers) m.pump();
  // the burst (256 KiB) went to the first, who asked first; everyone else waits on the bucket's one timer
  assert.equal(movers[0]!.moved, 256 * KiB);
  assert.equal(movers.filter((m) => m.moved > 0).length, 1);
  assert.equal(b.waiting, 1000);
  assert.equal(clock.pending, 1);
  // each refill (one per MIN_TICK at most) wakes only what its tokens pay for
  let woken = 0;
  for (let i = 0; i < 50; i++) {
    const before = movers.reduce((n, m) => n + m.wakeups, 0);
    clock.advance(MIN_TICK_MS);
    const now = movers.reduce((n, m) => n + m.wakeups, 0);
    assert.ok(now - before <= 2, `one refill woke ${now - before}`);
    woken += now - before;
    assert.ok(clock.pending <= 1);
  }
  assert.ok(woken > 0);
  // round robin: after 20 s (20 MiB, 1,280 blocks) every one has moved, nobody twice before all once
  clock.advance(20_000);
  const blocks = movers.map((m) => m.moved / (16 * KiB));
  assert.ok(Math.min(...blocks.slice(1)) >= 1, `min ${Math.min(...blocks)}`);
  assert.ok(Math.max(...blocks.slice(1)) <= 2, `max ${Math.max(...blocks)}`);
  const total = movers.reduce((n, m) => n + m.moved, 0);
  assert.ok(Math.abs(total - (256 * KiB + 20.5 * MiB)) <= 2 * 16 * KiB, `total ${total}`);
});

test('fair by the byte: big reads and small writes on one bucket get the same bytes', () => {
  const clock = new FakeClock();
  const b = new TokenBucket(512 * KiB, { clock });
  const movers = [new Mover(b, 64 * KiB), new Mover(b, 1 * KiB), new Mover(b, 16 * KiB + 13)];
  for (const m of movers) m.pump();
  clock.advance(1000);
  const s0 = movers.map((m) => m.moved);
  clock.advance(30_000);
  const d = movers.map((m, i) => (m.moved - s0[i]!) / 30);
  for (const x of d) assert.ok(Math.abs(x - 512 * KiB / 3) <= 512 * KiB / 3 * 0.05, `rates ${d}`);
});

test('rate changes at run time: faster, unlimited (waiters go at once), limited again', () => {
  const clock = new FakeClock();
  const b = new TokenBucket(10 * KiB, { clock });
  const m = new Mover(b, 1 * KiB);
  m.pump();
  clock.advance(5000);
  let s = m.moved;
  b.rate = 40 * KiB;
  clock.advance(5000);
  assert.ok(Math.abs((m.moved - s) / 5 - 40 * KiB) <= 40 * KiB * 0.05, `after raising: ${(m.moved - s) / 5}`);
  s = m.moved;
  b.setRate(5 * KiB);
  assert.equal(b.burst, 1280);
  clock.advance(10_000);
  assert.ok(Math.abs((m.moved - s) / 10 - 5 * KiB) <= 5 * KiB * 0.1, `after lowering: ${(m.moved - s) / 10}`);
  // unlimited: the waiter is woken now, without a timer, and moves all it has
  m.backlog = 0;
  m.a.close();
  const w = new Mover(b, 1 * KiB, 100 * KiB);
  w.pump();
  assert.ok(w.a.waiting);
  b.setRate(0);
  assert.equal(b.waiting, 0);
  assert.equal(w.backlog, 0);
  assert.equal(clock.pending, 0);
  assert.equal(b.tokens, Infinity);
  // limited again
  w.backlog = 100 * KiB;
  b.setRate(Infinity);
  w.pump();
  assert.equal(w.backlog, 0);
  b.setRate(2 * KiB);
  w.backlog = 100 * KiB;
  const before = w.moved;
  w.pump();
  clock.advance(10_000);
  assert.ok(w.moved - before <= 512 + 20 * KiB + 2 * KiB, `limited again: ${w.moved - before}`);
  assert.throws(() => b.setRate(-1), RangeError);
  assert.throws(() => b.setRate(Number.NaN), RangeError);
});

test('a parent becoming unlimited sends its waiters on; closing leaves the queue and gives back credit', () => {
  const clock = new FakeClock();
  const global = new TokenBucket(10 * KiB, { clock });
  const t = new TokenBucket(0, { clock, parent: global });
  const m1 = new Mover(t, 4 * KiB, 40 * KiB);
  const m2 = new Mover(t, 4 * KiB, 40 * KiB);
  m1.pump();
  m2.pump();
  assert.equal(global.waiting, 2);
  m2.a.close();
  assert.equal(global.waiting, 1);
  global.setRate(0);
  assert.equal(global.waiting, 0);
  assert.equal(m1.wakeups, 1);
  assert.equal(m1.backlog, 0);
  // credit granted and not used goes back
  const g = new TokenBucket(10 * KiB, { clock, burst: 100 * KiB });
  const m3 = new Mover(g, 100, 100);
  m3.pump();
  const level = g.tokens;
  m3.a.close();
  assert.equal(g.tokens, level + QUANTUM - 100);
});

test('charges (control messages) go into debt, floored at one burst', () => {
  const clock = new FakeClock();
  const g = new TokenBucket(4 * KiB, { clock });
  const b = new TokenBucket(0, { clock, parent: g });
  b.charge(1000);
  assert.equal(g.tokens, 1024 - 1000);
  b.charge(100_000);
  assert.equal(g.tokens, -1024);
  clock.advance(500);
  assert.equal(g.tokens, 1024);
  assert.equal(b.tokens, Infinity);
});

// ---- real sockets on loopback ----

const limits: WireLimits = { pieceCount: 1000, pieceSize: () => 4 * MiB };
const infoHash = Buffer.alloc(20, 7);
const servers: Server[] = [];
// every pair's connections, closed after each test even when it failed: an open socket left by
// a failed assertion kept the file (and the whole run) from ever ending
const open: PeerConnection[] = [];
afterEach(() => {
  for (const c of open.splice(0)) c.close();
});
after(() => {
  for (const s of servers) s.close();
});

/** Two connected PeerConnections over 127.0.0.1, handshakes done. */
async function pair(opts: { client?: Bandwidth; server?: Bandwidth; onread?: boolean; idleTimeoutMs?: number } = {}): Promise<{ client: PeerConnection; server: PeerConnection }> {
  let resolveServer!: (c: PeerConnection) => void;
  const serverConn = new Promise<PeerConnection>((r) => (resolveServer = r));
  const server = createServer((s) => {
    resolveServer(new PeerConnection(s, { peerId: Buffer.alloc(20, 1), accept: () => limits, outgoing: false, ...(opts.server ? { bandwidth: opts.server } : {}) }));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  // as connector.ts makes them: one reused read buffer, handed to the connection
  const reads = { onChunk: null as ((chunk: Buffer) => void) | null };
  const sock = opts.onread
    ? connect({ host: '127.0.0.1', port, onread: { buffer: Buffer.allocUnsafe(64 * 1024), callback: (n: number, buf: Uint8Array) => { reads.onChunk?.(Buffer.from(buf.buffer, buf.byteOffset, n)); return true; } } })
    : connect(port, '127.0.0.1');
  const client = new PeerConnection(sock, { peerId: Buffer.alloc(20, 2), infoHash, limits, outgoing: true, ...(opts.onread ? { reads } : {}), ...(opts.client ? { bandwidth: opts.client } : {}), ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}) });
  open.push(client);
  const s = await serverConn;
  open.push(s);
  await Promise.all([client, s].map((c) => (c.remote !== null ? Promise.resolve() : new Promise((r) => c.once('handshake', r)))));
  return { client, server: s };
}

const BLOCK = Buffer.alloc(16 * KiB, 0xab);

/** Sends piece messages as fast as the connection takes them, until stopped. */
function flood(conn: PeerConnection): () => void {
  let stopped = false;
  let i = 0;
  const pump = (): void => {
    while (!stopped && !conn.closed && conn.send({ type: 'piece', index: i++ % 1000, begin: 0, block: BLOCK }));
  };
  conn.on('drain', pump);
  pump();
  return () => {
    stopped = true;
  };
}

/** Payload bytes received by `conns` between `from` and `to` ms after now, in bytes/s. */
async function measure(conns: PeerConnection[], fromMs: number, toMs: number): Promise<{ rate: number; each: number[]; total: number }> {
  const start = performance.now();
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  await sleep(fromMs);
  const t0 = performance.now();
  const b0 = conns.map((c) => c.downloaded);
  await sleep(toMs - fromMs);
  const t1 = performance.now();
  const each = conns.map((c, i) => ((c.downloaded - b0[i]!) * 1000) / (t1 - t0));
  const total = conns.reduce((n, c) => n + c.downloaded, 0);
  void start;
  return { rate: each.reduce((x, y) => x + y, 0), each, total };
}

const LIMIT = 2 * MiB;
const within = (rate: number, limit: number, tol = 0.1): boolean => Math.abs(rate - limit) <= limit * tol;

test('loopback: an upload limit of 2 MiB/s holds within 10% over 3 s', async () => {
  const up = new TokenBucket(LIMIT);
  const { client, server } = await pair({ client: { up } });
  const t0 = performance.now();
  const stop = flood(client);
  const m = await measure([server], 500, 3500);
  const whole = (server.downloaded * 1000) / (performance.now() - t0);
  stop();
  client.close();
  server.close();
  console.log(`# up limit ${LIMIT} B/s: ${Math.round(m.rate)} B/s from 0.5 to 3.5 s (${((m.rate / LIMIT - 1) * 100).toFixed(1)}%), ${Math.round(whole)} B/s from the start, burst included (${((whole / LIMIT - 1) * 100).toFixed(1)}%)`);
  assert.ok(within(m.rate, LIMIT), `upload ${m.rate} B/s for a limit of ${LIMIT}`);
  assert.ok(within(whole, LIMIT), `upload from the start ${whole} B/s`);
});

test('loopback: a download limit of 2 MiB/s holds within 10% over 3 s (socket with onread)', async () => {
  const down = new TokenBucket(LIMIT);
  const { client, server } = await pair({ client: { down }, onread: true });
  const t0 = performance.now();
  const stop = flood(server);
  const m = await measure([client], 500, 3500);
  const whole = (client.downloaded * 1000) / (performance.now() - t0);
  stop();
  client.close();
  server.close();
  console.log(`# down limit ${LIMIT} B/s: ${Math.round(m.rate)} B/s from 0.5 to 3.5 s (${((m.rate / LIMIT - 1) * 100).toFixed(1)}%), ${Math.round(whole)} B/s from the start (${((whole / LIMIT - 1) * 100).toFixed(1)}%)`);
  assert.ok(within(m.rate, LIMIT), `download ${m.rate} B/s for a limit of ${LIMIT}`);
  assert.ok(within(whole, LIMIT), `download from the start ${whole} B/s`);
});

test('loopback: one global bucket under three torrent buckets limits the sum of three downloads', async () => {
  const global = new TokenBucket(LIMIT);
  const pairs = await Promise.all([0, 1, 2].map(() => pair({ client: { down: new TokenBucket(0, { parent: global }) } })));
  const stops = pairs.map((p) => flood(p.server));
  const m = await measure(pairs.map((p) => p.client), 500, 3500);
  for (const s of stops) s();
  for (const p of pairs) {
    p.client.close();
    p.server.close();
  }
  console.log(`# global limit ${LIMIT} B/s over 3 downloads: ${Math.round(m.rate)} B/s (${((m.rate / LIMIT - 1) * 100).toFixed(1)}%), each ${m.each.map((x) => Math.round(x)).join(', ')}`);
  assert.ok(within(m.rate, LIMIT), `sum ${m.rate} B/s for a limit of ${LIMIT}`);
  for (const x of m.each) assert.ok(x > LIMIT / 3 / 2, `a connection got ${x} B/s of ${m.rate}`);
});

test('loopback: control messages overtake held blocks; choke stays behind them', async () => {
  const up = new TokenBucket(64 * KiB, { burst: 16 * KiB });
  const { client, server } = await pair({ client: { up } });
  const got: Array<{ type: WireMessage['type']; at: number }> = [];
  const t0 = performance.now();
  server.on('message', (m) => got.push({ type: m.type, at: performance.now() - t0 }));
  // 8 blocks: 128 KiB at 64 KiB/s, the last leaves after ~1.75 s
  for (let i = 0; i < 8; i++) client.send({ type: 'piece', index: i, begin: 0, block: BLOCK });
  assert.ok(client.writableLength >= 6 * 16 * KiB, `held: ${client.writableLength}`);
  client.send({ type: 'have', index: 3 });
  client.send({ type: 'request', index: 1, begin: 0, length: 16 * KiB });
  client.send({ type: 'choke' });
  await new Promise<void>((r) => client.once('drain', () => r()));
  await new Promise((r) => setTimeout(r, 100));
  const order = got.map((g) => g.type);
  // the bucket refills 16 KiB per 250 ms: on a loaded machine a second block may get its
  // tokens before the have is queued; held blocks are what the have must overtake
  const before = order.slice(0, order.indexOf('have')).filter((t) => t === 'piece').length;
  assert.ok(before <= 3, `${before} of 8 blocks before the have: order ${order}`);
  assert.ok(got.find((g) => g.type === 'request')!.at < 500, `request after ${got.find((g) => g.type === 'request')!.at} ms`);
  assert.equal(order.lastIndexOf('piece'), order.indexOf('choke') - 1, `order ${order}`);
  assert.equal(order.filter((t) => t === 'piece').length, 8);
  assert.ok(got.at(-1)!.at > 1200, `the blocks took ${got.at(-1)!.at} ms`);
  client.close();
  server.close();
});

test('loopback: a connection that does not read for want of tokens is not idle', async () => {
  // 8 KiB/s: a 64 KiB read waits ~8 s for its turn, far past the 1.5 s idle timeout
  const down = new TokenBucket(8 * KiB, { burst: 1024 });
  const { client, server } = await pair({ client: { down }, idleTimeoutMs: 1500 });
  const stop = flood(server);
  await new Promise((r) => setTimeout(r, 3000));
  stop();
  assert.equal(client.closed, false, `closed: ${client.closeReason?.detail}`);
  assert.ok(client.downloaded < 64 * KiB + 8 * KiB * 3, `read ${client.downloaded}`);
  client.close();
  server.close();
});
