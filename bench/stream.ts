/**
 * Streaming (`download --serve`) on the realistic rate-limited swarm of the real-swarm bench
 * (test/helpers/real-swarm.ts: python-libtorrent seeders behind delay relays, through a
 * tracker; no churn here): the time from the start of the process to the first byte of a
 * range at 90 % of the file, against the reference of the same download without --serve, timed
 * until the piece holding that byte is on disk (its `piece` event). Each leg on a fresh swarm
 * (the seeders' rate limiters bank quota while idle), order alternated.
 * Run alone: `node dist/bench/stream.js` (env BENCH_STREAM_MIB, BENCH_STREAM_RUNS,
 * BENCH_REAL_SEEDERS, BENCH_REAL_RATES=minKiB-maxKiB).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { hasLibtorrent } from '../test/helpers/interop.js';
import { freeTcpPort } from '../test/helpers/ports.js';
import { spreadSeeders, startRealSwarm } from '../test/helpers/real-swarm.js';
import { CLI, fmt, makeData, median } from './harness.js';

const MiB = 1024 * 1024;
const PL = 256 * 1024;
const SETTLE_MS = 4000;
const LIMIT_MS = 300_000;

type LegName = 'serve' | 'reference';

/** Starts `download` with --json; resolves each JSON line to `onEvent` until stopped. */
function startDownload(torrent: string, out: string, state: string, extra: string[], onEvent: (ev: { event: string; index?: number; url?: string }) => void): ChildProcess {
  const child = spawn(process.execPath, [CLI, 'download', torrent, '-o', out, '--no-dht', '--quiet', '--port', '0', '--json', ...extra], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, XDG_STATE_HOME: state },
  });
  createInterface({ input: child.stdout! }).on('line', (l) => onEvent(JSON.parse(l) as { event: string; index?: number; url?: string }));
  return child;
}

/** ms from `t0` to the first body byte of the range [from, from + 64 KiB) of `url`. */
function firstByte(url: string, from: number, t0: number): Promise<number> {
  return new Promise((res, reject) => {
    const req = request(url, { headers: { Range: `bytes=${from}-${from + 65535}` } }, (r) => {
      if (r.statusCode !== 206) reject(new Error(`${url}: HTTP ${r.statusCode}`));
      r.once('data', () => {
        res(Date.now() - t0);
        req.destroy();
      });
    });
    req.on('error', reject);
    req.end();
  });
}

async function runLeg(leg: LegName, torrent: string, dir: string, trackerPort: number, size: number, run: number, specs: ReturnType<typeof spreadSeeders>): Promise<number> {
  const swarm = await startRealSwarm({ torrentPath: torrent, dataDir: dir, trackerPort, seeders: specs });
  const out = join(dir, `out-${leg}-${run}`);
  const at = Math.floor(size * 0.9);
  let child: ChildProcess | null = null;
  try {
    await sleep(SETTLE_MS);
    const t0 = Date.now();
    const ms = await new Promise<number>((res, reject) => {
      const timer = setTimeout(() => reject(new Error(`${leg}: no answer in ${LIMIT_MS} ms`)), LIMIT_MS);
      const done = (x: number): void => {
        clearTimeout(timer);
        res(x);
      };
      child = startDownload(torrent, out, dir, leg === 'serve' ? ['--serve'] : [], (ev) => {
        if (leg === 'serve' && ev.event === 'serving') {
          firstByte(`${ev.url!}data.bin`, at, t0).then(done, reject);
        } else if (leg === 'reference' && ev.event === 'piece' && ev.index === Math.floor(at / PL)) done(Date.now() - t0);
      });
      child.on('exit', (code) => reject(new Error(`${leg}: download exited ${code}`)));
    });
    return ms;
  } finally {
    const c = child as ChildProcess | null;
    if (c !== null && c.exitCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGINT');
      setTimeout(() => c.kill('SIGKILL'), 5000).unref();
      await exited;
    }
    await swarm.close();
    await rm(out, { recursive: true, force: true });
  }
}

export async function benchStream(sizeMiB = Number(process.env['BENCH_STREAM_MIB'] ?? 96), runs = Number(process.env['BENCH_STREAM_RUNS'] ?? 3)): Promise<string[]> {
  if (!hasLibtorrent()) return ['## streaming', '', 'skipped: python3-libtorrent is not installed'];
  const n = Number(process.env['BENCH_REAL_SEEDERS'] ?? 12);
  const [minKiB, maxKiB] = (process.env['BENCH_REAL_RATES'] ?? '256-8192').split('-').map(Number) as [number, number];
  const dir = await mkdtemp(join(tmpdir(), 'tt-bench-stream-'));
  try {
    const data = join(dir, 'data.bin');
    await makeData(data, sizeMiB);
    const trackerPort = await freeTcpPort();
    const torrent = join(dir, 'x.torrent');
    const c = spawnSync(CLI, ['create', data, '-o', torrent, '--announce', `http://127.0.0.1:${trackerPort}/announce`, '--piece-length', String(PL), '--quiet'], { encoding: 'utf8' });
    if (c.status !== 0) throw new Error(`create: ${c.stderr}`);
    const specs = spreadSeeders(n, 1, { minRate: minKiB * 1024, maxRate: maxKiB * 1024 });
    const capacity = specs.reduce((a, sp) => a + sp.rate, 0);
    const times: Record<LegName, number[]> = { serve: [], reference: [] };
    const errors: string[] = [];
    for (let r = 0; r < runs; r++) {
      const order: LegName[] = r % 2 === 0 ? ['serve', 'reference'] : ['reference', 'serve'];
      for (const leg of order) {
        try {
          times[leg].push((await runLeg(leg, torrent, dir, trackerPort, sizeMiB * MiB, r, specs)) / 1000);
        } catch (e) {
          errors.push(`- run ${r} ${leg}: ${(e as Error).message}`);
        }
      }
    }
    const row = (leg: LegName, what: string): string => {
      const t = times[leg];
      return `| ${what} | ${fmt(median(t))} | ${fmt(Math.min(...t))} | ${fmt(Math.max(...t))} | ${t.map((x) => fmt(x)).join(', ')} |`;
    };
    return [
      `## streaming (${sizeMiB} MiB, ${PL / 1024} KiB pieces, ${n} python-libtorrent seeders ${minKiB}..${maxKiB} KiB/s behind 40..200 ms RTT relays, ${fmt(capacity / MiB, 1)} MiB/s in all; median of ${runs}, each leg on a fresh swarm)`,
      '',
      'Seconds from the start of `download` to the byte at 90 % of the file.',
      '',
      '| leg | median s | min s | max s | runs |',
      '|---|---|---|---|---|',
      row('serve', '`--serve`: first byte of a 64 KiB range there'),
      row('reference', 'without --serve: its piece on disk'),
      '',
      `- serve / reference: **${fmt(median(times.serve) / median(times.reference))}×**`,
      ...(errors.length > 0 ? ['', 'failed legs:', ...errors] : []),
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const line of await benchStream()) console.log(line);
}
