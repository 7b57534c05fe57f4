/** BEP 11 peer exchange: the codec, its limits, address scopes, and discovery in a real swarm. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { encode } from '../src/bencode/encoder.js';
import { acceptableFrom, addressScope, decodeCompactPeers, encodeCompactPeer, ipBytes } from '../src/peers/compact.js';
import { WireViolation } from '../src/wire/frame-decoder.js';
import { PexExchange } from '../src/swarm/pex.js';
import { memoryPipe, type WireSocket } from '../src/wire/memory-pipe.js';
import { PeerConnection } from '../src/wire/peer-connection.js';
import { makePeerId } from '../src/wire/protocol.js';
import { decodePex, encodePex, PEX_FLAG, UtPex, type PexMessage } from '../src/wire/ut-pex.js';
import { CLI, runCli, runShell } from './helpers/cli.js';
import { bytes, int, rng } from './helpers/random.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, makeTorrentBytes, tmpDir, writeFiles, type TestFile } from './helpers/torrent.js';
import { freeTcpPort } from './helpers/ports.js';
import { nextConnection, udpEndpoint } from './helpers/udp-utp.js';

const seeds: SeedProc[] = [];
const kills: Array<() => void> = [];
after(async () => {
  kills.forEach((k) => k());
  await Promise.all(seeds.map((s) => s.stop()));
});

function randomPeer(r: () => number, family: 4 | 6): { ip: string; port: number; family: 4 | 6; flags: number } {
  const ip = family === 4
    ? Array.from({ length: 4 }, () => int(r, 1, 254)).join('.')
    : new URL(`http://[${Array.from({ length: 8 }, () => int(r, 0, 0xffff).toString(16)).join(':')}]/`).hostname.slice(1, -1);
  return { ip, port: int(r, 1, 65535), family, flags: int(r, 0, 31) };
}

test('ut_pex round trips: random IPv4 and IPv6 lists with flags', () => {
  const r = rng(11);
  for (let i = 0; i < 200; i++) {
    const added = Array.from({ length: int(r, 0, 50) }, () => randomPeer(r, r() < 0.5 ? 4 : 6));
    const dropped = Array.from({ length: int(r, 0, 50) }, () => randomPeer(r, r() < 0.5 ? 4 : 6)).map(({ ip, port, family }) => ({ ip, port, family }));
    const m: PexMessage = { added, dropped };
    const back = decodePex(encodePex(m));
    // the codec groups by family: compare as sets
    const key = (p: { ip: string; port: number }): string => `${p.ip}|${p.port}`;
    assert.deepEqual(back.added.map((p) => `${key(p)}|${p.flags}`).sort(), added.map((p) => `${key(p)}|${p.flags}`).sort());
    assert.deepEqual(back.dropped.map(key).sort(), dropped.map(key).sort());
  }
  assert.deepEqual(ipBytes('::ffff:1.2.3.4'), Buffer.from('00000000000000000000ffff01020304', 'hex'));
  assert.deepEqual(decodeCompactPeers(encodeCompactPeer({ ip: '2001:db8::1', port: 80 }), 6), [{ ip: '2001:db8::1', port: 80, family: 6 }]);
});

test('ut_pex: malformed messages, floods and oversized lists cost the connection', () => {
  const bad: Array<[string, Buffer, RegExp]> = [
    ['not bencode', Buffer.from('d5:added'), /malformed/],
    ['a list', encode(['x']), /not a dict/],
    ['added not a multiple of 6', encode({ added: Buffer.alloc(7) }), /"added" is 7 bytes, not a multiple of 6/],
    ['added6 not a multiple of 18', encode({ added6: Buffer.alloc(20) }), /"added6" is 20 bytes/],
    ['dropped not bytes', encode({ dropped: 5 }), /"dropped" is not a byte string/],
    ['flags for the wrong count', encode({ added: Buffer.alloc(12, 1), 'added.f': Buffer.alloc(3) }), /2 peers/],
    ['oversized', encode({ added: Buffer.alloc(9000 * 6 / 6 * 6, 1) }), /limit/],
  ];
  for (const [what, payload, re] of bad) assert.throws(() => decodePex(payload), (e: Error) => e instanceof WireViolation && re.test(e.message), what);

  const conn = { name: 'test' } as unknown as PeerConnection;
  const got: number[] = [];
  const ext = new UtPex({ onPeers: (_c, m) => got.push(m.added.length) });
  const many = (n: number): Buffer => encodePex({ added: Array.from({ length: n }, (_, i) => ({ ip: `10.0.${i >> 8}.${i & 255}`, port: 1000 + i, family: 4 as const, flags: 0 })), dropped: [] });
  // the first message may be long: cut to 50; duplicates of one IP count once
  ext.onMessage(conn, many(120));
  assert.deepEqual(got, [50]);
  assert.throws(() => ext.onMessage(conn, many(1)), /a second message after 0 s/);
  const later = new UtPex({ onPeers: () => {}, minIntervalMs: 0 });
  later.onMessage(conn, many(3));
  assert.throws(() => later.onMessage(conn, many(51)), /51 added .*at most 50/);
  // empty lists (libtorrent sends them) are ignored, not a violation
  let called = 0;
  new UtPex({ onPeers: () => called++ }).onMessage(conn, encode({ added: Buffer.alloc(0), 'added.f': Buffer.alloc(0) }));
  assert.equal(called, 0);
  const dup = new UtPex({ onPeers: (_c, m) => got.push(m.added.length) });
  dup.onMessage(conn, encodePex({ added: [1, 2, 3].map((p) => ({ ip: '10.1.1.1', port: p, family: 4 as const, flags: 0 })), dropped: [] }));
  assert.equal(got.at(-1), 1);
});

test('address scopes: reserved addresses never, private and loopback only from as close a source', () => {
  const scopes: Array<[string, number]> = [
    ['0.1.2.3', 0], ['224.0.0.1', 0], ['255.255.255.255', 0], ['127.0.0.2', 1], ['10.1.2.3', 2], ['172.16.0.1', 2], ['172.32.0.1', 3],
    ['192.168.1.1', 2], ['169.254.1.1', 2], ['100.64.0.1', 2], ['8.8.8.8', 3], ['::', 0], ['::1', 1], ['ff02::1', 0], ['fe80::1', 2],
    ['fd00::1', 2], ['2001:db8::1', 3], ['::ffff:127.0.0.1', 1], ['::ffff:8.8.4.4', 3],
  ];
  for (const [ip, s] of scopes) assert.equal(addressScope(ip), s, ip);
  assert.equal(acceptableFrom('8.8.8.8', 1, '127.0.0.1'), true);
  assert.equal(acceptableFrom('127.0.0.1', 1, '127.0.0.1'), true);
  assert.equal(acceptableFrom('10.0.0.1', 1, '127.0.0.1'), true);
  assert.equal(acceptableFrom('127.0.0.1', 1, '8.8.8.8'), false);
  assert.equal(acceptableFrom('10.0.0.1', 1, '8.8.8.8'), false);
  assert.equal(acceptableFrom('192.168.0.1', 1, '10.0.0.5'), true);
  assert.equal(acceptableFrom('224.0.0.1', 1, '127.0.0.1'), false);
  assert.equal(acceptableFrom('8.8.8.8', 0, '8.8.4.4'), false);
});

const PL = 64 * 1024;
const r = rng(77);
const files: TestFile[] = [{ path: ['big.bin'], data: bytes(r, 300 * PL + 11) }];

test('a leecher told of one peer finds the seeders by PEX and downloads from all of them', { timeout: 120_000 }, async () => {
  const dir = await tmpDir('tt-pex-');
  const { bytes: tb } = makeTorrent('pex', files, PL);
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  await writeFiles(join(dir, 'data'), 'pex', files);
  const s = await Promise.all([0, 1, 2].map(() => startSeed(tf, join(dir, 'data'))));
  seeds.push(...s);
  // L1 knows the seeders; nobody reads its output, so it stalls after a few pieces and stays
  // connected to them, listening on a port of its own (--serve-from), which is all L2 is told
  const l1port = await freeTcpPort();
  const l1 = spawn(process.execPath, [CLI, 'fetch-pieces', tf, ...s.flatMap((x) => ['--peer', `127.0.0.1:${x.port}`]), '--serve-from', join(dir, 'l1'), '--port', String(l1port), '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
  kills.push(() => l1.kill('SIGKILL'));
  l1.stdout.pause();
  let l1err = '';
  l1.stderr.on('data', (c: Buffer) => (l1err += c.toString()));
  await new Promise((res) => setTimeout(res, 1000));
  const peersFile = join(dir, 'peers.ndjson');
  const statsFile = join(dir, 'stats.ndjson');
  const res = await runShell(
    `$TT fetch-pieces "${tf}" --peer 127.0.0.1:${l1port} --print-peers "${peersFile}" --stats "${statsFile}" --quiet < /dev/null | $TT assemble "${tf}" -o "${join(dir, 'out')}" --quiet > /dev/null; echo "\${PIPESTATUS[*]}"`,
    { timeoutMs: 90_000 },
  );
  assert.equal(res.stdout.toString().trim(), '0 0', res.stderr.toString() + l1err);
  assert.deepEqual(await readFile(join(dir, 'out', 'pex', 'big.bin')), files[0]!.data);
  const learnt = (await readFile(peersFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { port: number; source: string });
  for (const x of s) assert.ok(learnt.some((p) => p.port === x.port && p.source === 'pex'), `seeder ${x.port} learnt by PEX: ${JSON.stringify(learnt)}`);
  const last = JSON.parse((await readFile(statsFile, 'utf8')).trim().split('\n').at(-1)!) as { perPeer: Array<{ peer: string; downloaded: number }> };
  for (const x of s) {
    const pp = last.perPeer.find((p) => p.peer === `127.0.0.1:${x.port}`);
    assert.ok(pp && pp.downloaded > 0, `data from seeder ${x.port}: ${JSON.stringify(last.perPeer)}`);
  }
  l1.kill('SIGKILL');
});

test('a private torrent never offers ut_pex (BEP 27)', async () => {
  const dir = await tmpDir('tt-pex-priv-');
  const small: TestFile[] = [{ path: ['a'], data: bytes(r, 1000) }];
  const tf = join(dir, 'p.torrent');
  await writeFile(tf, makeTorrentBytes('priv', small, 16384, [], false, [['private', 1]]));
  await writeFiles(join(dir, 'data'), 'priv', small);
  const seed = await startSeed(tf, join(dir, 'data'));
  seeds.push(seed);
  const res = await runCli(['peer', `127.0.0.1:${seed.port}`, tf, '--timeout', '2']);
  const hs = res.stdout.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['dir'] === 'in' && l['id'] === 0);
  const m = (hs!['handshake'] as { m: Record<string, number> }).m;
  assert.ok('ut_metadata' in m && !('ut_pex' in m), JSON.stringify(m));
});

test('PEX flags: a peer we dialled is reachable (0x10), one on uTP speaks it (0x04), one that said e=1 prefers MSE (0x01)', { timeout: 30_000 }, async () => {
  const infoHash = randomBytes(20);
  const limits = { pieceCount: 4, pieceSize: () => 16_384 };
  const accept = (h: Buffer): typeof limits | null => (h.equals(infoHash) ? limits : null);
  const pex = new PexExchange({ onPeer: () => {}, intervalMs: 0 });
  const x = await udpEndpoint();
  const a = await udpEndpoint();
  const conns: PeerConnection[] = [];
  const heard = new Map<string, PexMessage>();
  /** the other end of one of X's connections: it speaks ut_pex, and says `e` when asked */
  const farEnd = (socket: WireSocket, name: string, e?: number): void => {
    const c = new PeerConnection(socket, { peerId: makePeerId(randomBytes), outgoing: false, accept });
    c.use(new UtPex({ onPeers: (_c, m) => heard.set(name, m) }));
    if (e !== undefined) c.use({ name: 'tt_e', onMessage: () => {}, handshakeFields: () => ({ e }) });
    conns.push(c);
  };
  const fromX = (socket: WireSocket, ip: string, port: number): void => {
    const c = new PeerConnection(socket, { peerId: makePeerId(randomBytes), infoHash, outgoing: true, limits });
    c.use(pex.extension(c, { ip, port, source: 'cli' }));
    conns.push(c);
  };
  try {
    // A over uTP; B and C in process (a memory pipe stands for TCP), C asking for MSE
    const accepted = nextConnection(a.endpoint);
    const toA = x.endpoint.connect('127.0.0.1', a.port);
    await once(toA, 'connect');
    fromX(toA, '127.0.0.1', a.port);
    farEnd(await accepted, 'A');
    const [xb, b] = memoryPipe();
    fromX(xb, '10.0.0.2', 6882);
    farEnd(b, 'B');
    const [xc, c] = memoryPipe();
    fromX(xc, '10.0.0.3', 6883);
    farEnd(c, 'C', 1);
    for (let i = 0; i < 100 && heard.size < 3; i++) await new Promise((r) => setTimeout(r, 100));
    const flagsOf = (to: string, port: number): number | undefined => heard.get(to)?.added.find((p) => p.port === port)?.flags;
    assert.equal(flagsOf('B', a.port), PEX_FLAG.reachable | PEX_FLAG.utp, 'A, told to B');
    assert.equal(flagsOf('A', 6882), PEX_FLAG.reachable, 'B, told to A');
    assert.equal(flagsOf('A', 6883), PEX_FLAG.reachable | PEX_FLAG.encryption, 'C, told to A');
  } finally {
    pex.destroy();
    for (const c of conns) c.close(null);
    await x.close();
    await a.close();
  }
});
