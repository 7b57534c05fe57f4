/**
 * Downloads from "a swarm that chokes, lags and churns" (test/helpers/real-swarm.ts): rate-limited
 * python-libtorrent seeders behind delay relays, found through a tracker, the fastest leaving
 * mid-way and a new one joining. Legs: our `download`, our `announce --watch | fetch-pieces |
 * assemble`, a python-libtorrent leecher and aria2c, each on a freshly started swarm (the rate
 * limiter banks quota while idle: every leg must start with the same bank), order alternated.
 * Run alone: `node dist/bench/real-swarm.js` (env BENCH_REAL_MIB, BENCH_REAL_RUNS,
 * BENCH_REAL_SEEDERS, BENCH_REAL_RATES=minKiB-maxKiB, BENCH_REAL_LEGS=download,pipeline,...).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { hasCommand, hasLibtorrent, SYSTEM_PYTHON } from '../test/helpers/interop.js';
import { LT_SWARM_PY } from '../test/helpers/lt-swarm.js';
import { freeTcpPort } from '../test/helpers/ports.js';
import { spreadSeeders, startRealSwarm, type RealSwarm, type SeederSpec } from '../test/helpers/real-swarm.js';
import { CLI, aria2cArgv, fmt, makeData, measureCommand, median, sha1File, summarizeStderr, type LegResult } from './harness.js';

const MiB = 1024 * 1024;
/** libtorrent's limiter banks up to 3 s of quota: every leg starts after the bank is full. */
const SETTLE_MS = 4000;

interface Leg {
  name: string;
  ours: boolean;
  /** argv for `timeout`, after the limit; stderr goes to `err` */
  argv(t: { torrent: string; out: string; err: string; state: string; port: number }): string[];
}

// the README's pipeline as a user runs it: it ends by itself once assemble is done (announce
// notices that its reader has gone and says 'stopped'); the whole pipeline's wall time counts
const PIPELINE = `set -o pipefail
export XDG_STATE_HOME="$4"
exec 2>"$3"
"$0" announce "$1" --watch | "$0" fetch-pieces "$1" --no-dht --quiet | "$0" assemble "$1" -o "$2" --quiet > /dev/null`;

const LEGS: Leg[] = [
  { name: 'download', ours: true, argv: (t) => ['bash', '-c', 'export XDG_STATE_HOME="$4"; exec "$0" download "$1" -o "$2" --no-dht --quiet --port 0 2>"$3"', CLI, t.torrent, t.out, t.err, t.state] },
  { name: 'pipeline', ours: true, argv: (t) => ['bash', '-c', PIPELINE, CLI, t.torrent, t.out, t.err, t.state] },
  { name: 'libtorrent', ours: false, argv: (t) => ['bash', '-c', 'exec "$0" "$1" --leech "$2" "$3" 600 2>"$4" >/dev/null', SYSTEM_PYTHON, LT_SWARM_PY, t.torrent, t.out, t.err] },
  { name: 'aria2c', ours: false, argv: (t) => aria2cArgv(t.torrent, t.out, t.err, t.port) },
];

interface Result extends LegResult {
  /** MiB each seeder uploaded, by `rateKiB/rttMs`, the leaver and the joiner marked */
  uploads: string;
}

interface Setup {
  dir: string;
  torrent: string;
  trackerPort: number;
  specs: SeederSpec[];
  sha1: string;
  size: number;
  limitS: number;
}

/**
 * Churn keyed to the download's progress as the seeders see it (the sum of their uploads), so
 * that it hits every client at the same point: the fastest seeder leaves at 40 %, one as fast
 * (another RTT) joins at 50 %; it is found only by a leecher that re-announces.
 */
async function churn(swarm: RealSwarm, size: number, signal: AbortSignal, tags: Map<string, string>, uploaded: Map<string, number>): Promise<void> {
  const fastest = [...swarm.seeders].sort((a, b) => b.rate - a.rate)[0]!;
  let left = false;
  while (!signal.aborted) {
    let sum = 0;
    for (const sd of swarm.seeders) {
      const b = (await swarm.lt.stats(sd.name)).total_payload_upload;
      uploaded.set(sd.name, b);
      sum += b;
    }
    if (!left && sum >= 0.4 * size) {
      left = true;
      tags.set(fastest.name, 'left');
      await swarm.leave(fastest.name);
    } else if (left && sum + (uploaded.get(fastest.name) ?? 0) >= 0.5 * size) {
      tags.set((await swarm.join({ rate: fastest.rate, rttMs: 120 })).name, 'joined');
      return;
    }
    await sleep(250, undefined, { signal }).catch(() => {});
  }
}

