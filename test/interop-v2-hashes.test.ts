/**
 * BEP 52 hash requests against python-libtorrent 2.0, both ways: our `peer` asks a libtorrent
 * seed for leaf hashes with proofs (its uncle counting is the reference), and a libtorrent
 * leecher that has only a btmh magnet fetches the piece layers from our `seed`.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { parseTorrent, type Torrent } from '../src/metainfo/torrent.js';
import { sourceOfMagnet } from '../src/metainfo/source.js';
import { runCli } from './helpers/cli.js';
import { FIXTURES, SYSTEM_PYTHON, hasLibtorrent, skipUnless, startLtSeeds } from './helpers/interop.js';
import { ltTorrent } from './helpers/lt-v2.js';
import { bytes, rng } from './helpers/random.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { tmpDir, type TestFile } from './helpers/torrent.js';

const lt = { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent') };
const PL = 64 * 1024;
const r = rng(52);
// file-tree order: a.bin (big, 23 pieces), b.bin (under a piece), z.bin (2 pieces and a bit:
// the last piece is padded, as libtorrent pads the last file too)
const files: Array<[string, Buffer]> = [['a.bin', bytes(r, 1_500_000)], ['b.bin', bytes(r, 40_000)], ['z.bin', bytes(r, 2 * PL + 1000)]];
const procs: ChildProcess[] = [];
const seeds: SeedProc[] = [];
const stops: Array<() => void> = [];
after(async () => {
  for (const p of procs) p.kill('SIGKILL');
  for (const s of stops) s();
  await Promise.all(seeds.map((s) => s.stop()));
});

/** The files under DIR/d, and python-libtorrent's v2-only and hybrid torrents of them. */
async function prepare(): Promise<{ dir: string; v2: string; hybrid: string }> {
  const dir = await tmpDir('tt-v2h-');
  const tfs: TestFile[] = files.map(([name, data]) => ({ path: [name], data }));
  const v2 = join(dir, 'v2.torrent');
  const hybrid = join(dir, 'hybrid.torrent');
  await ltTorrent(dir, 'd', tfs, 'v2', PL, v2);
  await ltTorrent(dir, 'd', tfs, 'hybrid', PL, hybrid);
  return { dir, v2, hybrid };
}

type Line = Record<string, unknown>;
/** The hex name a magnet's download is cached under. */
const cacheName = (magnet: string): string => sourceOfMagnet(magnet).infoHash.toString('hex');
const lines = (out: Buffer): Line[] => out.toString().trim().split('\n').map((l) => JSON.parse(l) as Line);

async function askHashes(port: number, tf: string, piece: number): Promise<{ code: number | null; trace: Line[] }> {
  const res = await runCli(['peer', `127.0.0.1:${port}`, tf, '--hashes', String(piece), '--timeout', '10'], { timeoutMs: 30_000 });
  return { code: res.code, trace: lines(res.stdout) };
}

/** Each torrent in turn seeded by one python-libtorrent session: its model, the seed's port, its magnets. */
async function eachSeededByLt(dir: string, tfs: string[], fn: (tf: string, t: Torrent, port: number, magnet: { btmh: string; both: string }) => Promise<void>): Promise<void> {
  for (const tf of tfs) {
    const t = parseTorrent(await readFile(tf));
    const seedsLt = await startLtSeeds(tf, dir, 1);
    stops.push(seedsLt.stop);
    const btmh = `xt=urn:btmh:1220${t.infoHashV2!.toString('hex')}`;
    await fn(tf, t, seedsLt.ports[0]!, { btmh: `magnet:?${btmh}`, both: `magnet:?xt=urn:btih:${t.infoHashHex}&${btmh}` });
    seedsLt.stop();
  }
}

test('peer --hashes: leaf hashes and proofs from python-libtorrent check against our roots and layers (v2-only, hybrid)', lt, async () => {
  const { dir, v2, hybrid } = await prepare();
  await eachSeededByLt(dir, [v2, hybrid], async (tf, t, port) => {
    const last = t.pieceCount - 1;
    // a.bin's first piece and one inside, b.bin (its own root), z.bin's last piece
    const bPiece = Math.floor(t.files.find((f) => f.path.at(-1) === 'b.bin')!.offset / PL);
    for (const [piece, uncles] of [[0, 5], [7, 5], [bPiece, 0], [last, 2]] as const) {
      const { code, trace } = await askHashes(port, tf, piece);
      assert.equal(code, 0, JSON.stringify(trace));
      const sent = trace.find((l) => l['dir'] === 'out' && l['type'] === 'hash-request');
      const got = trace.find((l) => l['dir'] === 'in' && l['type'] === 'hashes');
      assert.ok(sent && got, JSON.stringify(trace));
      assert.deepEqual({ ...got, dir: 'out', type: 'hash-request', hashes: undefined }, { ...sent, hashes: undefined });
      assert.deepEqual(trace.find((l) => l['event'] === 'hashes'), { event: 'hashes', index: piece, valid: true, uncles }, `${tf} piece ${piece}`);
    }
  });
});

