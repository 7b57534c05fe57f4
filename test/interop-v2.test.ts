/**
 * BEP 52 torrents against python-libtorrent 2.0, both ways: it seeds v2-only and hybrid
 * torrents (single and multi-file, an empty file, files smaller and larger than a piece) to our
 * `download` and downloads them from our `seed`; `fetch-pieces | assemble` and `verify` on a v2
 * torrent; a hybrid is one swarm under both hashes, and our handshakes for it set the v2 bit.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseTorrent, type Torrent } from '../src/metainfo/torrent.js';
import { pieceSize } from '../src/metainfo/pieces.js';
import { PeerConnection } from '../src/wire/peer-connection.js';
import { HANDSHAKE_LENGTH, V2_BIT, encodeHandshake, hasBit, reservedBits, type Handshake } from '../src/wire/protocol.js';
import { runCli, runShell } from './helpers/cli.js';
import { FIXTURES, SYSTEM_PYTHON, hasLibtorrent, skipUnless, startLtSeeds } from './helpers/interop.js';
import { contentImage, ltTorrent } from './helpers/lt-v2.js';
import { startScriptedSeeder } from './helpers/scripted-seeder.js';
import { bytes, rng } from './helpers/random.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { tmpDir, type TestFile } from './helpers/torrent.js';

const PL = 32 * 1024;
const r = rng(2052);
const files: TestFile[] = [
  { path: ['big.bin'], data: bytes(r, 5 * PL + 777) },
  { path: ['empty'], data: Buffer.alloc(0) },
  { path: ['small.txt'], data: bytes(r, 3000) },
  { path: ['sub', 'mid.bin'], data: bytes(r, PL + 1) },
];
const singleFile: TestFile = { path: ['one.bin'], data: bytes(r, 2 * PL + 5) };
const skip = skipUnless(hasLibtorrent(), 'python3-libtorrent');

interface Case {
  label: string;
  kind: 'v2' | 'hybrid';
  single: boolean;
  tf: string;
  torrent: Torrent;
}
const LABELS = ['v2-only multi-file', 'v2-only single-file', 'hybrid multi-file', 'hybrid single-file'];
const cases: Case[] = [];
let root = '';
const procs: ChildProcess[] = [];
const seeds: SeedProc[] = [];
after(async () => {
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all(seeds.map((s) => s.stop()));
});

before(async () => {
  if (skip) return;
  root = await tmpDir('tt-interop-v2-');
  for (const kind of ['v2', 'hybrid'] as const) {
    for (const single of [false, true]) {
      const tf = join(root, `${kind}-${single ? 'single' : 'multi'}.torrent`);
      const buf = single ? await ltTorrent(join(root, 'data'), 'one.bin', [singleFile], kind, PL, tf, true) : await ltTorrent(join(root, 'data'), 'd', files, kind, PL, tf);
      cases.push({ label: LABELS[cases.length]!, kind, single, tf, torrent: parseTorrent(buf) });
    }
  }
});

/** The downloaded files are the originals, and no pad file or directory was written. */
async function sameFiles(c: Case, out: string): Promise<void> {
  if (c.single) {
    assert.deepEqual(await readFile(join(out, 'one.bin')), singleFile.data);
    assert.deepEqual(await readdir(out), ['one.bin']);
    return;
  }
  for (const f of files) assert.deepEqual(await readFile(join(out, 'd', ...f.path)), f.data, f.path.join('/'));
  assert.deepEqual((await readdir(join(out, 'd'))).sort(), ['big.bin', 'empty', 'small.txt', 'sub'], 'no .pad directory');
}

function ltLeech(tf: string, out: string, port: number): Promise<{ code: number | null; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(SYSTEM_PYTHON, [fileURLToPath(new URL('lt-leech.py', FIXTURES)), tf, out, `127.0.0.1:${port}`, '60'], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(c);
    let err = '';
    c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    c.on('close', (code) => resolve({ code, err }));
  });
}

