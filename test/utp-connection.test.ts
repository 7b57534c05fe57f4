/**
 * The connection's timers and loss recovery with a fake clock: two endpoints joined by an
 * in-memory wire that the test can make drop chosen packets, so every case is exact and fast.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { Ledbat, TARGET_DELAY_US } from '../src/utp/congestion.js';
import { IDLE_TIMEOUT_MS, INITIAL_RTO_MS, KEEPALIVE_MS, MIN_RTO_MS, MSS, RECV_BUFFER, SYN_RESENDS } from '../src/utp/connection.js';
import { type Clock, type Datagrams, TICK_MS, UtpEndpoint } from '../src/utp/endpoint.js';
import { decodePacket, emptyHeader, HEADER_SIZE, ST_DATA, ST_RESET, ST_STATE, ST_SYN, writeHeader } from '../src/utp/packet.js';
import type { UtpStream } from '../src/utp/stream.js';
import { bytes, rng, seedFromEnv } from './helpers/random.js';
import { readBytes, sha1, writeAll } from './helpers/udp-utp.js';

class FakeClock implements Clock {
  t = 1000;
  private readonly fns: Array<() => void> = [];
  now(): number {
    return this.t;
  }
  every(_ms: number, fn: () => void): { cancel(): void } {
    this.fns.push(fn);
    return { cancel: () => this.fns.splice(this.fns.indexOf(fn), 1) };
  }
  /**
   * Time passes in ticks; between them the event loop turns until no packet is on the wire,
   * as on a network much faster than the timers.
   */
  async advance(ms: number): Promise<void> {
    for (let left = ms; left > 0; left -= TICK_MS) {
      this.t += Math.min(TICK_MS, left);
      for (const f of [...this.fns]) f();
      await turn();
      for (let n = 0; n < 100_000 && wireBusy > 0; n++) await turn();
      await turn();
    }
  }
}

/** datagrams on the in-memory wire, not yet delivered */
let wireBusy = 0;

interface Seen {
  from: 'A' | 'B';
  type: number;
  seq: number;
  ack: number;
  sack: boolean;
  wnd: number;
  at: number;
  payload: number;
}

/** Two endpoints, A (127.0.0.1:1000) and B (127.0.0.1:2000), over an in-memory wire. */
function pair(options: { seq?: number; drop?: (p: Seen, n: number) => boolean; rewrite?: (buf: Buffer, p: Seen) => Buffer } = {}) {
  const clock = new FakeClock();
  const log: Seen[] = [];
  const h = emptyHeader();
  let a!: UtpEndpoint;
  let b!: UtpEndpoint;
  const wire = (from: 'A' | 'B'): Datagrams => ({
    send(buf) {
      const copy = Buffer.from(buf as Uint8Array); // the sender reuses its ack buffer
      assert.equal(decodePacket(copy, h), null);
      const seen: Seen = { from, type: h.type, seq: h.seqNr, ack: h.ackNr, sack: h.sack !== null, wnd: h.wndSize, at: clock.t, payload: h.payload.length };
      log.push(seen);
      if (options.drop?.(seen, log.length)) return;
      const out = options.rewrite ? options.rewrite(copy, seen) : copy;
      wireBusy++;
      setImmediate(() => {
        wireBusy--;
        (from === 'A' ? b : a).receive(out, '127.0.0.1', from === 'A' ? 1000 : 2000);
      });
    },
  });
  const random = rng(7);
  a = new UtpEndpoint(wire('A'), { clock, random, ...(options.seq !== undefined ? { initialSeq: options.seq } : {}) });
  b = new UtpEndpoint(wire('B'), { clock, random, ...(options.seq !== undefined ? { initialSeq: options.seq } : {}) });
  return { clock, log, a, b };
}

/**
 * A drop rule over A's data packets, by index from the first (the sequence numbers may wrap)
 * and by transmission (1 for the first); `sends` counts each packet's transmissions.
 */