/** One leg on a fresh swarm: settle, start, churn, verify. */
async function runLeg(s: Setup, leg: Leg, run: number): Promise<Result> {
  const out = join(s.dir, `out-${leg.name}-${run}`);
  const err = join(s.dir, `err-${leg.name}-${run}.txt`);
  spawnSync('sync'); // the previous leg's dirty pages must not be written back during this one
  const swarm: RealSwarm = await startRealSwarm({ torrentPath: s.torrent, dataDir: s.dir, trackerPort: s.trackerPort, seeders: s.specs });
  const tags = new Map<string, string>();
  const uploaded = new Map<string, number>();
  const stop = new AbortController();
  let churning: Promise<string | null> = Promise.resolve(null);
  try {
    await sleep(SETTLE_MS);
    const rates = new Map(swarm.seeders.map((sd) => [sd.name, `${Math.round(sd.rate / 1024)}/${sd.rttMs}`]));
    churning = churn(swarm, s.size, stop.signal, tags, uploaded).then(() => null, (e: unknown) => `harness: churn failed: ${String(e)}`);
    const m = await measureCommand('timeout', ['-k', '5', String(s.limitS), ...leg.argv({ torrent: s.torrent, out, err, state: s.dir, port: await freeTcpPort() })]);
    stop.abort();
    const churnError = await churning;
    for (const sd of swarm.seeders) {
      uploaded.set(sd.name, (await swarm.lt.stats(sd.name)).total_payload_upload);
      if (!rates.has(sd.name)) rates.set(sd.name, `${Math.round(sd.rate / 1024)}/${sd.rttMs}`);
    }
    const uploads = [...uploaded].map(([n, b]) => `${rates.get(n) ?? n}${tags.has(n) ? `(${tags.get(n)})` : ''}:${fmt(b / MiB, 1)}`).join(' ');
    const verified = m.code === 0 && (await sha1File(join(out, 'data.bin')).catch(() => '')) === s.sha1;
    const stderr = (await readFile(err, 'utf8').catch(() => '')).split('\n').map((l) => l.trim()).filter(Boolean);
    return { ...m, leg: leg.name, verified, stderr: churnError === null ? stderr : [churnError, ...stderr], uploads };
  } finally {
    stop.abort();
    await churning;
    await swarm.close();
    await rm(out, { recursive: true, force: true });
  }
}

export async function benchRealSwarm(sizeMiB = Number(process.env['BENCH_REAL_MIB'] ?? 96), runs = Number(process.env['BENCH_REAL_RUNS'] ?? 3)): Promise<string[]> {
  if (!hasLibtorrent()) return ['## real swarm', '', 'skipped: python3-libtorrent is not installed'];
  const n = Number(process.env['BENCH_REAL_SEEDERS'] ?? 12);
  const [minKiB, maxKiB] = (process.env['BENCH_REAL_RATES'] ?? '256-8192').split('-').map(Number) as [number, number];
  const wanted = (process.env['BENCH_REAL_LEGS'] ?? 'download,pipeline,libtorrent,aria2c').split(',');
  const legs = LEGS.filter((l) => wanted.includes(l.name) && (l.name !== 'aria2c' || hasCommand('aria2c')));
  const dir = await mkdtemp(join(tmpdir(), 'tt-bench-real-'));
  try {
    const data = join(dir, 'data.bin');
    const sha1 = await makeData(data, sizeMiB);
    const trackerPort = await freeTcpPort();
    const torrent = join(dir, 'x.torrent');
    const c = spawnSync(CLI, ['create', data, '-o', torrent, '--announce', `http://127.0.0.1:${trackerPort}/announce`, '--piece-length', '262144', '--quiet'], { encoding: 'utf8' });
    if (c.status !== 0) throw new Error(`create: ${c.stderr}`);
    const specs = spreadSeeders(n, 1, { minRate: minKiB * 1024, maxRate: maxKiB * 1024 });
    const capacity = specs.reduce((a, sp) => a + sp.rate, 0);
    const idealS = (sizeMiB * MiB) / capacity;
    const setup: Setup = { dir, torrent, trackerPort, specs, sha1, size: sizeMiB * MiB, limitS: Math.max(120, Math.ceil(idealS * 8)) };
    const results: Result[] = [];
    for (let r = 0; r < runs; r++) {
      const order = r % 2 === 0 ? legs : [...legs].reverse();
      for (const leg of order) results.push(await runLeg(setup, leg, r));
    }

    const out = [
      `## real swarm (${sizeMiB} MiB, ${n} python-libtorrent seeders ${minKiB}..${maxKiB} KiB/s behind 40..200 ms RTT relays, ${fmt(capacity / MiB, 1)} MiB/s in all (ideal ${fmt(idealS, 1)} s); the fastest leaves at 40 % done, one as fast joins at 50 %; median of ${runs}, each leg on a fresh swarm)`,
      '',
      '| leg | median s | min s | max s | MiB/s | verified | peak RSS MiB | CPU s |',
      '|---|---|---|---|---|---|---|---|',
    ];
    const med = new Map<string, number>();
    for (const leg of legs) {
      const rs = results.filter((x) => x.leg === leg.name);
      const walls = rs.map((x) => x.wallS);
      med.set(leg.name, median(walls));
      const rss = Math.max(...rs.map((x) => x.maxRssMiB ?? NaN));
      out.push(`| ${leg.name} | ${fmt(median(walls))} | ${fmt(Math.min(...walls))} | ${fmt(Math.max(...walls))} | ${fmt(sizeMiB / median(walls), 1)} | ${rs.filter((x) => x.verified).length}/${rs.length} | ${fmt(rss, 1)} | ${fmt(median(rs.map((x) => x.cpuS ?? NaN)))} |`);
    }
    out.push('', 'peak RSS: the largest single process of the leg; CPU: user + sys of all its processes (GNU time). The libtorrent leg includes python startup (~0.2 s).', '');
    const lt = med.get('libtorrent');
    for (const leg of legs.filter((l) => l.ours)) {
      if (lt !== undefined) out.push(`- ${leg.name} / libtorrent wall time: **${fmt(med.get(leg.name)! / lt)}×** (target ≤ 1.0)`);
    }
    out.push('', 'per run (exit code, wall s; MiB uploaded by each seeder as rateKiB/rttMs:MiB):', '');
    for (const x of results) {
      out.push(`- ${x.leg}: exit ${x.code}, ${fmt(x.wallS)} s, ${x.verified ? 'verified' : '**NOT verified**'}; ${x.uploads}`);
      if (x.stderr.length > 0) out.push('  stderr:', ...summarizeStderr(x.stderr));
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const line of await benchRealSwarm()) console.log(line);
}
