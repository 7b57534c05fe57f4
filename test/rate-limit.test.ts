/**
 * Rate limits over real loopback transfers between our own processes: seed --max-upload-rate,
 * and download --max-download-rate shared by two torrents, one of them held lower by its list
 * record. Rates are measured from the download's own events (the bytes of the pieces that
 * arrived between two moments), with a tolerance, never as exact timings.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { CLI, runCli } from './helpers/cli.js';
import { bytes, rng } from './helpers/random.js';
import { startSeedOf, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles } from './helpers/torrent.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const PL = 64 * KiB;
const seeds: SeedProc[] = [];
after(async () => {
  await Promise.all(seeds.map((s) => s.stop()));
});

interface Arrival {
  at: number;
  infoHash: string;
  bytes: number;
}

/** Runs download with --json; the time each piece event arrived, and the exit status. */
async function timedDownload(args: string[]): Promise<{ code: number | null; arrivals: Arrival[]; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'download', ...args, '--json', '--no-announce', '--no-dht', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const arrivals: Arrival[] = [];
  createInterface({ input: child.stdout }).on('line', (l) => {
    const ev = JSON.parse(l) as { event: string; infoHash: string; bytes: number };
    if (ev.event === 'piece') arrivals.push({ at: Date.now(), infoHash: ev.infoHash, bytes: ev.bytes });
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  return { code, arrivals, stderr };
}

/** Bytes/s over the middle of the transfer: from the arrival after the first second to the last. */
function steadyRate(arrivals: Arrival[]): number {
  const from = arrivals.find((a) => a.at - arrivals[0]!.at >= 1000);
  assert.ok(from, 'the transfer lasted over a second');
  const after = arrivals.filter((a) => a.at > from.at);
  const bytes = after.reduce((n, a) => n + a.bytes, 0);
  return bytes / ((after.at(-1)!.at - from.at) / 1000);
}

async function torrentIn(dir: string, name: string, size: number, seed: number): Promise<{ tf: string; infoHash: string }> {
  const r = rng(seed);
  const files = [{ path: ['data.bin'], data: bytes(r, size) }];
  const { bytes: tb, torrent } = makeTorrent(name, files, PL);
  const tf = join(dir, `${name}.torrent`);
  await writeFile(tf, tb);
  await writeFiles(join(dir, 'data'), name, files);
  return { tf, infoHash: torrent.infoHashHex };
}

test('seed --max-upload-rate holds what it sends to the limit (within 15 %)', async (t) => {
  const dir = await tmpDir('tt-rate-up-');
  const { tf } = await torrentIn(dir, 'up', 4 * MiB, 31);
  const seed = await startSeedOf([tf, join(dir, 'data')], { args: ['--no-announce', '--max-upload-rate', '1M'] });
  seeds.push(seed);
  const res = await timedDownload([tf, '-o', join(dir, 'out'), '--peer', `127.0.0.1:${seed.port}`]);
  assert.equal(res.code, 0, res.stderr);
  const rate = steadyRate(res.arrivals);
  t.diagnostic(`seed --max-upload-rate 1M: ${(rate / MiB).toFixed(3)} MiB/s`);
  assert.ok(rate > 0.85 * MiB && rate < 1.15 * MiB, `uploaded at ${(rate / MiB).toFixed(2)} MiB/s under a 1 MiB/s limit`);
});

test('download --max-download-rate is shared by its torrents; a list record holds one lower', async (t) => {
  const dir = await tmpDir('tt-rate-down-');
  const slow = await torrentIn(dir, 'slow', 1 * MiB + 5 * PL, 32);
  const fast = await torrentIn(dir, 'fast', 3 * MiB, 33);
  const seed = await startSeedOf([slow.tf, fast.tf, join(dir, 'data')], { args: ['--no-announce'] });
  seeds.push(seed);
  const list = join(dir, 'list.txt');
  await writeFile(list, `{"torrent": ${JSON.stringify(slow.tf)}, "maxDownloadRate": "256K"}\n${fast.tf}\n`);
  const res = await timedDownload(['-i', list, '-o', join(dir, 'out'), '--peer', `127.0.0.1:${seed.port}`, '--max-download-rate', '1M']);
  assert.equal(res.code, 0, res.stderr);
  // while both run, the two together hold the global limit and the slow one its own
  const bothEnd = Math.min(...[slow, fast].map((t) => res.arrivals.filter((a) => a.infoHash === t.infoHash).at(-1)!.at));
  const both = res.arrivals.filter((a) => a.at <= bothEnd);
  const total = steadyRate(both);
  const slowRate = steadyRate(both.filter((a) => a.infoHash === slow.infoHash));
  t.diagnostic(`download --max-download-rate 1M: both ${(total / MiB).toFixed(3)} MiB/s, the one held at 256K ${(slowRate / KiB).toFixed(0)} KiB/s`);
  assert.ok(total > 0.8 * MiB && total < 1.15 * MiB, `both at ${(total / MiB).toFixed(2)} MiB/s under a global 1 MiB/s`);
  assert.ok(slowRate > 0.7 * 256 * KiB && slowRate < 1.2 * 256 * KiB, `the held one at ${(slowRate / KiB).toFixed(0)} KiB/s under its own 256 KiB/s`);
});

test('fetch-pieces --max-download-rate holds the stage to the limit (its own --stats figures)', async (t) => {
  const dir = await tmpDir('tt-rate-fetch-');
  const { tf } = await torrentIn(dir, 'fetched', 4 * MiB, 34);
  const seed = await startSeedOf([tf, join(dir, 'data')], { args: ['--no-announce'] });
  seeds.push(seed);
  const stats = join(dir, 'stats.ndjson');
  const res = await runCli(['fetch-pieces', tf, '--peer', `127.0.0.1:${seed.port}`, '--no-dht', '--max-download-rate', '1M', '--stats', stats, '--quiet'], { input: '', timeoutMs: 60_000 });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stdout.length > 4 * MiB, true, 'the piece stream came out');
  // the per-second records: bytes downloaded against time, past the first second (the burst)
  const recs = (await readFile(stats, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { time: number; downloaded: number });
  const a = recs.find((r) => r.time - recs[0]!.time >= 1)!;
  // the last record after it (the final one is written as the stage ends): a machine under load
  // may write so few per-second records that the one before the last is `a` itself
  const b = recs.filter((r) => r.time > a.time).at(-1)!;
  const rate = (b.downloaded - a.downloaded) / (b.time - a.time);
  t.diagnostic(`fetch-pieces --max-download-rate 1M: ${(rate / MiB).toFixed(3)} MiB/s`);
  assert.ok(rate > 0.85 * MiB && rate < 1.15 * MiB, `fetched at ${(rate / MiB).toFixed(2)} MiB/s under a 1 MiB/s limit`);
});
