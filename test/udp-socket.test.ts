import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DhtNode } from '../src/dht/node.js';
import { SharedUdp } from '../src/net/udp-socket.js';
import { Session } from '../src/session/session.js';
import { udpAnnounce } from '../src/tracker/udp.js';
import { CLI, runCli } from './helpers/cli.js';
import { freeTcpPort } from './helpers/ports.js';
import { makeTorrentBytes, tmpDir } from './helpers/torrent.js';

const closers: Array<() => unknown> = [];
const procs: ChildProcess[] = [];
after(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  for (const c of closers) await c();
});

async function client(): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  closers.push(() => s.close());
  return s;
}

function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) return resolve();
      if (Date.now() > end) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

function utpHeader(type: number, version = 1, length = 20): Buffer {
  const b = Buffer.alloc(length);
  b[0] = (type << 4) | version;
  return b;
}

function trackerReply(action: number, tid: number, length = 16): Buffer {
  const b = Buffer.alloc(length);
  b.writeUInt32BE(action, 0);
  b.writeUInt32BE(tid, 4);
  return b;
}

test('SharedUdp demux: KRPC, tracker replies and uTP interleaved reach their handlers; junk is counted and dropped', async () => {
  const udp = await SharedUdp.bind(0, '127.0.0.1');
  closers.push(() => udp.close());
  const got: string[] = [];
  udp.onDht((b, _a, p) => got.push(`dht:${b.toString('latin1')}:${p}`));
  udp.onUtp((b) => got.push(`utp:${b[0]!.toString(16)}:${b.length}`));
  const stop = udp.expect(0xdeadbeef, (b) => got.push(`tracker:${b.readUInt32BE(0)}`));
  assert.ok(stop);
  assert.equal(udp.expect(0xdeadbeef, () => {}), null, 'a transaction id waited for twice');
  const c = await client();
  const port = c.address().port;
  const good: Buffer[] = [
    Buffer.from('d1:y1:qe'),
    trackerReply(0, 0xdeadbeef),
    utpHeader(4), // ST_SYN
    utpHeader(0, 1, 1400), // ST_DATA with payload
    trackerReply(3, 0xdeadbeef, 20), // an error reply: still the transaction's
    utpHeader(2), // ST_STATE
    Buffer.from('d1:y1:re'),
  ];
  const junk: Buffer[] = [
    Buffer.from([0xff, 1, 2, 3]),
    utpHeader(5), // no such type
    utpHeader(4, 2), // version 2
    utpHeader(1, 1, 19), // shorter than a header
    Buffer.from('hello'),
  ];
  const strays = [trackerReply(1, 0x12345678), Buffer.from([0, 0, 0])];
  // interleaved: every good one between junk, sent in order over loopback
  const order = [good[0]!, junk[0]!, good[1]!, strays[0]!, good[2]!, junk[1]!, good[3]!, junk[2]!, good[4]!, junk[3]!, good[5]!, strays[1]!, junk[4]!, good[6]!];
  for (const b of order) c.send(b, udp.port, '127.0.0.1');
  await until(() => udp.counters.received === order.length, 5000, `${order.length} datagrams (got ${udp.counters.received})`);
  assert.deepEqual(got, [`dht:d1:y1:qe:${port}`, 'tracker:0', 'utp:41:20', 'utp:1:1400', 'tracker:3', 'utp:21:20', `dht:d1:y1:re:${port}`]);
  assert.equal(udp.counters.dht, 2);
  assert.equal(udp.counters.tracker, 2);
  assert.equal(udp.counters.utp, 3);
  assert.equal(udp.counters.trackerUnmatched, 2);
  assert.equal(udp.counters.dropped, junk.length);
  // once the transaction is over, its replies are strays; without handlers, KRPC and uTP are dropped
  stop!();
  udp.onDht(null);
  udp.onUtp(null);
  for (const b of [trackerReply(0, 0xdeadbeef), Buffer.from('d1:y1:qe'), utpHeader(4)]) c.send(b, udp.port, '127.0.0.1');
  await until(() => udp.counters.received === order.length + 3, 5000, 'three more datagrams');
  assert.equal(got.length, 7);
  assert.equal(udp.counters.trackerUnmatched, 3);
  assert.equal(udp.counters.dropped, junk.length + 2);
  // a send's callback says when the buffer may be reused
  const echoed = new Promise<Buffer>((r) => c.once('message', r));
  const sent = await new Promise<Error | null>((r) => udp.send(Buffer.from('d1:y1:re'), port, '127.0.0.1', r));
  assert.equal(sent, null);
  assert.equal((await echoed).toString(), 'd1:y1:re');
  assert.equal(udp.counters.sent, 1);
  // sending after close is a no-op, not a throw (a late retransmission)
  await udp.close();
  udp.send(Buffer.from('x'), port, '127.0.0.1');
  assert.equal(await new Promise((r) => udp.send(Buffer.from('x'), port, '127.0.0.1', r)), null);
  assert.equal(udp.counters.sent, 1);
});

