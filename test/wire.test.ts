import assert from 'node:assert/strict';
import type { CloseReason } from '../src/wire/close-reason.js';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { FrameDecoder, WireViolation, type WireLimits } from '../src/wire/frame-decoder.js';
import { PeerConnection } from '../src/wire/peer-connection.js';
import { encodeHandshake, encodeMessage, encodeRequests, reservedBits, type Handshake, type WireMessage } from '../src/wire/protocol.js';
import { runCli } from './helpers/cli.js';
import { SYSTEM_PYTHON, hasLibtorrent, skipUnless } from './helpers/interop.js';
import { bytes, randomChunks, rng, seedFromEnv } from './helpers/random.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles } from './helpers/torrent.js';

const limits: WireLimits = { pieceCount: 10, pieceSize: (i) => (i === 9 ? 5000 : 32768) };
const hs: Handshake = { reserved: reservedBits({ extended: true, fast: true }), infoHash: Buffer.alloc(20, 1), peerId: Buffer.alloc(20, 2) };
const toBuf = (m: WireMessage): Buffer => {
  const e = encodeMessage(m);
  return Array.isArray(e) ? Buffer.concat(e) : e;
};

const every: WireMessage[] = [
  { type: 'keep-alive' }, { type: 'choke' }, { type: 'unchoke' }, { type: 'interested' }, { type: 'not-interested' },
  { type: 'have', index: 9 }, { type: 'bitfield', bits: Buffer.from([0xff, 0xc0]) },
  { type: 'request', index: 1, begin: 16384, length: 16384 }, { type: 'piece', index: 9, begin: 0, block: Buffer.alloc(5000, 3) },
  { type: 'piece', index: 1, begin: 0, block: Buffer.alloc(16384, 4) }, { type: 'piece', index: 1, begin: 16384, block: Buffer.alloc(300, 5) },
  { type: 'cancel', index: 2, begin: 0, length: 100 }, { type: 'port', port: 6881 }, { type: 'suggest', index: 3 },
  { type: 'have-all' }, { type: 'have-none' }, { type: 'reject', index: 4, begin: 0, length: 16384 }, { type: 'allowed-fast', index: 5 },
  { type: 'extended', id: 3, payload: Buffer.from('d1:xi1ee') },
  { type: 'hash-request', root: Buffer.alloc(32, 7), base: 0, index: 4, length: 4, proofLayers: 3 },
  // 2 proof layers for 4 nodes: the first lies inside their subtree, so 1 uncle
  { type: 'hashes', root: Buffer.alloc(32, 7), base: 0, index: 4, length: 4, proofLayers: 2, hashes: Buffer.alloc(5 * 32, 8) },
  { type: 'hashes', root: Buffer.alloc(32, 7), base: 6, index: 0, length: 512, proofLayers: 8, hashes: Buffer.alloc(512 * 32, 9) },
  { type: 'hash-reject', root: Buffer.alloc(32, 6), base: 6, index: 1024, length: 512, proofLayers: 10 },
];

function decodeAllChunks(chunks: Buffer[], lim = limits): { h: Handshake[]; m: WireMessage[] } {
  const d = new FrameDecoder(lim);
  const h: Handshake[] = [];
  const m: WireMessage[] = [];
  // a piece block is valid only during the callback (split frames share one scratch buffer)
  for (const c of chunks) d.write(c, (x) => h.push(x), (x) => m.push(x.type === 'piece' ? { ...x, block: Buffer.from(x.block) } : x));
  return { h, m };
}

test('every message round-trips, whole, byte by byte and in random chunks', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const wire = Buffer.concat([encodeHandshake(hs), ...every.map(toBuf)]);
  for (const chunks of [[wire], [...wire].map((b) => Buffer.from([b])), randomChunks(r, wire, 100)]) {
    const { h, m } = decodeAllChunks(chunks);
    assert.deepEqual(h, [hs]);
    const copy = (b: Buffer): Buffer => Buffer.from(b);
    assert.deepEqual(m.map((x) => ({ ...x, ...(('bits' in x) ? { bits: copy(x.bits) } : {}), ...(('block' in x) ? { block: copy(x.block) } : {}), ...(('payload' in x) ? { payload: copy(x.payload) } : {}), ...(('root' in x) ? { root: copy(x.root) } : {}), ...(('hashes' in x) ? { hashes: copy(x.hashes) } : {}) })), every, `seed ${seed}`);
  }
});

