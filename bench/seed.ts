/**
 * Upload: our `seed` serving python-libtorrent leechers on loopback, against a python-libtorrent
 * seeder (test/fixtures/lt-seed.py: unthrottled, data hash-checked) serving the same leechers,
 * same data, same run. Two legs per seeder: ONE leecher, and EIGHT started together (the
 * requirement: ≤ 1.0× libtorrent's wall time). The leechers live in one lt-swarm.py process,
 * each told only the seeder's address: they find each other only through the seeder's PEX,
 * and how much they gave each other is reported. Wall time: from the first leech command until
 * the last leecher is seeding (libtorrent has checked every piece). A fresh seeder and fresh
 * leechers per leg, seeders alternating which goes first.
 * Run alone: `node dist/bench/seed.js` (env BENCH_SEED_MIB, default 256; BENCH_SEED_RUNS, default 3;
 * BENCH_SEED_ARGS, more options for our seed, e.g. "--slots 8").
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasLibtorrent, SYSTEM_PYTHON } from '../test/helpers/interop.js';
import { LtSwarm } from '../test/helpers/lt-swarm.js';
import { CLI, cpuSeconds, firstLine, fmt, makeData, median, procStatus, run, stopper } from './harness.js';

const FIX = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const MiB = 1024 * 1024;
const LEECHERS = [1, 8] as const;
const LIMIT_MS = 600_000;

type SeederKind = 'ours' | 'libtorrent';

interface Seeder {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

interface Result {
  seeder: SeederKind;
  leechers: number;
  wallS: number;
  /** the first leecher done, s from the start */
  firstS: number;
  /** user + sys of the seeder process while the leechers ran */
  cpuS: number;
  /** the seeder's VmHWM at the end of the leg (a fresh process per leg) */
  rssMiB: number;
  /** how much of its RSS at the end was file-backed (mapped pages of the data) */
  fileMiB: number;
  /** payload the leechers uploaded (to each other: the seeder takes nothing) */
  exchangedMiB: number;
}

