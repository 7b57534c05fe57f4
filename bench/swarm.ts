/**
 * Downloads on loopback from 4 UNTHROTTLED python-libtorrent seeders (one lt-swarm.py process,
 * data hash-checked up front), reached directly: the ceiling of each client, not a realistic
 * swarm (that is real-swarm.ts). Legs: our `fetch-pieces | assemble`, our `download`, a
 * python-libtorrent leecher given the same peers, and aria2c (it learns peers only from a
 * tracker: the seeders are announced to one in this process). One swarm serves every leg;
 * the order rotates every run; each leg writes a fresh folder, checked by SHA-1.
 * Run alone: `node dist/bench/swarm.js` (env BENCH_SWARM_MIB, BENCH_SWARM_RUNS, BENCH_SWARM_LEGS).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { hasCommand, hasLibtorrent, SYSTEM_PYTHON } from '../test/helpers/interop.js';
import { LT_SWARM_PY, LtSwarm, type LtSeeder } from '../test/helpers/lt-swarm.js';
import { freeTcpPort } from '../test/helpers/ports.js';
import { announceFor, startHttpTracker, type HttpTracker } from '../test/helpers/real-swarm.js';
import { CLI, aria2cArgv, badRuns, fmt, legTable, makeData, measureCommand, run, sha1File, type LegResult } from './harness.js';

const SEEDERS = 4;
/** one leg may not take longer than this (the old lab's limit too) */
const LIMIT_S = 600;

interface LegInput {
  torrent: string;
  out: string;
  err: string;
  /** `--peer host:port` for every seeder */
  peerArgs: string[];
  /** a free port, for a client that must be told one */
  port: number;
}

interface Leg {
  name: string;
  ours: boolean;
  /** argv for `timeout`, after the limit; the command writes its stderr to `err` */
  argv(t: LegInput): string[];
}

// Each is a bash script so that stderr goes to a file and GNU time measures the whole leg
// (for the pipeline: CPU of both processes, the peak RSS of the larger one).
const LEGS: Leg[] = [
  {
    name: 'pipeline',
    ours: true,
    argv: (t) => ['bash', '-c', 'set -o pipefail; t=$1 o=$2; exec 2>"$3"; shift 3; "$0" fetch-pieces "$t" "$@" --no-dht --quiet < /dev/null | "$0" assemble "$t" -o "$o" --quiet > /dev/null', CLI, t.torrent, t.out, t.err, ...t.peerArgs],
  },
  {
    name: 'download',
    ours: true,
    argv: (t) => ['bash', '-c', 't=$1 o=$2; exec 2>"$3"; shift 3; exec "$0" download "$t" -o "$o" "$@" --no-announce --no-dht --quiet --port 0', CLI, t.torrent, t.out, t.err, ...t.peerArgs],
  },
  {
    name: 'libtorrent',
    ours: false,
    argv: (t) => ['bash', '-c', 'py=$1 t=$2 o=$3; exec 2>"$4" > /dev/null; shift 4; exec "$0" "$py" --leech "$t" "$o" 600 "$@"', SYSTEM_PYTHON, LT_SWARM_PY, t.torrent, t.out, t.err, ...t.peerArgs],
  },
  { name: 'aria2c', ours: false, argv: (t) => aria2cArgv(t.torrent, t.out, t.err, t.port) },
];

