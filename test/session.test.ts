/**
 * Many torrents in one process: one seed process serving several torrents on one port, one
 * download process fetching several (files, magnets, a list) with one failing among them,
 * incoming handshakes routed by info hash (plaintext and MSE), and `download --seed` keeping
 * the connections it had when it completed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DownloadJob } from '../src/client/download.js';
import { magnetFromTorrent } from '../src/metainfo/magnet.js';
import type { Torrent } from '../src/metainfo/torrent.js';
import { Session } from '../src/session/session.js';
import { FileStore } from '../src/storage/file-store.js';
import { Swarm } from '../src/swarm/swarm.js';
import { CRYPTO_PLAINTEXT, CRYPTO_RC4 } from '../src/wire/mse.js';
import { PeerConnection } from '../src/wire/peer-connection.js';
import { makePeerId } from '../src/wire/protocol.js';
import { UtMetadata } from '../src/wire/ut-metadata.js';
import { CLI, runCli } from './helpers/cli.js';
import { freeTcpPort } from './helpers/ports.js';
import { bytes, rng } from './helpers/random.js';
import { startSeed, startSeedOf, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles, type TestFile } from './helpers/torrent.js';

const PL = 32 * 1024;
const r = rng(2424);
interface Made {
  name: string;
  files: TestFile[];
  single: boolean;
  torrent: Torrent;
  bytes: Buffer;
}

function made(name: string, sizes: number[], single = false): Made {
  const files = sizes.map((n, i) => ({ path: single ? [name] : [`f${i}.bin`], data: bytes(r, n) }));
  const m = makeTorrent(name, files, PL, single);
  return { name, files, single, torrent: m.torrent, bytes: m.bytes };
}

async function same(root: string, m: Made): Promise<void> {
  for (const f of m.files) {
    const p = m.single ? join(root, m.name) : join(root, m.name, ...f.path);
    assert.deepEqual(await readFile(p), f.data, p);
  }
}

const seeds: SeedProc[] = [];
after(async () => {
  await Promise.all(seeds.map((s) => s.stop()));
});

test('one download process, four torrents (files, a magnet, a list) from one seed port; the one nobody has fails alone', async () => {
  const dir = await tmpDir('tt-many-');
  const ts = [made('alpha', [70_000, 3 * PL + 5]), made('beta.bin', [5 * PL + 123], true), made('gamma', [PL, 2 * PL, 999])];
  const missing = made('nobody', [4 * PL]);
  for (const m of [...ts, missing]) await writeFile(join(dir, `${m.name}.torrent`), m.bytes);
  for (const m of ts) await writeFiles(join(dir, 'data'), m.name, m.files, m.single);
  // one process, one port, three torrents
  const seed = await startSeedOf([...['alpha', 'beta.bin', 'gamma'].map((n) => join(dir, `${n}.torrent`)), join(dir, 'data')]);
  seeds.push(seed);
  const list = join(dir, 'list.txt');
  await writeFile(list, `# the rest\n${join(dir, 'gamma.torrent')}\n{"torrent": ${JSON.stringify(join(dir, 'nobody.torrent'))}}\n`);
  const out = join(dir, 'out');
  const res = await runCli([
    'download', join(dir, 'alpha.torrent'), magnetFromTorrent(ts[1]!.torrent), '-i', list, '-o', out,
    '--peer', `127.0.0.1:${seed.port}`, '--no-announce', '--port', '0', '--json', '--timeout', '4',
  ], { timeoutMs: 60_000 });
  assert.equal(res.code, 1, res.stderr);
  for (const m of ts) await same(join(out, m.torrent.infoHashHex), m);
  assert.match(res.stderr, /3\/4 torrents complete/);
  assert.match(res.stderr, /nobody \([0-9a-f]{8}\): /, 'the failed torrent is named in the summary');
  const records = res.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { event: string; infoHash: string });
  const session = records.pop() as unknown as { event: string; torrents: number; complete: number; failed: number; dht: { id: string; port: number } | null };
  assert.equal(session.event, 'session', 'the last record sums the session up');
  assert.deepEqual([session.torrents, session.complete, session.failed], [4, 3, 1]);
  assert.ok(session.dht !== null && /^[0-9a-f]{40}$/.test(session.dht.id) && session.dht.port > 0, 'one DHT node served all four');
  const events = records;
  assert.ok(events.every((e) => typeof e.infoHash === 'string' && e.infoHash.length === 40), 'every event carries its info hash');
  const completed = new Set(events.filter((e) => e.event === 'complete').map((e) => e.infoHash));
  assert.deepEqual([...completed].sort(), ts.map((m) => m.torrent.infoHashHex).sort());
  const meta = events.find((e) => e.event === 'metadata' && e.infoHash === ts[1]!.torrent.infoHashHex) as { source?: string } | undefined;
  assert.equal(meta?.source, 'peers', 'the magnet got its metadata from the seed over the shared port');
});

test('a seed FOLDER serves every .torrent in it; -i - takes torrents as they arrive on stdin', async () => {
  const dir = await tmpDir('tt-folder-');
  const ts = [made('one', [40_000]), made('two.bin', [3 * PL], true)];
  const lib = join(dir, 'library');
  for (const m of ts) {
    await writeFiles(lib, m.name, m.files, m.single);
    await writeFile(join(lib, `${m.name}.torrent`), m.bytes);
  }
  const seed = await startSeedOf([lib]);
  seeds.push(seed);
  const out = join(dir, 'out');
  // the second torrent is written to stdin only once the first is complete: it must be read as it comes
  const child = spawn(process.execPath, [CLI, 'download', '-i', '-', '-o', out, '--flat', '--peer', `127.0.0.1:${seed.port}`, '--no-announce', '--no-dht', '--port', '0', '--json'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  let outText = '';
  child.stdin.write(`${join(lib, 'one.torrent')}\n`);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no completion before stdin ended: ${err}`)), 30_000);
    child.stdout.on('data', (c: Buffer) => {
      outText += c.toString();
      if (outText.includes('"complete"')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  child.stdin.end(`${join(lib, 'two.bin.torrent')}\n`);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0, err);
  for (const m of ts) await same(out, m);
});

test('incoming handshakes for two torrents on one port are routed by info hash, plaintext and MSE; an unknown one is refused', async () => {
  const dir = await tmpDir('tt-route-');
  const ts = [made('left', [3 * PL]), made('right', [2 * PL + 7])];
  for (const m of ts) await writeFiles(dir, m.name, m.files, m.single);
  const session = new Session();
  const port = await session.listen(0, '127.0.0.1');
  const swarms: Swarm[] = [];
  const stores: FileStore[] = [];
  for (const m of ts) {
    const store = await FileStore.open(m.torrent, dir, { mode: 'read' });
    stores.push(store);
    const s = new Swarm({ ...session.swarmOptions(), torrent: m.torrent, serve: store, have: Array.from({ length: m.torrent.pieceCount }, (_, i) => i), wanted: [] });
    session.host(s);
    swarms.push(s);
  }
  const handshake = (infoHash: Buffer, encrypt: boolean): Promise<string> =>
    new Promise((resolve) => {
      const sock: Socket = connect(port, '127.0.0.1');
      sock.once('connect', () => {
        const conn = new PeerConnection(sock, { peerId: makePeerId(randomBytes), infoHash, outgoing: true, ...(encrypt ? { encrypt: CRYPTO_PLAINTEXT | CRYPTO_RC4 } : {}) });
        conn.on('message', (m) => {
          if (m.type === 'have-all' || m.type === 'bitfield') {
            resolve(m.type);
            conn.close(null);
          }
        });
        conn.on('close', (reason) => resolve(`closed: ${reason?.detail ?? 'by us'}`));
      });
    });
  try {
    for (const m of ts) {
      assert.equal(await handshake(m.torrent.infoHash, false), 'have-all', `${m.name}, plaintext`);
      assert.equal(await handshake(m.torrent.infoHash, true), 'have-all', `${m.name}, MSE`);
    }
    assert.match(await handshake(Buffer.alloc(20, 7), false), /^closed/, 'an info hash nobody hosts');
    assert.match(await handshake(Buffer.alloc(20, 7), true), /^closed/, 'an info hash nobody hosts, MSE');
  } finally {
    for (const s of swarms) {
      session.unhost(s);
      s.destroy();
    }
    await session.close();
    await Promise.all(stores.map((s) => s.close()));
  }
});

test('download --seed keeps the connections it had when it completed, and serves on them', async () => {
  const dir = await tmpDir('tt-keep-');
  const m = made('kept', [24 * PL + 11]);
  const tf = join(dir, 'kept.torrent');
  await writeFile(tf, m.bytes);
  await writeFiles(join(dir, 'data'), m.name, m.files);
  const seedPort = await freeTcpPort();
  const session = new Session();
  const jPort = await session.listen(0, '127.0.0.1');
  const stop = new AbortController();
  // J downloads from S (not started yet) and seeds on afterwards
  const job = new DownloadJob(tf, join(dir, 'j'), { session, peers: [{ ip: '127.0.0.1', port: seedPort, source: 'cli' }], announce: false, seed: {}, signal: stop.signal });
  for (let i = 0; i < 200 && job.stats().phase !== 'downloading'; i++) await new Promise((res) => setTimeout(res, 25));
  // L: a leecher that connects while J has nothing, and asks for nothing until J is complete
  const sock = connect(jPort, '127.0.0.1');
  await new Promise((res) => sock.once('connect', res));
  const l = new PeerConnection(sock, { peerId: makePeerId(randomBytes), infoHash: m.torrent.infoHash, outgoing: true });
  const haves = new Set<number>();
  let closed: string | null = null;
  l.on('message', (msg) => {
    if (msg.type === 'have') haves.add(msg.index);
  });
  l.on('close', (reason) => (closed = reason?.detail ?? 'by us'));
  await new Promise<void>((res) => l.once('handshake', () => res()));
  const seed = await startSeed(tf, join(dir, 'data'), { port: seedPort });
  seeds.push(seed);
  try {
    const result = await job.result;
    assert.equal(result.pieces, m.torrent.pieceCount);
    await seed.stop();
    assert.equal(job.stats().phase, 'seeding');
    assert.equal(closed, null, 'L is still connected after J completed');
    for (let i = 0; i < 100 && haves.size < m.torrent.pieceCount; i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(haves.size, m.torrent.pieceCount, 'L was told of every piece as J wrote it');
    // and now L asks, on the same connection: J, a seed, serves it
    const block = new Promise<Buffer>((resolve) => l.on('message', (msg) => msg.type === 'piece' && resolve(Buffer.from(msg.block))));
    l.send({ type: 'interested' });
    await new Promise<void>((resolve) => l.on('message', (msg) => msg.type === 'unchoke' && resolve()));
    l.send({ type: 'request', index: 3, begin: 0, length: 16384 });
    assert.deepEqual(await block, Buffer.concat(m.files.map((f) => f.data)).subarray(3 * PL, 3 * PL + 16384));
    assert.equal(closed, null);
  } finally {
    l.close(null);
    stop.abort();
    await job.closed.catch(() => {});
    await session.close();
  }
});

test('a magnet download goes on over the connection its metadata came on: one TCP connection in all', async () => {
  const dir = await tmpDir('tt-handover-');
  const m = made('handed', [9 * PL + 100, 5000]);
  const tf = join(dir, 'handed.torrent');
  await writeFile(tf, m.bytes);
  await writeFiles(join(dir, 'data'), m.name, m.files);
  const seed = await startSeed(tf, join(dir, 'data'));
  seeds.push(seed);
  // a counting relay in front of the seed
  let connections = 0;
  const relay = createServer((inbound) => {
    connections++;
    const out = connect(seed.port, '127.0.0.1');
    inbound.pipe(out).pipe(inbound);
    inbound.on('error', () => out.destroy());
    out.on('error', () => inbound.destroy());
  });
  await new Promise<void>((res) => relay.listen(0, '127.0.0.1', () => res()));
  const relayPort = (relay.address() as { port: number }).port;
  try {
    const job = new DownloadJob(magnetFromTorrent(m.torrent), join(dir, 'out'), { peers: [{ ip: '127.0.0.1', port: relayPort, source: 'cli' }], announce: false, port: 0 });
    const events: string[] = [];
    job.on('event', (ev) => events.push(ev.event === 'metadata' ? `metadata:${ev.source}` : ev.event));
    const result = await job;
    assert.equal(result.pieces, m.torrent.pieceCount);
    assert.equal(events[0], 'metadata:peers');
    await same(join(dir, 'out'), m);
    assert.equal(connections, 1, 'the metadata connection was handed over to the download, not closed and dialled again');
    assert.equal(result.peersUsed, 1, 'the summary counts the peer that served the download');
  } finally {
    relay.close();
  }
});

test('a peer that connects to us while a magnet waits for its metadata is asked for it, then downloads go on over its connection', async () => {
  const dir = await tmpDir('tt-incoming-meta-');
  const m = made('asked', [6 * PL + 3]);
  const session = new Session();
  const port = await session.listen(0, '127.0.0.1');
  const stop = new AbortController();
  // J knows no peer at all: only someone connecting to it can help
  const job = new DownloadJob(magnetFromTorrent(m.torrent), join(dir, 'out'), { session, announce: false, timeoutMs: 0, signal: stop.signal });
  const metadata = new Promise<string>((resolve) => job.on('event', (ev) => ev.event === 'metadata' && resolve(ev.source)));
  for (let i = 0; i < 200 && job.stats().phase !== 'metadata'; i++) await new Promise((res) => setTimeout(res, 25));
  const sock = connect(port, '127.0.0.1');
  await new Promise((res) => sock.once('connect', res));
  const p = new PeerConnection(sock, { peerId: makePeerId(randomBytes), infoHash: m.torrent.infoHash, outgoing: true });
  p.use(new UtMetadata({ info: () => m.torrent.infoRaw }));
  let closed: string | null = null;
  p.on('close', (reason) => (closed = reason?.detail ?? 'by us'));
  p.on('handshake', () => p.send({ type: 'have-all' }));
  const interested = new Promise<void>((resolve) => p.on('message', (msg) => msg.type === 'interested' && resolve()));
  try {
    // bounded, so that a failure ends here (and gives everything back) rather than hanging
    const within = <T>(p: Promise<T>, what: string): Promise<T> =>
      Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within 15 s`)), 15_000).unref())]);
    assert.equal(await within(metadata, 'metadata'), 'peers', 'the metadata came from the peer that connected');
    await within(interested, 'interested');
    assert.equal(closed, null, 'the same connection goes on into the download');
  } finally {
    p.close(null);
    stop.abort();
    await job.closed.catch(() => {});
    await session.close();
  }
});

test('a peer whose haves before the metadata name pieces the torrent does not have is dropped at the hand-over, bitfield or not', async () => {
  const dir = await tmpDir('tt-handover-bad-');
  const m = made('checked', [6 * PL + 3]);
  const session = new Session();
  const port = await session.listen(0, '127.0.0.1');
  const stop = new AbortController();
  const log: string[] = [];
  const job = new DownloadJob(magnetFromTorrent(m.torrent), join(dir, 'out'), { session, announce: false, timeoutMs: 0, signal: stop.signal, log: (l) => log.push(l) });
  for (let i = 0; i < 200 && job.stats().phase !== 'metadata'; i++) await new Promise((res) => setTimeout(res, 25));
  const sock = connect(port, '127.0.0.1');
  await new Promise((res) => sock.once('connect', res));
  const p = new PeerConnection(sock, { peerId: makePeerId(randomBytes), infoHash: m.torrent.infoHash, outgoing: true });
  p.use(new UtMetadata({ info: () => m.torrent.infoRaw }));
  const closed = new Promise<void>((resolve) => p.on('close', () => resolve()));
  p.on('handshake', () => {
    // a bitfield of the right size, then a have far past the last piece
    p.send({ type: 'bitfield', bits: Buffer.alloc(Math.ceil(m.torrent.pieceCount / 8)) });
    p.send({ type: 'have', index: 999 });
  });
  try {
    const within = <T>(x: Promise<T>, what: string): Promise<T> =>
      Promise.race([x, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within 15 s`)), 15_000).unref())]);
    await within(closed, 'the close');
    assert.ok(log.some((l) => l.includes(`have for piece 999 of ${m.torrent.pieceCount}`)), log.join('\n'));
  } finally {
    p.close(null);
    stop.abort();
    await job.closed.catch(() => {});
    await session.close();
  }
});