/** A UDP tracker that answers connect and announce (no peers) and records where requests came from. */
async function scriptedTracker(): Promise<{ port: number; from: number[]; announcedPorts: number[] }> {
  const s = await client();
  const from: number[] = [];
  const announcedPorts: number[] = [];
  s.on('message', (m, rinfo) => {
    if (m.length < 16) return;
    from.push(rinfo.port);
    const action = m.readUInt32BE(8);
    const r = Buffer.alloc(action === 0 ? 16 : 20);
    r.writeUInt32BE(action, 0);
    m.copy(r, 4, 12, 16);
    if (action === 0) r.writeBigUInt64BE(0x1234n, 8);
    else if (action === 1 && m.length >= 98) {
      announcedPorts.push(m.readUInt16BE(96));
      r.writeUInt32BE(1800, 8);
    } else return;
    s.send(r, rinfo.port, rinfo.address);
  });
  return { port: s.address().port, from, announcedPorts };
}

const params = (port: number) => ({ infoHash: Buffer.alloc(20, 7), peerId: Buffer.alloc(20, 8), port, uploaded: 0, downloaded: 0, left: 1, event: 'started' as const, key: 1, numwant: 50 });

test('a session: TCP and UDP on one port number; its DHT node and UDP announces leave from it; uTP-shaped datagrams reach the uTP handler meanwhile', async () => {
  const session = new Session();
  const port = await session.listen(0, '127.0.0.1');
  assert.ok(session.udp, 'the UDP socket is bound');
  assert.equal(session.udp.port, port);
  const utp: number[] = [];
  session.udp.onUtp((b) => utp.push(b[0]!));
  const node = new DhtNode({ udp: session.udp, bootstrap: [], stateFile: null });
  await node.start();
  session.useDht(node);
  assert.equal(session.dhtPort, port);
  const other = new DhtNode({ host: '127.0.0.1', bootstrap: [], stateFile: null });
  await other.start();
  closers.push(() => other.close());
  const t = await scriptedTracker();
  const c = await client();
  // two announces at once on the one socket, a ping through it, and uTP datagrams in between
  for (let i = 0; i < 20; i++) c.send(utpHeader(4), port, '127.0.0.1');
  const [a1, a2, id] = await Promise.all([
    udpAnnounce(`udp://127.0.0.1:${t.port}`, params(port), { timeoutMs: 5000, retransmitBaseMs: 500, udp: session.udp }),
    udpAnnounce(`udp://127.0.0.1:${t.port}/x`, params(port), { timeoutMs: 5000, retransmitBaseMs: 500, udp: session.udp }),
    other.ping('127.0.0.1', port),
  ]);
  assert.equal(a1.interval, 1800);
  assert.equal(a2.interval, 1800);
  assert.ok(id.equals(node.id));
  assert.ok(t.from.length >= 3 && t.from.every((p) => p === port), `tracker saw ${t.from.join(',')}, expected ${port}`);
  await until(() => utp.length === 20, 2000, 'uTP datagrams');
  assert.ok(utp.every((b) => b === 0x41));
  await node.close(); // a node on a shared socket leaves it open
  assert.equal(session.udp.isClosed, false);
  await session.close();
  assert.equal(session.udp.isClosed, true);
});

test('a session whose UDP port is taken: TCP listens, udp is null with a warning, and a DHT node binds its own', async () => {
  const port = await freeTcpPort();
  const squatter = createSocket('udp4');
  await new Promise<void>((r) => squatter.bind(port, '127.0.0.1', () => r()));
  closers.push(() => squatter.close());
  const lines: string[] = [];
  const session = new Session({ log: (l) => lines.push(l) });
  closers.push(() => session.close());
  assert.equal(await session.listen(port, '127.0.0.1'), port);
  assert.equal(session.udp, null);
  assert.match(lines.join('\n'), new RegExp(`cannot bind UDP port ${port}`));
  const node = new DhtNode({ udp: session.udp, host: '127.0.0.1', bootstrap: [], stateFile: null });
  await node.start();
  closers.push(() => node.close());
  assert.notEqual(node.address().port, port);
  // and an announce without the session's socket gets a socket of its own
  const t = await scriptedTracker();
  await udpAnnounce(`udp://127.0.0.1:${t.port}`, params(port), { timeoutMs: 5000, retransmitBaseMs: 500, udp: session.udp });
  assert.ok(t.from.length > 0 && !t.from.includes(port));
});