LABELS.forEach((label, k) => {
  test(`python-libtorrent seeds a ${label} torrent to our download; resumed, it is complete`, { skip, timeout: 90_000 }, async () => {
    const c = cases[k]!;
    const lt = await startLtSeeds(c.tf, join(root, 'data'), 1);
    try {
      const out = join(root, `dl-${k}`);
      const res = await runCli(['download', c.tf, '-o', out, '--peer', `127.0.0.1:${lt.ports[0]!}`, '--no-announce', '--no-dht', '--quiet', '--timeout', '40'], { timeoutMs: 60_000 });
      assert.equal(res.code, 0, `${c.label}: ${res.stderr}`);
      await sameFiles(c, out);
      // the resume check and verify read it back as valid, under the v2 rule for v2-only
      const again = await runCli(['download', c.tf, '-o', out, '--peer', `127.0.0.1:${lt.ports[0]!}`, '--no-announce', '--no-dht', '--json', '--timeout', '10'], { timeoutMs: 30_000 });
      assert.equal(again.code, 0, `${c.label}: resumed complete: ${again.stderr}`);
      assert.doesNotMatch(again.stdout.toString(), /"event":"piece"/, `${c.label}: nothing fetched again`);
    } finally {
      lt.stop();
    }
  });

  test(`python-libtorrent downloads a ${label} torrent from our seed`, { skip, timeout: 90_000 }, async () => {
    const c = cases[k]!;
    const s = await startSeed(c.tf, join(root, 'data'));
    seeds.push(s);
    const out = join(root, `lt-${k}`);
    const res = await ltLeech(c.tf, out, s.port);
    assert.equal(res.code, 0, `${c.label}: ${res.err}${s.stderr()}`);
    await sameFiles(c, out);
    // a message we do not know (a BEP 52 hash request) would have closed the connection as a violation
    assert.doesNotMatch(s.stderr(), /violation/, c.label);
    await s.stop();
  });
});

test('a v2-only torrent through fetch-pieces | assemble, then verify (a changed byte is found)', { skip, timeout: 90_000 }, async () => {
  const c = cases.find((x) => x.kind === 'v2' && !x.single)!;
  const lt = await startLtSeeds(c.tf, join(root, 'data'), 1);
  const out = join(root, 'fa');
  try {
    const res = await runShell(`$TT fetch-pieces "${c.tf}" --peer 127.0.0.1:${lt.ports[0]!} --no-dht --quiet < /dev/null | $TT assemble "${c.tf}" -o "${out}" --quiet > /dev/null; echo "\${PIPESTATUS[*]}"`, { timeoutMs: 60_000 });
    assert.equal(res.stdout.toString().trim(), '0 0', res.stderr);
  } finally {
    lt.stop();
  }
  await sameFiles(c, out);
  const ok = await runCli(['verify', c.tf, out]);
  assert.equal(ok.code, 0, ok.stderr);
  const lines = ok.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { index: number; valid: boolean });
  assert.equal(lines.length, c.torrent.pieceCount);
  assert.ok(lines.every((l) => l.valid));
  // one byte of sub/mid.bin's second piece (its last: one byte of data, then alignment)
  const mid = c.torrent.files.find((f) => f.path.join('/') === 'sub/mid.bin')!;
  const p = join(out, 'd', 'sub', 'mid.bin');
  const data = await readFile(p);
  data[PL]! ^= 0xff;
  await writeFile(p, data);
  const bad = await runCli(['verify', c.tf, out]);
  assert.equal(bad.code, 1, bad.stderr);
  const invalid = bad.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { index: number; valid: boolean }).filter((l) => !l.valid).map((l) => l.index);
  assert.deepEqual(invalid, [mid.offset / PL + 1]);
  assert.equal(pieceSize(c.torrent, mid.offset / PL + 1), PL, 'a whole piece on the wire, one byte of it data');
});

/** Sends a plaintext handshake for `infoHash` to our port; the reply's handshake. */
function handshakeWith(port: number, infoHash: Buffer, reserved: Buffer = Buffer.alloc(8)): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error('no handshake reply in 10 s')), 10_000);
    s.on('connect', () => s.write(encodeHandshake({ reserved, infoHash, peerId: Buffer.concat([Buffer.from('-XX0001-'), randomBytes(12)]) })));
    s.on('data', (b: Buffer) => {
      got = Buffer.concat([got, b]);
      if (got.length >= HANDSHAKE_LENGTH) {
        clearTimeout(timer);
        s.destroy();
        resolve({ reserved: got.subarray(20, 28), infoHash: got.subarray(28, 48), peerId: got.subarray(48, 68) });
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error(`closed after ${got.length} bytes`)));
  });
}

