import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CLI, runCli } from './helpers/cli.js';
import { bytes, rng } from './helpers/random.js';
import { peerArgs, startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles, type TestFile } from './helpers/torrent.js';

const PL = 32 * 1024;
const r = rng(21);
const files: TestFile[] = [
  { path: ['big.bin'], data: bytes(r, 120 * PL + 77) },
  { path: ['dir', 'small.bin'], data: bytes(r, 5000) },
  { path: ['tail.bin'], data: bytes(r, 40 * PL) },
];
const { bytes: tb, torrent: t } = makeTorrent('dl', files, PL);
const seeds: SeedProc[] = [];
after(async () => {
  await Promise.all(seeds.map((s) => s.stop()));
});

async function same(out: string): Promise<void> {
  for (const f of files) assert.deepEqual(await readFile(join(out, 'dl', ...f.path)), f.data, f.path.join('/'));
}

async function setup(): Promise<{ dir: string; tf: string; s: SeedProc[] }> {
  const dir = await tmpDir('tt-dl-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  await writeFiles(join(dir, 'data'), 'dl', files);
  const s = await Promise.all([startSeed(tf, join(dir, 'data')), startSeed(tf, join(dir, 'data'))]);
  seeds.push(...s);
  return { dir, tf, s };
}

test('download from a loopback swarm of our seeders: byte-identical, --json events', async () => {
  const { dir, tf, s } = await setup();
  const out = join(dir, 'out');
  const res = await runCli(['download', tf, '-o', out, '--port', '0', '--no-announce', '--json', ...peerArgs(s)], { timeoutMs: 60_000 });
  assert.equal(res.code, 0, res.stderr);
  const events = res.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { event: string });
  assert.equal(events.filter((e) => e.event === 'piece').length, t.pieceCount);
  // complete, then the bytes per source (its peers here: no web seed)
  assert.equal(events.at(-2)!.event, 'complete');
  assert.equal(events.at(-1)!.event, 'sources');
  const sources = (events.at(-1) as unknown as { sources: Array<{ peer: string; bytes: number }> }).sources;
  assert.ok(sources.every((x) => /^127\.0\.0\.1:\d+$/.test(x.peer) && x.bytes > 0) && sources.reduce((n, x) => n + x.bytes, 0) >= t.length, JSON.stringify(sources));
  await same(out);
  // the smallest in-flight bound (two pieces) still completes; a bad value is a usage error
  const small = join(dir, 'small');
  const res2 = await runCli(['download', tf, '-o', small, '--port', '0', '--no-announce', '--quiet', '--max-memory', '1', ...peerArgs(s)], { timeoutMs: 60_000 });
  assert.equal(res2.code, 0, res2.stderr);
  await same(small);
  const bad = await runCli(['download', tf, '-o', small, '--max-memory', 'lots', ...peerArgs(s)]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /max-memory/);
});

test('interrupted (SIGINT, then SIGKILL) and run again: completes, and verified pieces are not fetched again', async () => {
  const { dir, tf, s } = await setup();
  const out = join(dir, 'out');
  for (const sig of ['SIGINT', 'SIGKILL'] as const) {
    const child = spawn(process.execPath, [CLI, 'download', tf, '-o', out, '--port', '0', '--no-announce', '--json', '--quiet', ...peerArgs(s)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let got = 0;
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (c: Buffer) => {
        got += c.toString().split('\n').filter((l) => l.includes('"piece"')).length;
        if (got >= 20) resolve();
      });
      child.on('exit', () => resolve());
    });
    child.kill(sig);
    const code = await new Promise<number | null>((res) => (child.exitCode !== null ? res(child.exitCode) : child.on('exit', (c) => res(c))));
    if (sig === 'SIGINT' && code !== 0) assert.equal(code, 130);
  }
  const v = await runCli(['verify', tf, out, '--quiet']);
  const valid = v.stdout.toString().trim().split('\n').filter((l) => l.includes('"valid":true')).length;
  assert.ok(valid > 0 && valid < t.pieceCount, `some pieces survived the interruptions (${valid})`);
  const res = await runCli(['download', tf, '-o', out, '--port', '0', '--no-announce', '--json', '--quiet', ...peerArgs(s)], { timeoutMs: 60_000 });
  assert.equal(res.code, 0, res.stderr);
  const fetched = res.stdout.toString().split('\n').filter((l) => l.includes('"event":"piece"')).length;
  assert.equal(fetched, t.pieceCount - valid, 'only the missing pieces were fetched');
  await same(out);
});

test('two downloaders that start with disjoint halves complete by trading with each other', async () => {
  const dir = await tmpDir('tt-trade-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  // A has the first half of the pieces on disk, B the second; no seeder anywhere
  const cut = Math.floor(t.pieceCount / 2) * PL;
  const content = Buffer.concat(files.map((f) => f.data));
  for (const [name, keep] of [['A', (o: number) => o < cut], ['B', (o: number) => o >= cut]] as const) {
    const part = Buffer.from(content);
    for (let o = 0; o < part.length; o++) if (!keep(o)) part[o] = 0;
    let off = 0;
    const fs: TestFile[] = files.map((f) => {
      const d = part.subarray(off, off + f.data.length);
      off += f.data.length;
      return { path: f.path, data: d };
    });
    await writeFiles(join(dir, name), 'dl', fs);
  }
  const portOf = (p: number) => ['--port', String(p)];
  const pa = 30000 + Math.floor(Math.random() * 10000);
  const pb = pa + 1;
  const a = runCli(['download', tf, '-o', join(dir, 'A'), ...portOf(pa), '--no-announce', '--quiet', '--peer', `127.0.0.1:${pb}`, '--seed', '--seed-time', '3'], { timeoutMs: 60_000 });
  const b = runCli(['download', tf, '-o', join(dir, 'B'), ...portOf(pb), '--no-announce', '--quiet', '--peer', `127.0.0.1:${pa}`, '--seed', '--seed-time', '3'], { timeoutMs: 60_000 });
  const [ra, rb] = await Promise.all([a, b]);
  assert.equal(ra.code, 0, ra.stderr);
  assert.equal(rb.code, 0, rb.stderr);
  await same(join(dir, 'A'));
  await same(join(dir, 'B'));
});

test('npm run demo: the documented pipeline on a loopback swarm, verified', async () => {
  const res = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const c = spawn(process.execPath, [fileURLToPath(new URL('../scripts/demo.js', import.meta.url))], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr!.on('data', (x: Buffer) => (err += x.toString()));
    c.on('close', (code) => resolve({ code, err }));
  });
  assert.equal(res.code, 0, res.err);
  assert.match(res.err, /every file is byte-identical to the source/);
});
