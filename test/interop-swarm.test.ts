/** Interop with real clients on loopback: python-libtorrent and aria2 (skipped when absent). */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { CLI, runShell } from './helpers/cli.js';
import { SYSTEM_PYTHON, hasCommand, hasLibtorrent, skipUnless, startLtSeeds } from './helpers/interop.js';
import { bytes, rng } from './helpers/random.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, makeTorrentBytes, tmpDir, writeFiles, type TestFile } from './helpers/torrent.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freeTcpPort } from './helpers/ports.js';

const FIX = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const PL = 64 * 1024;
const r = rng(42);
const files: TestFile[] = [
  { path: ['one.bin'], data: bytes(r, 20 * PL + 5) },
  { path: ['dir', 'two.bin'], data: bytes(r, 3 * PL - 7) },
  { path: ['three.bin'], data: bytes(r, 12345) },
];
const { bytes: tb } = makeTorrent('interop', files, PL);
const procs: ChildProcess[] = [];
const seeds: SeedProc[] = [];
after(async () => {
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all(seeds.map((s) => s.stop()));
});

async function prepare(): Promise<{ dir: string; tf: string; full: string }> {
  const dir = await tmpDir('tt-interop-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  const full = join(dir, 'full');
  await writeFiles(full, 'interop', files);
  return { dir, tf, full };
}

async function sameFiles(out: string): Promise<void> {
  for (const f of files) assert.deepEqual(await readFile(join(out, 'interop', ...f.path)), f.data, f.path.join('/'));
}

test('fetch-pieces | assemble from two python-libtorrent seeders', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent') }, async () => {
  const { dir, tf, full } = await prepare();
  const lt = await startLtSeeds(tf, full, 2);
  const ports = lt.ports;
  const out = join(dir, 'out');
  const peers = ports.map((p) => `--peer 127.0.0.1:${p}`).join(' ');
  const res = await runShell(`$TT fetch-pieces "${tf}" ${peers} --quiet < /dev/null | $TT assemble "${tf}" -o "${out}" --quiet > /dev/null; echo "\${PIPESTATUS[*]}"`, { timeoutMs: 60_000 });
  assert.equal(res.stdout.toString().trim(), '0 0', res.stderr);
  await sameFiles(out);
  lt.stop();
});

test('fetch-pieces | assemble from python-libtorrent seeders that refuse plaintext (MSE retry)', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent') }, async () => {
  const { dir, tf, full } = await prepare();
  const lt = await startLtSeeds(tf, full, 2, { LT_ENCRYPTION: 'rc4' });
  const out = join(dir, 'out-mse');
  const peers = lt.ports.map((p) => `--peer 127.0.0.1:${p}`).join(' ');
  const res = await runShell(`$TT fetch-pieces "${tf}" ${peers} --quiet --no-dht --timeout 30 < /dev/null | $TT assemble "${tf}" -o "${out}" --quiet > /dev/null; echo "\${PIPESTATUS[*]}"`, { timeoutMs: 60_000 });
  lt.stop();
  assert.equal(res.stdout.toString().trim(), '0 0', res.stderr);
  for (const f of files) assert.deepEqual(await readFile(join(out, 'interop', ...f.path)), f.data, f.path.join('/'));
});

test('a python-libtorrent leecher downloads a multi-file torrent from our seed', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent') }, async () => {
  const { dir, tf, full } = await prepare();
  const s = await startSeed(tf, full);
  seeds.push(s);
  const out = join(dir, 'lt-out');
  const res = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const c = spawn(SYSTEM_PYTHON, [join(FIX, 'lt-leech.py'), tf, out, `127.0.0.1:${s.port}`, '60'], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(c);
    let err = '';
    c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    c.on('close', (code) => resolve({ code, err }));
  });
  assert.equal(res.code, 0, res.err + s.stderr());
  await sameFiles(out);
});

test('aria2c downloads a multi-file torrent from our seed', { skip: skipUnless(hasCommand('aria2c'), 'aria2') }, async () => {
  const { dir, full } = await prepare();
  const s = await startSeed(join(dir, 'x.torrent'), full);
  seeds.push(s);
  // aria2 learns peers only from trackers (DHT and PEX are off here): a minimal HTTP tracker in
  // the test answers every announce with our seed's address (BEP 23 compact form)
  const tracker = createServer((req, res) => {
    const peer = Buffer.from([127, 0, 0, 1, s.port >> 8, s.port & 0xff]);
    res.end(Buffer.concat([Buffer.from('d8:intervali60e5:peers6:'), peer, Buffer.from('e')]));
    void req;
  });
  await new Promise<void>((res) => tracker.listen(0, '127.0.0.1', () => res()));
  after(() => void tracker.close());
  const url = `http://127.0.0.1:${(tracker.address() as AddressInfo).port}/announce`;
  const tf = join(dir, 'aria.torrent');
  await writeFile(tf, makeTorrentBytes('interop', files, PL, [['announce', Buffer.from(url)]]));
  const out = join(dir, 'aria-out');
  const res = await runShell(
    `timeout 60 aria2c --no-conf --dir="${out}" --seed-time=0 --enable-dht=false --enable-dht6=false --bt-enable-lpd=false ` +
      `--enable-peer-exchange=false --listen-port=${await freeTcpPort()} --file-allocation=none --summary-interval=0 ` +
      `--console-log-level=warn --download-result=hide "${tf}"`,
    { timeoutMs: 70_000 },
  );
  assert.equal(res.code, 0, res.stdout.toString() + res.stderr + s.stderr());
  await sameFiles(out);
});

test('a python-libtorrent leecher downloads from our download while it is still downloading', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent'), timeout: 90_000 }, async () => {
  const { dir, tf } = await prepare();
  // the only seeder has the first file and nothing else: our download gets those pieces and
  // stays incomplete, so whatever the leecher gets, it gets from a peer still downloading
  const partial = join(dir, 'partial');
  await writeFiles(partial, 'interop', files.slice(0, 1));
  const s = await startSeed(tf, partial);
  seeds.push(s);
  const port = await freeTcpPort();
  const dl = spawn(process.execPath, [CLI, 'download', tf, '-o', join(dir, 'dl'), '--port', String(port), '--peer', `127.0.0.1:${s.port}`, '--no-announce', '--no-dht', '--json', '--quiet', '--timeout', '60'], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(dl);
  let events = '';
  dl.stdout!.on('data', (b: Buffer) => (events += b.toString()));
  await new Promise<void>((resolve) => dl.stdout!.on('data', () => events.split('"event":"piece"').length > 10 && resolve()));
  const res = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const c = spawn(SYSTEM_PYTHON, [join(FIX, 'lt-leech.py'), tf, join(dir, 'lt-from-dl'), `127.0.0.1:${port}`, '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(c);
    let err = '';
    c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    c.on('close', (code) => resolve({ code, err }));
  });
  // it cannot finish (nobody has the other files), but it got what our download had
  assert.equal(res.code, 1, res.err);
  const progress = Number(/progress=([\d.]+)/.exec(res.err)?.[1] ?? 0);
  assert.ok(progress > 0.5, `the leecher got ${progress} of the torrent from our download: ${res.err}`);
  assert.equal(dl.exitCode, null, 'our download was still running (incomplete)');
  assert.ok(!events.includes('"event":"complete"'));
  dl.kill('SIGINT');
});
