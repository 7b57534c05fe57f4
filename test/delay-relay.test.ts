import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, test } from 'node:test';
import { startDelayRelay, type DelayRelay } from './helpers/delay-relay.js';

const closers: Array<() => unknown> = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function listen(onConn: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const conns = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    conns.add(s);
    s.once('close', () => conns.delete(s));
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  // half-open sockets would keep server.close() waiting forever
  closers.push(() => new Promise<void>((r) => {
    for (const s of conns) s.destroy();
    server.close(() => r());
  }));
  const a = server.address();
  return { server, port: typeof a === 'object' && a !== null ? a.port : 0 };
}

async function relayTo(port: number, oneWayMs: number, maxQueuedBytes?: number): Promise<DelayRelay> {
  const r = await startDelayRelay({ host: '127.0.0.1', port }, oneWayMs, maxQueuedBytes === undefined ? {} : { maxQueuedBytes });
  closers.push(() => r.close());
  return r;
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex');

/** Everything a socket sends until its FIN, bounded in time. */
function readAll(s: Socket, ms = 20_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const t = setTimeout(() => reject(new Error('readAll: timed out')), ms);
    s.on('data', (c: Buffer) => parts.push(c));
    s.once('end', () => {
      clearTimeout(t);
      resolve(Buffer.concat(parts));
    });
    s.once('error', reject);
  });
}

test('bytes cross intact and in order both ways at once, and a half-close follows the last byte', async () => {
  const up = randomBytes(3 * 1024 * 1024 + 17);
  const down = randomBytes(5 * 1024 * 1024 + 3);
  let received: Promise<Buffer> | null = null;
  const { port } = await listen((s) => {
    s.write(down);
    // the target answers the FIN only after the whole upload: it must arrive before the FIN
    received = readAll(s).then((b) => {
      s.end();
      return b;
    });
  });
  const relay = await relayTo(port, 20);
  const t0 = performance.now();
  const c = await dial(relay.port);
  const got = readAll(c);
  c.end(up);
  const back = await got;
  const elapsed = performance.now() - t0;
  assert.ok(received, 'the target saw a connection');
  assert.equal(sha1(await received), sha1(up));
  assert.equal(sha1(back), sha1(down));
  assert.equal(relay.connections, 1);
  // the delay is latency only: 8 MiB through a 20 ms relay is not 8 MiB per 20 ms chunk
  assert.ok(elapsed < 5000, `took ${elapsed.toFixed(0)} ms`);
  c.destroy();
});

test('a ping-pong pays the delay both ways: RTT ≥ 2 × oneWay', async () => {
  const oneWay = 50;
  const { port } = await listen((s) => s.on('data', (d: Buffer) => s.write(d)));
  const relay = await relayTo(port, oneWay);
  const c = await dial(relay.port);
  const rtts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const echoed = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no echo within 2 s')), 2000);
      c.once('data', () => {
        clearTimeout(t);
        resolve();
      });
    });
    c.write(Buffer.from([i]));
    await echoed;
    rtts.push(performance.now() - t0);
  }
  c.destroy();
  assert.ok(Math.min(...rtts) >= 2 * oneWay, `RTTs ${rtts.map((x) => x.toFixed(1)).join(', ')} ms`);
  assert.ok(Math.max(...rtts) < 2 * oneWay + 250, `RTTs ${rtts.map((x) => x.toFixed(1)).join(', ')} ms`);
});

test('backpressure: a receiver that does not read stalls the sender, the relay holds a bounded queue', async () => {
  const bound = 1024 * 1024;
  let target: Socket | null = null;
  const { port } = await listen((s) => {
    target = s;
    s.pause();
  });
  const relay = await relayTo(port, 5, bound);
  const c = await dial(relay.port);
  c.on('error', () => {});
  const chunk = randomBytes(1024 * 1024);
  let flushed = 0;
  let written = 0;
  // write until the sender has been blocked for a whole second (or far more than any buffer holds)
  for (;;) {
    if (written >= 256 * chunk.length) break;
    written += chunk.length;
    if (c.write(chunk, () => (flushed += chunk.length))) continue;
    const drained = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 1000);
      c.once('drain', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
    if (!drained) break;
  }
  assert.ok(written < 256 * chunk.length, 'the sender was never blocked');
  // kernel socket buffers on loopback hold a few MiB each; the relay adds at most its bound
  assert.ok(flushed < 48 * chunk.length, `${flushed} bytes left the sender`);
  assert.ok(relay.queuedBytes <= bound + 64 * 1024, `relay queue ${relay.queuedBytes} bytes`);
  // once the receiver reads, everything arrives
  assert.ok(target);
  const t: Socket = target;
  const all = readAll(t);
  t.resume();
  c.end();
  assert.equal((await all).length, written);
});

test('a reset on one side resets the other; a refused dial resets the client', async () => {
  const { port } = await listen((s) => s.resetAndDestroy());
  const relay = await relayTo(port, 10);
  const c = await dial(relay.port);
  const closed = await new Promise<string>((resolve) => {
    const t = setTimeout(() => resolve('still open after 2 s'), 2000);
    c.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(e.code ?? e.message);
    });
  });
  assert.equal(closed, 'ECONNRESET');

  const { server, port: deadPort } = await listen(() => {});
  await new Promise<void>((r) => server.close(() => r()));
  const relay2 = await relayTo(deadPort, 10);
  const c2 = await dial(relay2.port);
  const ended = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 2000);
    c2.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
    c2.on('error', () => {});
  });
  assert.ok(ended, 'the client was not closed when the target refused');
});