async function runLeg(leg: Leg, input: Omit<LegInput, 'out' | 'err' | 'port'>, dir: string, sha1: string, r: number): Promise<LegResult> {
  const out = join(dir, `out-${leg.name}-${r}`);
  const err = join(dir, `err-${leg.name}-${r}.txt`);
  // the previous leg's dirty pages must not be written back during this one (async: the
  // tracker lives in this process)
  await run('sync', []);
  try {
    const m = await measureCommand('timeout', ['-k', '5', String(LIMIT_S), ...leg.argv({ ...input, out, err, port: await freeTcpPort() })]);
    const verified = m.code === 0 && (await sha1File(join(out, 'data.bin')).catch(() => '')) === sha1;
    const stderr = (await readFile(err, 'utf8').catch(() => '')).split(/[\r\n]/).map((l) => l.trim()).filter(Boolean);
    return { ...m, leg: leg.name, verified, stderr };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

export async function benchSwarm(sizeMiB = Number(process.env['BENCH_SWARM_MIB'] ?? 1024), runs = Number(process.env['BENCH_SWARM_RUNS'] ?? 4)): Promise<string[]> {
  if (!hasLibtorrent()) return ['## swarm', '', 'skipped: python3-libtorrent is not installed'];
  const wanted = (process.env['BENCH_SWARM_LEGS'] ?? 'pipeline,download,libtorrent,aria2c').split(',');
  const legs = LEGS.filter((l) => wanted.includes(l.name) && (l.name !== 'aria2c' || hasCommand('aria2c')));
  const dir = await mkdtemp(join(tmpdir(), 'tt-bench-swarm-'));
  let lt: LtSwarm | null = null;
  let tracker: HttpTracker | null = null;
  try {
    const sha1 = await makeData(join(dir, 'data.bin'), sizeMiB);
    const trackerPort = await freeTcpPort();
    const torrent = join(dir, 'x.torrent');
    // nothing lives in this process yet: spawnSync is harmless here
    const c = spawnSync(CLI, ['create', join(dir, 'data.bin'), '-o', torrent, '--announce', `http://127.0.0.1:${trackerPort}/announce`, '--piece-length', String(1 << 20), '--quiet'], { encoding: 'utf8' });
    if (c.status !== 0) throw new Error(`create: ${c.stderr}`);
    tracker = await startHttpTracker(trackerPort); // for aria2c, which learns peers only from one
    lt = await LtSwarm.start();
    const t0 = Date.now();
    const seeders: LtSeeder[] = [];
    // one at a time: four concurrent hash checks of the same file only fight for the 2 cores
    for (let i = 0; i < SEEDERS; i++) seeders.push(await lt.seed(torrent, dir, 0, undefined, 600_000));
    const checkS = (Date.now() - t0) / 1000;
    for (const s of seeders) await announceFor(tracker.url, s.infoHash, s.peerId, s.port, 'started');
    const peerArgs = seeders.flatMap((s) => ['--peer', `127.0.0.1:${s.port}`]);

    const results: LegResult[] = [];
    for (let r = 0; r < runs; r++) {
      for (let k = 0; k < legs.length; k++) {
        const leg = legs[(k + r) % legs.length]!;
        results.push(await runLeg(leg, { torrent, peerArgs }, dir, sha1, r));
        await sleep(1000); // the seeders see the last connections close before the next leg
      }
    }

    const table = legTable(legs.map((l) => l.name), results, sizeMiB);
    const out = [
      `## swarm (${sizeMiB} MiB, 1 MiB pieces, ${SEEDERS} unthrottled python-libtorrent seeders on loopback in one process, hash-checked in ${fmt(checkS, 1)} s, reached directly; ${runs} runs, order rotated; verified runs only)`,
      '',
      ...table.rows,
    ];
    out.push('', 'wall: the whole process (the libtorrent leg includes python startup, ~0.2 s; aria2c has ~3 s of fixed start/stop cost). Peak RSS: the largest single process of the leg, max over runs (libtorrent 2 maps the file it writes: its figure counts those page-cache pages); CPU: user + sys of all its processes (GNU time), median.', '');
    const ltMed = table.med.get('libtorrent');
    for (const leg of legs.filter((l) => l.ours)) {
      if (ltMed !== undefined) out.push(`- ${leg.name} / libtorrent wall time: **${fmt(table.med.get(leg.name)! / ltMed)}×** (lower is better); peak RSS ${fmt(table.rss.get(leg.name)!, 1)} MiB (target ≤ 100)`);
    }
    out.push(...badRuns(results));
    return out;
  } finally {
    await lt?.close();
    await tracker?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const line of await benchSwarm()) console.log(line);
}