function dropData(rule: (index: number, transmission: number) => boolean): { drop: (s: Seen) => boolean; sends: Map<number, number> } {
  const sends = new Map<number, number>();
  let base = -1;
  const drop = (s: Seen): boolean => {
    if (s.from !== 'A' || s.type !== ST_DATA) return false;
    if (base < 0) base = s.seq;
    const i = (s.seq - base + 65536) % 65536;
    const n = (sends.get(i) ?? 0) + 1;
    sends.set(i, n);
    return rule(i, n);
  };
  return { drop, sends };
}

async function connected(p: ReturnType<typeof pair>): Promise<[UtpStream, UtpStream]> {
  const accepted = once(p.b, 'connection');
  const client = p.a.connect('127.0.0.1', 2000);
  await once(client, 'connect');
  const [server] = (await accepted) as [UtpStream];
  return [client, server];
}

/**
 * Runs the event loop until `done` settles, advancing the fake clock a tick only once no
 * packet is on the wire: time passes only while the endpoints wait, as on a fast network.
 */
async function until<T>(clock: FakeClock, done: Promise<T>, maxMs = 120_000): Promise<T> {
  let settled = false;
  const p = done.finally(() => (settled = true));
  for (let t = 0, turns = 0; !settled && t < maxMs && turns < 1_000_000; turns++) {
    await turn();
    if (wireBusy > 0) continue;
    await turn();
    if (wireBusy > 0 || settled) continue;
    await clock.advance(TICK_MS);
    t += TICK_MS;
  }
  assert.ok(settled, `not done after ${maxMs} ms of fake time`);
  return p;
}