test('peer --hashes: our seed answers with the same proofs (v2-only, hybrid); what it cannot answer it rejects', lt, async () => {
  const { dir, v2, hybrid } = await prepare();
  const t = parseTorrent(await readFile(v2));
  for (const tf of [v2, hybrid]) {
    const s = await startSeed(tf, dir);
    seeds.push(s);
    const pieces = parseTorrent(await readFile(tf)).pieceCount;
    for (const piece of [0, 7, 22, 23, pieces - 1]) {
      const { code, trace } = await askHashes(s.port, tf, piece);
      assert.equal(code, 0, JSON.stringify(trace));
      assert.equal(trace.find((l) => l['event'] === 'hashes')?.['valid'], true, `${tf} piece ${piece}`);
    }
    await s.stop();
  }
  // a seed that has only part of the data vouches for none of the rest
  const part = join(dir, 'part');
  await mkdir(join(part, 'd'), { recursive: true });
  await writeFile(join(part, 'd', 'a.bin'), files[0]![1]);
  const s2 = await startSeed(v2, part);
  seeds.push(s2);
  const { code, trace } = await askHashes(s2.port, v2, t.pieceCount - 1);
  assert.equal(code, 1);
  assert.ok(trace.some((l) => l['dir'] === 'in' && l['type'] === 'hash-reject'), JSON.stringify(trace));
  assert.deepEqual(trace.find((l) => l['event'] === 'hashes'), { event: 'hashes', index: t.pieceCount - 1, valid: false, rejected: true });
});

test('a python-libtorrent leecher given only a btmh magnet downloads a v2 torrent from our seed (piece layers by hash request)', lt, async () => {
  const { dir, v2 } = await prepare();
  const t = parseTorrent(await readFile(v2));
  const s = await startSeed(v2, dir);
  seeds.push(s);
  const out = join(dir, 'lt-out');
  const magnet = `magnet:?xt=urn:btmh:1220${t.infoHashV2!.toString('hex')}`;
  const c = spawn(SYSTEM_PYTHON, [fileURLToPath(new URL('lt-leech.py', FIXTURES)), magnet, out, `127.0.0.1:${s.port}`, '60'], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(c);
  let err = '';
  c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((res) => c.on('exit', res));
  assert.equal(code, 0, err + s.stderr());
  for (const [name, data] of files) assert.ok((await readFile(join(out, 'd', name))).equals(data), name);
});

test('download of a btmh magnet from python-libtorrent: metadata by the v2 hash, piece layers by hash requests (v2-only, hybrid)', lt, async () => {
  const { dir, v2, hybrid } = await prepare();
  await eachSeededByLt(dir, [v2, hybrid], async (_tf, t, port, m) => {
    const magnets = t.version === 2 ? [m.btmh] : [m.btmh, m.both];
    for (const magnet of magnets) {
      const out = join(dir, `dl-${t.version}-${magnets.indexOf(magnet)}`);
      const res = await runCli(['download', magnet, '-o', out, '--peer', `127.0.0.1:${port}`, '--no-dht', '--no-announce', '-v'], { timeoutMs: 60_000 });
      assert.equal(res.code, 0, res.stderr);
      for (const [name, data] of files) assert.ok((await readFile(join(out, 'd', name))).equals(data), `${magnet}: ${name}`);
      // a v2-only torrent's big files can be checked only once their layers came; a hybrid's
      // pieces are SHA-1, its layers fetched all the same (from peers on a v2 connection), to
      // answer v2 peers' hash requests in turn
      const fetched = (e: string): string[] => e.split('\n').filter((l) => /piece layer of .* fetched by hash requests/.test(l));
      assert.equal(fetched(res.stderr).length, 2, res.stderr);
      // the layers were cached with the metadata: a second run checks the files with them
      const cached = parseTorrent(await readFile(join(out, '.torrent-tools', `${cacheName(magnet)}.torrent`)));
      assert.deepEqual(cached.pieceLayers, t.pieceLayers);
      const again = await runCli(['download', magnet, '-o', out, '--peer', `127.0.0.1:${port}`, '--no-dht', '--no-announce', '-v', '--json'], { timeoutMs: 60_000 });
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(fetched(again.stderr), []);
      const events = lines(again.stdout);
      assert.equal(events.find((e) => e['event'] === 'metadata')?.['source'], 'cache');
      assert.ok(!events.some((e) => e['event'] === 'piece'), 'nothing fetched again');
    }
  });
});

test('fetch-metadata from python-libtorrent writes a whole .torrent: piece layers asked by hash requests (btmh v2-only, btih+btmh hybrid)', lt, async () => {
  const { dir, v2, hybrid } = await prepare();
  await eachSeededByLt(dir, [v2, hybrid], async (_tf, t, port, m) => {
    // a hybrid's magnet as qBittorrent gives it: both hashes (the peers are met under the
    // SHA-1, with the v2 upgrade offered)
    const magnet = t.version === 2 ? m.btmh : m.both;
    const out = join(dir, `fm-${t.version}.torrent`);
    const res = await runCli(['fetch-metadata', magnet, '--peer', `127.0.0.1:${port}`, '-o', out, '--timeout', '30'], { timeoutMs: 60_000 });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '');
    const got = parseTorrent(await readFile(out));
    assert.deepEqual(got.infoHashV2, t.infoHashV2);
    assert.equal(got.pieceLayers?.size, 2);
    assert.deepEqual(got.pieceLayers, t.pieceLayers);
  });
});