test('as written in parts (a piece: its head, then its block, as memory-pipe.ts hands them over): every message decodes; the block is a view, not a copy, and still checked', () => {
  const parts = [encodeHandshake(hs), ...every.flatMap((x) => encodeMessage(x))];
  assert.ok(parts.length > every.length + 1, 'pieces are written as head and block');
  const { h, m } = decodeAllChunks(parts);
  assert.deepEqual(h, [hs]);
  assert.deepEqual(m, every);
  // a piece head alone, then its block and the next frame in one chunk
  const block = Buffer.alloc(16384, 9);
  const [head, body] = encodeMessage({ type: 'piece', index: 1, begin: 16384, block }) as [Buffer, Buffer];
  const tail = Buffer.concat([body, toBuf({ type: 'have', index: 2 })]);
  const d = new FrameDecoder(limits, false);
  const got: WireMessage[] = [];
  let view = false;
  for (const c of [head, tail]) d.write(c, () => {}, (x) => {
    if (x.type === 'piece') view = x.block.buffer === tail.buffer && x.block.equals(block);
    got.push(x);
  });
  assert.ok(view, 'the block is the chunk itself');
  assert.deepEqual(got.map((x) => x.type), ['piece', 'have']);
  // a block past its piece's end is refused on this path too
  const [badHead, badBody] = encodeMessage({ type: 'piece', index: 9, begin: 4000, block: Buffer.alloc(2000) }) as [Buffer, Buffer];
  const d2 = new FrameDecoder(limits, false);
  assert.throws(() => [badHead, badBody].forEach((c) => d2.write(c, () => {}, () => {})), /piece block 4000\.\.6000 beyond piece 9 \(5000 bytes\)/);
});