test('download: its DHT queries and UDP tracker announces leave from its TCP listening port', { timeout: 60_000 }, async () => {
  const tracker = await scriptedTracker();
  const dhtFrom: number[] = [];
  const router = await client(); // a bootstrap "router" that only listens
  router.on('message', (m, rinfo) => {
    if (m[0] === 0x64) dhtFrom.push(rinfo.port);
  });
  const dir = await tmpDir('tt-udp-one-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, makeTorrentBytes('one', [{ path: ['a.bin'], data: Buffer.alloc(40_000, 1) }], 16_384, [['announce', Buffer.from(`udp://127.0.0.1:${tracker.port}`)]]));
  // --port 0: the port drawn for TCP is the one the tracker is told, and must be the UDP source
  const dl = spawn(process.execPath, [CLI, 'download', tf, '-o', join(dir, 'out'), '--port', '0', '--bootstrap', `127.0.0.1:${router.address().port}`, '--quiet'], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, XDG_STATE_HOME: dir, HOME: dir },
  });
  procs.push(dl);
  let err = '';
  dl.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  await until(() => tracker.announcedPorts.length > 0 && dhtFrom.length > 0, 30_000, 'an announce and a DHT query').catch((e: Error) => {
    throw new Error(`${e.message}; stderr: ${err}`);
  });
  const code = new Promise<number | null>((r) => dl.on('close', (c) => r(c)));
  dl.kill('SIGINT');
  assert.equal(await code, 130, err);
  const tcp = tracker.announcedPorts[0]!;
  assert.ok(tcp > 0);
  assert.ok(tracker.from.every((p) => p === tcp), `tracker saw ${tracker.from.join(',')}, TCP port ${tcp}`);
  assert.ok(dhtFrom.every((p) => p === tcp), `DHT router saw ${dhtFrom.join(',')}, TCP port ${tcp}`);
});

test('fetch-pieces: its DHT queries and its uTP dials leave from one UDP socket', { timeout: 60_000 }, async () => {
  const dhtFrom: number[] = [];
  const router = await client(); // a bootstrap "router" that only listens
  router.on('message', (m, rinfo) => {
    if (m[0] === 0x64) dhtFrom.push(rinfo.port);
  });
  const synFrom: number[] = [];
  const peer = await client(); // a "peer" that only hears the uTP SYNs
  peer.on('message', (m, rinfo) => {
    if (m[0] === ((4 << 4) | 1)) synFrom.push(rinfo.port);
  });
  const dir = await tmpDir('tt-udp-fp-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, makeTorrentBytes('one', [{ path: ['a.bin'], data: Buffer.alloc(40_000, 1) }], 16_384));
  const fp = spawn(process.execPath, [CLI, 'fetch-pieces', tf, '--peer', `127.0.0.1:${peer.address().port}`, '--bootstrap', `127.0.0.1:${router.address().port}`, '--quiet'], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, XDG_STATE_HOME: dir, HOME: dir },
  });
  procs.push(fp);
  let err = '';
  fp.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  await until(() => synFrom.length > 0 && dhtFrom.length > 0, 30_000, 'a uTP SYN and a DHT query').catch((e: Error) => {
    throw new Error(`${e.message}; stderr: ${err}`);
  });
  const code = new Promise<number | null>((r) => fp.on('close', (c) => r(c)));
  fp.kill('SIGINT');
  assert.equal(await code, 130, err);
  const port = synFrom[0]!;
  assert.ok(synFrom.every((p) => p === port) && dhtFrom.every((p) => p === port), `uTP from ${synFrom.join(',')}, DHT from ${dhtFrom.join(',')}`);
});

test('announce: its requests (connect, started, stopped) leave from one UDP port', async () => {
  const tracker = await scriptedTracker();
  const dir = await tmpDir('tt-udp-ann-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, makeTorrentBytes('ann', [{ path: ['a.bin'], data: Buffer.alloc(20_000, 2) }], 16_384));
  const r = await runCli(['announce', tf, '--only', '--tracker', `udp://127.0.0.1:${tracker.port}`, '--port', '6881']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(tracker.announcedPorts.length, 2, 'started, then stopped');
  assert.ok(tracker.from.length >= 3 && tracker.from.every((p) => p === tracker.from[0]), `tracker saw ${tracker.from.join(',')}`);
});