describe('uTP connection (fake clock)', () => {
  it('carries 1 MiB each way with sequence numbers that wrap past 65535', async () => {
    const p = pair({ seq: 65000 });
    const [client, server] = await connected(p);
    const r = rng(seedFromEnv());
    const up = bytes(r, 1 << 20);
    const down = bytes(r, 1 << 20);
    const got = Promise.all([readBytes(server, up.length), readBytes(client, down.length)]);
    await Promise.all([writeAll(client, up), writeAll(server, down)]);
    const [u, d] = await until(p.clock, got);
    assert.equal(u.hash, sha1(up));
    assert.equal(d.hash, sha1(down));
    const dataSeqs = p.log.filter((s) => s.from === 'A' && s.type === ST_DATA).map((s) => s.seq);
    assert.ok(dataSeqs.includes(65535) && dataSeqs.includes(0) && dataSeqs.length > 700, 'the numbers wrapped');
  });

  it('a lost packet is resent alone: the SACK acks what came after it', async () => {
    let dropped = -1;
    const p = pair({
      drop: (s) => {
        // the fifth data packet from A, its first transmission only
        if (s.from === 'A' && s.type === ST_DATA && dropped < 0 && p.log.filter((x) => x.from === 'A' && x.type === ST_DATA).length === 5) {
          dropped = s.seq;
          return true;
        }
        return false;
      },
    });
    const [client, server] = await connected(p);
    const data = bytes(rng(3), 40 * MSS);
    const got = readBytes(server, data.length);
    await writeAll(client, data);
    assert.equal((await until(p.clock, got)).hash, sha1(data));
    const sends = p.log.filter((s) => s.from === 'A' && s.type === ST_DATA);
    const holeSends = sends.filter((s) => s.seq === dropped).length;
    // twice, or three times when the tail-loss probe (one fake tick without progress) went as well
    assert.ok(holeSends >= 2 && holeSends <= 3, `the hole went ${holeSends} times`);
    assert.equal(sends.length, 39 + holeSends, 'nothing else was resent');
    assert.ok(p.log.some((s) => s.from === 'B' && s.type === ST_STATE && s.sack), 'B sent a selective ack');
    assert.equal(p.a.stats().timeouts, 0);
  });

  it('a resend lost again, with nothing new to send: one probe, then RACK resends the rest at once', async () => {
    // the burst after a SACK overflowed the receiver twice (libtorrent's socket, its thread
    // descheduled): the holes must not wait for packets sent after them that never come
    const { drop, sends } = dropData((i, n) => (i >= 20 && i < 30 && n === 1) || (i >= 22 && i < 30 && n === 2));
    const p = pair({ drop });
    const [client, server] = await connected(p);
    const data = bytes(rng(5), 40 * MSS);
    const got = readBytes(server, data.length);
    const start = p.clock.t;
    await writeAll(client, data);
    assert.equal((await until(p.clock, got)).hash, sha1(data));
    const took = p.clock.t - start;
    assert.equal(p.a.stats().timeouts, 0);
    assert.ok(p.a.stats().probes <= 2, `${p.a.stats().probes} probes: the holes went one per probe`);
    assert.ok(took <= 6 * TICK_MS, `${took} ms of fake time`);
    for (let i = 0; i < 40; i++) assert.ok((sends.get(i) ?? 0) <= 3, `packet ${i} went ${sends.get(i)} times`);
  });

  it('an ack held back by a hole gives no RTT sample (Karn), and samples resume after it', async () => {
    // a receiver without SACK (or past its reach) acks what came after a hole only once the
    // hole is filled: those packets' send times say nothing about the round trip
    const p = pair({
      drop: dropData((i, n) => i === 5 && n <= 3).drop,
      rewrite: (buf, s) => {
        if (s.from !== 'B' || !s.sack) return buf;
        const plain = Buffer.from(buf.subarray(0, HEADER_SIZE));
        plain[1] = 0;
        return plain;
      },
    });
    const [client, server] = await connected(p);
    const data = bytes(rng(6), 40 * MSS);
    const got = readBytes(server, data.length);
    await writeAll(client, data);
    assert.equal((await until(p.clock, got)).hash, sha1(data));
    assert.ok(p.a.stats().timeouts >= 1, 'the hole waited for a timeout');
    // the round trip is 0 in fake time; the packets behind the hole were acked half a second late
    assert.ok(client.conn.roundTrip < TICK_MS, `round trip estimated at ${client.conn.roundTrip} ms`);
    // packets sent after the recovery give samples again, and the timeout comes back down
    const more = bytes(rng(7), 40 * MSS);
    const got2 = readBytes(server, more.length);
    await writeAll(client, more);
    assert.equal((await until(p.clock, got2)).hash, sha1(more));
    assert.equal(client.conn.rto, MIN_RTO_MS);
  });

  it('connect: the SYN is resent as the timeout doubles, then ETIMEDOUT', async () => {
    const p = pair({ drop: () => true });
    const client = p.a.connect('127.0.0.1', 2000);
    let writeErr: unknown = 'not called';
    client.write(Buffer.from('never sent'), (e) => (writeErr = e));
    const failed = once(client, 'error');
    const [err] = (await until(p.clock, failed)) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ETIMEDOUT');
    assert.equal((writeErr as NodeJS.ErrnoException).code, 'ERR_STREAM_DESTROYED', 'the write callback says it never went');
    const syns = p.log.filter((s) => s.type === ST_SYN);
    assert.equal(syns.length, SYN_RESENDS + 1);
    const gaps = syns.slice(1).map((s, i) => s.at - syns[i]!.at);
    assert.deepEqual(gaps.map((g) => Math.round(g / TICK_MS) * TICK_MS), [INITIAL_RTO_MS, 2 * INITIAL_RTO_MS]);
  });

  it('a RESET answering our SYN is ECONNREFUSED', async () => {
    const clock = new FakeClock();
    let a!: UtpEndpoint;
    const h = emptyHeader();
    a = new UtpEndpoint({
      send(buf) {
        decodePacket(Buffer.from(buf as Uint8Array), h);
        const reset = Buffer.alloc(HEADER_SIZE);
        writeHeader(reset, ST_RESET, h.connId, 0, 0, 0, 1, h.seqNr);
        setImmediate(() => a.receive(reset, '127.0.0.1', 2000));
      },
    }, { clock });
    const s = a.connect('127.0.0.1', 2000);
    const closed = new Promise((resolve) => s.once('close', resolve));
    const [err] = (await once(s, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');
    await closed;
    assert.equal(a.stats().connections, 0);
  });

  it('data: resends back off, doubling from the 500 ms floor, then ETIMEDOUT', async () => {
    let cut = false;
    const p = pair({ drop: (s) => cut && s.from === 'B' });
    const [client] = await connected(p);
    client.write(Buffer.alloc(1000, 7));
    await p.clock.advance(TICK_MS);
    cut = true;
    client.write(Buffer.alloc(1000, 8));
    const failed = once(client, 'error');
    const [err] = (await until(p.clock, failed)) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ETIMEDOUT');
    const last = p.log.filter((s) => s.from === 'A' && s.type === ST_DATA).slice(-1)[0]!;
    const sends = p.log.filter((s) => s.from === 'A' && s.type === ST_DATA && s.seq === last.seq);
    const times = sends.map((s) => s.at - sends[0]!.at);
    // first the tail-loss probe (two round trips, at least a tick), then the timeouts: 500 ms
    // after the first send, then each twice as long as the one before
    assert.deepEqual(times, [0, TICK_MS, MIN_RTO_MS, 3 * MIN_RTO_MS, 7 * MIN_RTO_MS]);
    assert.ok(p.clock.t - sends[0]!.at >= 15 * MIN_RTO_MS, 'the error after the fourth timeout');
  });

  it('idle: a keepalive every 29 s, and an error once nothing is heard for three of them', async () => {
    let cut = false;
    const p = pair({ drop: (s) => cut && s.from === 'B' });
    const [client, server] = await connected(p);
    server.on('error', () => {});
    cut = true;
    const t0 = p.clock.t;
    const failed = once(client, 'error');
    const [err] = (await until(p.clock, failed, 2 * IDLE_TIMEOUT_MS)) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ETIMEDOUT');
    assert.ok(p.clock.t - t0 >= IDLE_TIMEOUT_MS - TICK_MS && p.clock.t - t0 <= IDLE_TIMEOUT_MS + 2 * TICK_MS);
    const keepalives = p.log.filter((s) => s.from === 'A' && s.type === ST_STATE && s.at > t0);
    assert.ok(keepalives.length >= 2 && keepalives[0]!.at - t0 >= KEEPALIVE_MS - TICK_MS, JSON.stringify(keepalives.map((k) => k.at - t0)));
  });

  it('pause() shrinks the advertised window to nothing; resume() reopens it and the rest comes', async () => {
    const p = pair();
    const [client, server] = await connected(p);
    server.pause();
    const data = bytes(rng(5), 2 * RECV_BUFFER);
    const got = readBytes(server, data.length);
    void writeAll(client, data);
    await p.clock.advance(2000);
    const acks = p.log.filter((s) => s.from === 'B' && s.type === ST_STATE);
    const lastWnd = acks[acks.length - 1]!.wnd;
    assert.ok(lastWnd < MSS, `window ${lastWnd}`);
    const firsts = new Map<number, number>();
    for (const s of p.log) if (s.from === 'A' && s.type === ST_DATA) firsts.set(s.seq, s.payload);
    const sent = [...firsts.values()].reduce((n, b) => n + b, 0);
    const resent = p.log.filter((s) => s.from === 'A' && s.type === ST_DATA).length - firsts.size;
    // what was in flight when the window closed, and a probe per timeout, may pass it
    assert.ok(sent <= RECV_BUFFER + 16 * MSS, `sent ${sent} into a paused reader (and ${resent} resends)`);
    const lastSecond = p.log.filter((s) => s.from === 'A' && s.type === ST_DATA && s.at > p.clock.t - 1000).length;
    assert.ok(lastSecond <= 2, `${lastSecond} packets in the last second to a closed window`);
    server.resume();
    assert.equal((await until(p.clock, got)).hash, sha1(data));
  });

  it('a sender that ignores our closed window is not buffered without end', async () => {
    // B's answers are logged, not delivered: A knows nothing of this connection
    const p = pair({ drop: (s) => s.from === 'B' });
    const streams: UtpStream[] = [];
    p.b.on('connection', (s: UtpStream) => {
      s.on('error', () => {});
      s.pause();
      streams.push(s);
    });
    const syn = Buffer.alloc(HEADER_SIZE);
    writeHeader(syn, ST_SYN, 500, 0, 0, 1 << 20, 1, 0);
    p.b.receive(syn, '127.0.0.1', 1000);
    await turn();
    const payload = Buffer.alloc(MSS, 3);
    for (let seq = 2; seq < 2 + 3 * (RECV_BUFFER / MSS); seq++) {
      const d = Buffer.alloc(HEADER_SIZE + MSS);
      writeHeader(d, ST_DATA, 501, 0, 0, 1 << 20, seq, 0);
      payload.copy(d, HEADER_SIZE);
      p.b.receive(d, '127.0.0.1', 1000);
    }
    await turn();
    await turn();
    const acks = p.log.filter((s) => s.from === 'B' && s.type === ST_STATE);
    const acked = acks[acks.length - 1]!.ack - 1;
    assert.ok(acked * MSS <= RECV_BUFFER + 64 * MSS, `${acked} packets taken into a paused reader`);
    assert.equal(acks[acks.length - 1]!.wnd, 0);
    assert.equal(streams.length, 1);
  });

  it('FIN: destroy() sends what was written, then FIN; the other end sees end and close', async () => {
    const p = pair();
    const [client, server] = await connected(p);
    const data = bytes(rng(9), 10 * MSS + 17);
    const got = readBytes(server, data.length);
    const ended = once(server, 'end');
    client.write(data);
    client.destroy();
    const serverClosed = new Promise((resolve) => server.once('close', resolve));
    assert.equal((await until(p.clock, got)).hash, sha1(data));
    await until(p.clock, ended);
    await until(p.clock, serverClosed);
    await p.clock.advance(200);
    assert.equal(p.a.stats().connections, 0, 'the FIN was acked and A forgot the connection');
    assert.equal(p.b.stats().connections, 0);
  });

  it('dialling from a closed endpoint is an error (ECONNABORTED), then close', async () => {
    const p = pair();
    p.a.close();
    const s = p.a.connect('127.0.0.1', 2000);
    const closed = new Promise((resolve) => s.once('close', resolve));
    const [err] = (await once(s, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNABORTED');
    await closed;
    assert.equal(p.a.stats().connections, 0);
  });

  it('a datagram for no connection is answered with RESET and counted', async () => {
    const p = pair();
    const stray = Buffer.alloc(HEADER_SIZE + 1);
    writeHeader(stray, ST_DATA, 4242, 0, 0, 0, 1, 1);
    p.b.receive(stray, '127.0.0.1', 1000);
    p.b.receive(Buffer.from([0x41, 0]), '127.0.0.1', 1000);
    assert.equal(p.b.stats().refused, 2);
    assert.equal(p.log.filter((s) => s.type === ST_RESET).length, 1);
  });
});

describe('LEDBAT window', () => {
  it('grows under the 100 ms target, shrinks past it, halves on loss, one packet on timeout', () => {
    const l = new Ledbat({ mss: MSS, maxWindow: 1 << 20 });
    let t = 0;
    const base = 5_000;
    for (let i = 0; i < 200; i++) l.onAck(MSS, base + 1_000, (t += 10));
    const grown = l.cwnd;
    assert.ok(grown > 20 * MSS, `grew to ${grown}`);
    l.onLoss();
    assert.equal(l.cwnd, Math.floor(grown / 2));
    assert.equal(l.slowStart, false);
    const halved = l.cwnd;
    for (let i = 0; i < 200; i++) l.onAck(MSS, base + TARGET_DELAY_US + 100_000, (t += 10));
    assert.ok(l.cwnd < halved, `200 ms of queue: ${l.cwnd} < ${halved}`);
    assert.equal(l.baseDelay, base + 1_000);
    const shrunk = l.cwnd;
    for (let i = 0; i < 200; i++) l.onAck(MSS, base + TARGET_DELAY_US / 2, (t += 10));
    assert.ok(l.cwnd > shrunk, 'half the target: grows again');
    l.onTimeout();
    assert.equal(l.cwnd, MSS);
  });

  it('forgets a base delay older than two minutes', () => {
    const l = new Ledbat({ mss: MSS, maxWindow: 1 << 20 });
    l.onAck(MSS, 1_000, 0);
    l.onAck(MSS, 50_000, 61_000);
    l.onAck(MSS, 50_000, 122_000);
    assert.equal(l.baseDelay, 50_000, 'the route changed: its new delay is the base');
  });
});

