/**
 * Which transport a peer is dialled over (connector.ts): uTP first, as libtorrent does; TCP
 * joins a uTP dial not answered within the head start and the first to connect is used; after
 * a RESET, or when TCP won, TCP alone from then on, no failure counted for uTP; with one
 * transport disabled only the other. The TCP side is a real loopback server; the uTP side a
 * dial that answers as the endpoint would (connect, ECONNREFUSED, or nothing).
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:net';
import { after, test } from 'node:test';
import { Connector, type DialedSocket, type Transports } from '../src/swarm/connector.js';
import { memoryPipe } from '../src/wire/memory-pipe.js';
import type { PeerRecord } from '../src/peers/record.js';

const servers: Server[] = [];
const sockets: Array<{ destroy(): unknown }> = [];
after(() => {
  for (const s of sockets) s.destroy();
  for (const s of servers) s.close();
});

async function tcpPeer(): Promise<number> {
  const server = createServer((s) => s.on('error', () => {}));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as { port: number }).port;
}

type UtpAnswer = 'connect' | 'reset' | 'silence' | 'slow';

/** A uTP dial that answers each attempt as `answers` says (the last answer repeats). */
function utpDial(answers: UtpAnswer[]): { dial: NonNullable<Transports['utp']>; calls: () => number } {
  let n = 0;
  const dial = (): DialedSocket => {
    const answer = answers[Math.min(n++, answers.length - 1)]!;
    const [end] = memoryPipe();
    const s = end as DialedSocket & EventEmitter;
    if (answer === 'connect') process.nextTick(() => s.emit('connect'));
    // answered within the head start, but not at once (a round trip away)
    if (answer === 'slow') setTimeout(() => s.emit('connect'), 60);
    if (answer === 'reset') process.nextTick(() => s.emit('error', Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' })));
    return s;
  };
  return { dial, calls: () => n };
}

interface Outcome {
  connected: Array<{ transport: string | undefined; port: number }>;
  failures: string[];
  /** ms from the connector's making to each connection */
  times: number[];
  c: Connector;
}

function connector(transports: Transports, onConnect: (rec: PeerRecord, c: Connector) => void = () => {}): Outcome {
  const o: Outcome = { connected: [], failures: [], times: [], c: null as unknown as Connector };
  const t0 = Date.now();
  o.c = new Connector(
    { maxPeers: 10, halfOpen: 4, connectTimeoutMs: 2000, utpHeadStartMs: 150, utpConnectTimeoutMs: 1000, retryBaseMs: 50, maxAttempts: 3, transports },
    (socket, rec) => {
      o.connected.push({ transport: rec.transport, port: rec.port });
      o.times.push(Date.now() - t0);
      socket.on('error', () => {});
      sockets.push(socket);
      onConnect(rec, o.c);
    },
    (_rec, reason) => o.failures.push(reason),
  );
  return o;
}

const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('both transports: uTP is dialled first and used when it answers', async () => {
  const port = await tcpPeer();
  const utp = utpDial(['connect']);
  const o = connector({ tcp: true, utp: utp.dial });
  o.c.add({ ip: '127.0.0.1', port, source: 'cli' });
  await settle(100);
  o.c.stop();
  assert.deepEqual(o.connected, [{ transport: 'utp', port }]);
  assert.equal(utp.calls(), 1);
  assert.deepEqual(o.failures, []);
});

test('a RESET to our SYN: TCP at once, no failure counted, and TCP again on the next dial', async () => {
  const port = await tcpPeer();
  const utp = utpDial(['reset']);
  // the first connection ends as a useful peer leaving: it is dialled again after one base wait
  let ends = 0;
  const o = connector({ tcp: true, utp: utp.dial }, (rec, c) => {
    if (ends++ === 0) setTimeout(() => c.release(`127.0.0.1:${port}`, rec, { retry: true, handshook: true, useful: true, hungUp: true }), 10);
  });
  o.c.add({ ip: '127.0.0.1', port, source: 'cli' });
  await settle(400);
  o.c.stop();
  assert.deepEqual(o.connected.map((c) => c.transport), ['tcp', 'tcp'], 'TCP after the RESET, and TCP from then on');
  assert.equal(utp.calls(), 1, 'uTP tried once for the address');
  assert.deepEqual(o.failures, [], 'a uTP refusal with TCP to fall back on is not a failure');
  assert.ok(o.times[0]! < 100, `TCP at once, not after the uTP timeout (${o.times[0]} ms)`);
});

test('silence to our SYN: TCP joins after the head start, wins, and is dialled alone from then on', async () => {
  const port = await tcpPeer();
  const utp = utpDial(['silence']);
  let ends = 0;
  const o = connector({ tcp: true, utp: utp.dial }, (rec, c) => {
    if (ends++ === 0) setTimeout(() => c.release(`127.0.0.1:${port}`, rec, { retry: true, handshook: true, useful: true, hungUp: true }), 10);
  });
  const t0 = Date.now();
  o.c.add({ ip: '127.0.0.1', port, source: 'cli' });
  while (o.connected.length < 2 && Date.now() - t0 < 2000) await settle(10);
  o.c.stop();
  assert.deepEqual(o.connected.map((c) => c.transport), ['tcp', 'tcp']);
  assert.ok(o.times[0]! >= 140 && o.times[0]! < 600, `TCP after the 150 ms head start, not the 1 s uTP timeout (${o.times[0]} ms)`);
  assert.equal(utp.calls(), 1, 'the second dial goes over TCP alone');
  assert.deepEqual(o.failures, []);
});

test('a uTP answer within the head start wins; TCP is never dialled', async () => {
  let accepted = 0;
  const server = createServer((s) => {
    accepted++;
    s.on('error', () => {});
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const o = connector({ tcp: true, utp: utpDial(['slow']).dial });
  o.c.add({ ip: '127.0.0.1', port, source: 'cli' });
  await settle(400);
  o.c.stop();
  assert.deepEqual(o.connected.map((c) => c.transport), ['utp']);
  assert.equal(accepted, 0, 'no TCP connection was made');
});

test('TCP refused while uTP is still silent: the address fails once uTP gives up, with TCP\'s reason', async () => {
  const closed = await tcpPeer();
  servers.pop()!.close();
  await settle(20);
  const o = connector({ tcp: true, utp: utpDial(['silence']).dial });
  o.c.add({ ip: '127.0.0.1', port: closed, source: 'cli' });
  await settle(600);
  assert.deepEqual(o.failures, [], 'not failed while uTP may still answer');
  await settle(700);
  o.c.stop();
  assert.equal(o.failures[0], 'ECONNREFUSED');
});

test('--no-tcp: a uTP failure is the address\'s failure, and it is retried over uTP only', async () => {
  const port = await tcpPeer();
  const utp = utpDial(['reset', 'reset', 'connect']);
  const o = connector({ tcp: false, utp: utp.dial });
  o.c.add({ ip: '127.0.0.1', port, source: 'cli' });
  await settle(500);
  o.c.stop();
  assert.deepEqual(o.failures, ['ECONNREFUSED', 'ECONNREFUSED']);
  assert.deepEqual(o.connected.map((c) => c.transport), ['utp'], 'connected over uTP on the third dial; never TCP');
  assert.equal(utp.calls(), 3);
});

test('--no-utp: TCP only, never the uTP dial', async () => {
  const port = await tcpPeer();
  const o = connector({ tcp: true, utp: null });
  o.c.add({ ip: '127.0.0.1', port, source: 'cli' });
  await settle(100);
  o.c.stop();
  assert.deepEqual(o.connected.map((c) => c.transport), ['tcp']);
});

test('no transport at all is refused when the connector is made', () => {
  assert.throws(() => connector({ tcp: false, utp: null }), /no transport/);
});

test('both fail: the address is backed off and given up as before (TCP failures counted)', async () => {
  const utp = utpDial(['reset']);
  // a closed port: TCP refuses
  const closed = await tcpPeer();
  servers.pop()!.close();
  await settle(20);
  const o = connector({ tcp: true, utp: utp.dial });
  o.c.add({ ip: '127.0.0.1', port: closed, source: 'cli' });
  await settle(800);
  o.c.stop();
  assert.equal(utp.calls(), 1, 'uTP once; after its failure TCP only');
  assert.deepEqual(o.failures, ['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED'], 'three TCP failures (maxAttempts 3), then given up');
  assert.equal(o.c.pending, 0);
});

test('transports given as undefined (a swarm passing on what it was not given): TCP only', async () => {
  const port = await tcpPeer();
  const o = connector(undefined as unknown as Transports);
  o.c.add({ ip: '127.0.0.1', port, source: 'cli' });
  await settle(100);
  o.c.stop();
  assert.deepEqual(o.connected.map((c) => c.transport), ['tcp']);
});

test('an IPv6 peer is dialled over TCP without an IPv6 UDP socket (with TCP off it is given up), over uTP with one', async () => {
  const utp = utpDial(['connect']);
  const o = connector({ tcp: true, utp: utp.dial });
  // nothing listens there: the point is which transport is tried
  o.c.add({ ip: '::1', port: 1, source: 'cli' });
  await settle(100);
  o.c.stop();
  assert.equal(utp.calls(), 0);
  assert.ok(o.failures.length >= 1, 'TCP was dialled (and refused)');
  const off = connector({ tcp: false, utp: utp.dial });
  off.c.add({ ip: '::1', port: 1, source: 'cli' });
  await settle(50);
  off.c.stop();
  assert.equal(utp.calls(), 0);
  assert.deepEqual(off.failures, ['no uTP to an IPv6 address (no such UDP socket here), and TCP is off']);
  const six = connector({ tcp: false, utp: utp.dial, utpFamilies: [4, 6] });
  six.c.add({ ip: '::1', port: 1, source: 'cli' });
  await settle(50);
  six.c.stop();
  assert.equal(utp.calls(), 1, 'dialled over uTP');
  assert.equal(off.c.pending, 0);
});