async function startSeeder(kind: SeederKind, torrent: string, dir: string): Promise<Seeder> {
  if (kind === 'ours') {
    const extra = (process.env['BENCH_SEED_ARGS'] ?? '').split(' ').filter(Boolean); // e.g. "--slots 8", to try a setting
    const s = spawn(CLI, ['seed', torrent, dir, '--port', '0', '--host', '127.0.0.1', '--no-announce', '--quiet', '--skip-verify', ...extra], { stdio: ['ignore', 'pipe', 'ignore'] });
    const line = await firstLine(s, 'seed');
    s.stdout!.resume(); // its stats records must not fill the pipe
    return { port: (JSON.parse(line) as { port: number }).port, pid: s.pid!, stop: stopper(s, 'SIGINT') };
  }
  const s = spawn(SYSTEM_PYTHON, [join(FIX, 'lt-seed.py'), torrent, dir, '1'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const port = Number(await firstLine(s, 'lt-seed.py'));
  return { port, pid: s.pid!, stop: stopper(s, 'SIGTERM') };
}

async function runLeg(kind: SeederKind, n: number, torrent: string, dir: string, r: number): Promise<Result> {
  await run('sync', []); // the previous leg's dirty pages must not be written back during this one
  const seeder = await startSeeder(kind, torrent, dir);
  const lt = await LtSwarm.start();
  const outs = Array.from({ length: n }, (_, i) => join(dir, `out-${kind}-${n}-${r}-${i}`));
  try {
    const cpu0 = await cpuSeconds(seeder.pid);
    const t0 = process.hrtime.bigint();
    const names = await Promise.all(outs.map(async (out) => (await lt.leech({ torrent, out, trackers: false, peers: [`127.0.0.1:${seeder.port}`] })).name));
    const done: number[] = [];
    await Promise.all(names.map((nm) => lt.waitDone(nm, LIMIT_MS).then(() => done.push(Number(process.hrtime.bigint() - t0) / 1e9))));
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpuS = (await cpuSeconds(seeder.pid)) - cpu0;
    const st = await procStatus(seeder.pid);
    let exchanged = 0;
    for (const nm of names) exchanged += (await lt.stats(nm)).total_payload_upload;
    return { seeder: kind, leechers: n, wallS, firstS: Math.min(...done), cpuS, rssMiB: st.hwmMiB, fileMiB: st.rssFileMiB, exchangedMiB: exchanged / MiB };
  } finally {
    await lt.close();
    await seeder.stop();
    await Promise.all(outs.map((o) => rm(o, { recursive: true, force: true })));
  }
}

export async function benchSeed(sizeMiB = Number(process.env['BENCH_SEED_MIB'] ?? 256), runs = Number(process.env['BENCH_SEED_RUNS'] ?? 3)): Promise<string[]> {
  if (!hasLibtorrent()) return ['## seed', '', 'skipped: python3-libtorrent is not installed'];
  const dir = await mkdtemp(join(tmpdir(), 'tt-bench-seed-'));
  try {
    await makeData(join(dir, 'data.bin'), sizeMiB);
    const torrent = join(dir, 'x.torrent');
    const c = spawnSync(CLI, ['create', join(dir, 'data.bin'), '-o', torrent, '--piece-length', String(1 << 20), '--quiet'], { encoding: 'utf8' });
    if (c.status !== 0) throw new Error(`create: ${c.stderr}`);
    const results: Result[] = [];
    for (let r = 0; r < runs; r++) {
      // each seeder goes first in alternate runs
      const kinds: SeederKind[] = r % 2 === 0 ? ['ours', 'libtorrent'] : ['libtorrent', 'ours'];
      for (const n of LEECHERS) for (const kind of kinds) results.push(await runLeg(kind, n, torrent, dir, r));
    }

    const extra = process.env['BENCH_SEED_ARGS'] ? ` (our seed with ${process.env['BENCH_SEED_ARGS']})` : '';
    const out = [
      `## seed${extra} (${sizeMiB} MiB, 1 MiB pieces, to python-libtorrent leechers on loopback, each told only the seeder's address; a fresh seeder per leg; median of ${runs})`,
      '',
      '| leechers | seeder | median s (all seeding) | min s | max s | first done s | MiB/s out of the seeder | seeder CPU s | seeder peak RSS MiB | leechers gave each other MiB |',
      '|---|---|---|---|---|---|---|---|---|---|',
    ];
    const ratio: string[] = [];
    for (const n of LEECHERS) {
      const wall = new Map<SeederKind, number>();
      for (const kind of ['ours', 'libtorrent'] as const) {
        const rs = results.filter((x) => x.seeder === kind && x.leechers === n);
        const walls = rs.map((x) => x.wallS);
        const w = median(walls);
        const ex = median(rs.map((x) => x.exchangedMiB));
        wall.set(kind, w);
        out.push(`| ${n} | ${kind} | ${fmt(w)} | ${fmt(Math.min(...walls))} | ${fmt(Math.max(...walls))} | ${fmt(median(rs.map((x) => x.firstS)))} | ${fmt((n * sizeMiB - ex) / w, 0)} | ${fmt(median(rs.map((x) => x.cpuS)))} | ${fmt(Math.max(...rs.map((x) => x.rssMiB)), 1)} | ${fmt(ex, 0)} |`);
      }
      const runsOf = (kind: SeederKind): string => results.filter((x) => x.seeder === kind && x.leechers === n).map((x) => fmt(x.wallS)).join(', ');
      ratio.push(`- ${n} leecher${n > 1 ? 's' : ''}: our seed / libtorrent wall time **${fmt(wall.get('ours')! / wall.get('libtorrent')!)}×**${n === 8 ? ' (target ≤ 1.0)' : ''}; runs: ours ${runsOf('ours')}; libtorrent ${runsOf('libtorrent')}`);
    }
    out.push(
      '',
      ...ratio,
      '',
      "MiB/s out of the seeder: what it uploaded (leechers' total minus what they gave each other) over the wall time. " +
        `Peak RSS: VmHWM, max over runs (of which file-backed at the end of the 8-leecher legs, median: ours ${fmt(median(results.filter((x) => x.seeder === 'ours' && x.leechers === 8).map((x) => x.fileMiB)), 1)} MiB, libtorrent ${fmt(median(results.filter((x) => x.seeder === 'libtorrent' && x.leechers === 8).map((x) => x.fileMiB)), 1)} MiB: node's and python's own binaries and libraries, plus, for libtorrent 2, the data file it maps). ` +
        'Seeder defaults: ours 4 upload slots + 1 optimistic, libtorrent 8 unchoke slots.',
    );
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const line of await benchSeed()) console.log(line);
}