test('malformed frames: each a violation with its reason', () => {
  const frame = (id: number, payload: Buffer): Buffer => {
    const b = Buffer.alloc(5 + payload.length);
    b.writeUInt32BE(1 + payload.length, 0);
    b[4] = id;
    payload.copy(b, 5);
    return b;
  };
  const u32 = (...v: number[]): Buffer => Buffer.concat(v.map((x) => { const b = Buffer.alloc(4); b.writeUInt32BE(x); return b; }));
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(1 << 30);
  const cases: Array<[Buffer, RegExp]> = [
    [Buffer.concat([huge, Buffer.from([7])]), /frame of 1073741824 bytes is larger than the \d+ allowed/],
    [huge, /frame of 1073741824 bytes is larger than/],
    [frame(5, Buffer.from([0xff])), /bitfield of 1 bytes, expected 2/],
    [frame(5, Buffer.from([0xff, 0xff])), /bitfield has spare bits set/],
    [frame(6, u32(10, 0, 16384)), /request for piece 10, beyond the torrent's 10 pieces/],
    [frame(6, u32(9, 0, 16384)), /request for bytes 0\.\.16384 of piece 9, which has 5000/],
    [frame(6, u32(1, 0, 16385)), /request for 16385 bytes \(allowed: 1\.\.16384\)/],
    [frame(6, u32(1, 0)), /request of 8 bytes, expected 12/],
    [frame(4, u32(12)), /have for piece 12, beyond/],
    [frame(0, Buffer.from([1])), /choke of 1 payload bytes, expected 0/],
    [frame(99, Buffer.alloc(0)), /unknown message id 99/],
    [frame(7, u32(9, 4000).subarray(0, 8)), /piece message of 8 bytes carries no block/],
    [frame(21, Buffer.concat([Buffer.alloc(32), u32(0, 0, 3, 1)])), /hash request for 3 hashes \(allowed: a power of two up to 8192\)/],
    [frame(21, Buffer.concat([Buffer.alloc(32), u32(0, 0, 0, 1)])), /hash request for 0 hashes/],
    [frame(21, Buffer.concat([Buffer.alloc(32), u32(0, 0, 16384, 1)])), /hash request for 16384 hashes/],
    [frame(21, Buffer.concat([Buffer.alloc(32), u32(0, 2, 4, 1)])), /hash request from index 2, not a multiple of its length 4/],
    [frame(21, Buffer.concat([Buffer.alloc(32), u32(0, 0, 4, 64)])), /hash request with base layer 0 and 64 proof layers/],
    [frame(21, Buffer.concat([Buffer.alloc(32), u32(0, 0, 4, 1, 0)])), /frame of 53 bytes is larger than the 49 allowed for message id 21/],
    [frame(23, Buffer.concat([Buffer.alloc(32), u32(0, 0, 4)])), /hash reject of 44 payload bytes, expected 48/],
    [frame(22, Buffer.concat([Buffer.alloc(32), u32(0, 0, 4, 2), Buffer.alloc(4 * 32)])), /hashes message with 128 bytes of hashes, expected 160 for 4 nodes and 2 proof layers/],
    [frame(22, Buffer.concat([Buffer.alloc(32), u32(0, 0, 1024, 0), Buffer.alloc(1024 * 32)])), /frame of 32817 bytes is larger than the 18481 allowed/],
    [frame(22, Buffer.concat([Buffer.alloc(32), u32(0, 0, 1024, 0)])), /hashes for 1024 hashes \(allowed: a power of two up to 512\)/],
  ];
  for (const [bytesIn, re] of cases) {
    for (const chunks of [[bytesIn], [...bytesIn].map((b) => Buffer.from([b]))]) {
      const d = new FrameDecoder(limits, false);
      assert.throws(() => chunks.forEach((c) => d.write(c, () => {}, () => {})), (e: unknown) => e instanceof WireViolation && re.test(e.message), String(re));
    }
  }
  const bad = Buffer.from(encodeHandshake(hs));
  bad[5] = 0x78;
  assert.throws(() => decodeAllChunks([bad]), /not a BitTorrent handshake/);
  assert.throws(() => decodeAllChunks([Buffer.from('GET / HTTP/1.1\r\n')]), /not a BitTorrent handshake/);
});

test('a connection closes cleanly with its reason: wrong info hash, garbage, oversize', async () => {
  const cases: Array<[Buffer, RegExp]> = [
    [encodeHandshake({ ...hs, infoHash: Buffer.alloc(20, 9) }), /handshake for another torrent/],
    [Buffer.concat([encodeHandshake(hs), Buffer.from([0, 0, 0, 1, 200])]), /unknown message id 200/],
    [Buffer.concat([encodeHandshake(hs), Buffer.from([0x7f, 0xff, 0xff, 0xff, 7])]), /larger than/],
  ];
  for (const [reply, re] of cases) {
    const server = createServer((s) => {
      s.on('error', () => {});
      s.write(reply);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const sock = connect((server.address() as AddressInfo).port, '127.0.0.1');
    const conn = new PeerConnection(sock, { peerId: Buffer.alloc(20, 5), infoHash: hs.infoHash, limits, outgoing: true });
    const reason = await new Promise<CloseReason | null>((r) => conn.on('close', r));
    assert.equal(reason?.kind, 'violation');
    assert.match(reason.detail, re);
    server.close();
  }
});

const seeds: SeedProc[] = [];
after(async () => {
  await Promise.all(seeds.map((s) => s.stop()));
});

test('peer --request fetches and verifies a piece from our seed; --out writes it; the trace is NDJSON', async () => {
  const r = rng(11);
  const files = [{ path: ['a.bin'], data: bytes(r, 100_000) }];
  const { bytes: tb, content } = makeTorrent('a.bin', files, 32768, true);
  const dir = await tmpDir('tt-peer-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  await writeFiles(dir, 'a.bin', files, true);
  const s = await startSeed(tf, dir);
  seeds.push(s);
  const out = join(dir, 'piece3.bin');
  const res = await runCli(['peer', `127.0.0.1:${s.port}`, tf, '--request', '3', '--out', out]);
  assert.equal(res.code, 0, res.stderr);
  const trace = res.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(trace[0]!['type'], 'handshake');
  assert.ok(trace.some((m) => m['dir'] === 'in' && m['type'] === 'have-all'));
  assert.ok(trace.some((m) => m['dir'] === 'out' && m['type'] === 'interested'));
  assert.deepEqual(trace.find((m) => m['event'] === 'piece'), { event: 'piece', index: 3, length: 100_000 - 3 * 32768, valid: true, sha1: (await import('node:crypto')).createHash('sha1').update(content.subarray(3 * 32768)).digest('hex') });
  assert.deepEqual(await readFile(out), content.subarray(3 * 32768));
  const usage = await runCli(['peer', `127.0.0.1:${s.port}`, tf, '--request', '99']);
  assert.equal(usage.code, 2);
});

test('peer --listen waits for an incoming peer', async () => {
  const r = rng(12);
  const files = [{ path: ['b.bin'], data: bytes(r, 40_000) }];
  const { bytes: tb, torrent } = makeTorrent('b.bin', files, 32768, true);
  const dir = await tmpDir('tt-peerl-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  const child = spawn(process.execPath, [fileURLToPath(new URL('../src/cli.js', import.meta.url)), 'peer', '--listen', '0', tf, '--timeout', '5'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const rl = createInterface({ input: child.stdout! });
  const got: Array<Record<string, unknown>> = [];
  const port = await new Promise<number>((resolve) => rl.on('line', (l) => {
    const o = JSON.parse(l) as Record<string, unknown>;
    got.push(o);
    if (o['event'] === 'listening') resolve(o['port'] as number);
  }));
  const sock = connect(port, '127.0.0.1');
  sock.on('error', () => {});
  sock.write(encodeHandshake({ ...hs, infoHash: torrent.infoHash }));
  sock.write(toBuf({ type: 'bitfield', bits: Buffer.from([0xc0]) }));
  sock.write(toBuf({ type: 'have', index: 1 }));
  await new Promise((res) => setTimeout(res, 300));
  sock.end();
  await new Promise((res) => child.on('close', res));
  assert.ok(got.some((o) => o['dir'] === 'in' && o['type'] === 'handshake'));
  assert.ok(got.some((o) => o['dir'] === 'out' && o['type'] === 'extended'));
  assert.ok(got.some((o) => o['dir'] === 'in' && o['type'] === 'bitfield' && o['pieces'] === 2));
});

test('peer talks to a python-libtorrent seeder and fetches a piece', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent') }, async () => {
  const r = rng(13);
  const files = [{ path: ['c.bin'], data: bytes(r, 300_000) }];
  const { bytes: tb } = makeTorrent('c.bin', files, 65536, true);
  const dir = await tmpDir('tt-peerlt-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  await writeFiles(dir, 'c.bin', files, true);
  const lt = spawn(SYSTEM_PYTHON, [fileURLToPath(new URL('../../test/fixtures/lt-seed.py', import.meta.url)), tf, dir, '1'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => createInterface({ input: lt.stdout! }).once('line', (l) => resolve(Number(l))));
  const res = await runCli(['peer', `127.0.0.1:${port}`, tf, '--request', '2']);
  lt.kill('SIGKILL');
  assert.equal(res.code, 0, res.stderr + res.stdout.toString());
  assert.match(res.stdout.toString(), /"event":"piece","index":2,"length":65536,"valid":true/);
});

test('encodeRequests is the request messages back to back', () => {
  const blocks = [{ index: 0, begin: 0, length: 16384 }, { index: 7, begin: 16384, length: 100 }, { index: 0xfffff, begin: 0, length: 1 }];
  const want = Buffer.concat(blocks.map((b) => encodeMessage({ type: 'request', ...b }) as Buffer));
  assert.deepEqual(encodeRequests(blocks), want);
  assert.equal(encodeRequests([]).length, 0);
});