test('a hybrid seed is one swarm under both hashes: each handshake is answered with the hash it named', { skip, timeout: 60_000 }, async () => {
  const c = cases.find((x) => x.kind === 'hybrid' && !x.single)!;
  const s = await startSeed(c.tf, join(root, 'data'));
  seeds.push(s);
  const v2 = c.torrent.infoHashV2!.subarray(0, 20);
  assert.deepEqual((await handshakeWith(s.port, c.torrent.infoHash)).infoHash, c.torrent.infoHash);
  assert.deepEqual((await handshakeWith(s.port, v2)).infoHash, v2);
  assert.deepEqual((await handshakeWith(s.port, c.torrent.infoHash, reservedBits({ v2: true }))).infoHash, c.torrent.infoHash, 'we do not upgrade: the hash the peer sent');
  await assert.rejects(handshakeWith(s.port, c.torrent.infoHashV2!.subarray(12, 32)), /closed/, 'any other hash is refused');
  await s.stop();
});

test('our handshake for a hybrid sets the v2 bit and takes a reply naming the v2 hash', { skip }, async () => {
  const c = cases.find((x) => x.kind === 'hybrid' && !x.single)!;
  const v2 = c.torrent.infoHashV2!.subarray(0, 20);
  let theirs: Handshake | null = null;
  const server = createServer((sock) => {
    sock.once('data', (b: Buffer) => {
      theirs = { reserved: b.subarray(20, 28), infoHash: b.subarray(28, 48), peerId: b.subarray(48, 68) };
      // what libtorrent 2.0 does for a v1 hash with the bit: it answers with the v2 hash
      sock.write(encodeHandshake({ reserved: Buffer.alloc(8), infoHash: v2, peerId: Buffer.alloc(20, 7) }));
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  after(() => void server.close());
  const port = (server.address() as { port: number }).port;
  const sock = connect(port, '127.0.0.1');
  await new Promise<void>((res) => sock.once('connect', () => res()));
  const conn = new PeerConnection(sock, {
    peerId: Buffer.alloc(20, 1), outgoing: true, infoHash: c.torrent.infoHash, v2InfoHash: v2, extended: false,
    limits: { pieceCount: c.torrent.pieceCount, pieceSize: (i) => pieceSize(c.torrent, i) },
  });
  const h = await new Promise<Handshake>((resolve, reject) => {
    conn.once('handshake', resolve);
    conn.once('close', (why) => reject(new Error(`closed: ${JSON.stringify(why)}`)));
  });
  assert.deepEqual(h.infoHash, v2);
  assert.ok(theirs !== null && hasBit((theirs as Handshake).reserved, V2_BIT), 'the v2 bit set');
  assert.deepEqual((theirs as unknown as Handshake).infoHash, c.torrent.infoHash, 'we name it by its v1 hash');
  conn.close(null);
});

test('download -v on a v2-only torrent: a lying peer fails the merkle check and is banned; the honest seed completes it', { skip, timeout: 90_000 }, async () => {
  const dir = await tmpDir('tt-v2-ban-');
  const lf: TestFile[] = [{ path: ['many.bin'], data: bytes(r, 100 * 16384 + 99) }, { path: ['tail.txt'], data: bytes(r, 777) }];
  const tf = join(dir, 'ban.torrent');
  const t = parseTorrent(await ltTorrent(join(dir, 'data'), 'ban', lf, 'v2', 16384, tf));
  const liar = await startScriptedSeeder({
    torrent: t, content: contentImage(t, lf), fast: true,
    onMessage: (ctx, m) => {
      if (m.type === 'interested') ctx.send({ type: 'unchoke' });
      if (m.type !== 'request') return;
      const p = ctx.piece(m);
      if (p.type === 'piece') ctx.send({ ...p, block: Buffer.from(p.block).fill(0x5a) });
    },
  });
  after(() => liar.close());
  const honest = await startSeed(tf, join(dir, 'data'), { args: ['--skip-verify', '--no-announce'] });
  seeds.push(honest);
  const out = join(dir, 'out');
  // --no-utp: the scripted liar speaks TCP only; dialled over uTP first it would be reached 3 s late
  const res = await runCli(['download', tf, '-o', out, '--peer', `127.0.0.1:${liar.port}`, '--peer', `127.0.0.1:${honest.port}`, '--no-announce', '--no-dht', '--no-utp', '-v'], { timeoutMs: 60_000 });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, new RegExp(`127\\.0\\.0\\.1:${liar.port}: banned: sent data that failed the hash check`));
  assert.doesNotMatch(res.stderr, new RegExp(`127\\.0\\.0\\.1:${honest.port}: banned`));
  for (const f of lf) assert.deepEqual(await readFile(join(out, 'ban', ...f.path)), f.data, f.path.join('/'));
});
