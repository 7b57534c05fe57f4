/**
 * Upload: our `seed` serving a torrent to one python-libtorrent leecher on loopback, against a
 * python-libtorrent seeder serving the same leecher, same data, same run. Wall time of the
 * leecher from start to complete, and the seed's peak RSS (VmHWM).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CLI, fmt } from './harness.js';

const FIX = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const PY = '/usr/bin/python3';

async function peakRssMiB(pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /VmHWM:\s+(\d+) kB/.exec(s);
  return m ? Number(m[1]) / 1024 : NaN;
}

function leech(torrent: string, out: string, port: number): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(PY, [join(FIX, 'lt-leech.py'), torrent, out, `127.0.0.1:${port}`, '300'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`lt-leech.py: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export async function benchSeed(sizeMiB = Number(process.env['BENCH_SEED_MIB'] ?? 1024), runs = Number(process.env['BENCH_SEED_RUNS'] ?? 4)): Promise<string[]> {
  if (spawnSync(PY, ['-c', 'import libtorrent']).status !== 0) return ['## seed', '', 'skipped: python3-libtorrent is not installed'];
  const dir = await mkdtemp(join(tmpdir(), 'tt-bench-seed-'));
  try {
    const data = join(dir, 'data.bin');
    const chunk = randomBytes(1 << 20);
    const parts: Buffer[] = [];
    for (let i = 0; i < sizeMiB; i++) parts.push(chunk);
    await writeFile(data, Buffer.concat(parts));
    parts.length = 0;
    const tf = join(dir, 'x.torrent');
    spawnSync(CLI, ['create', data, '-o', tf, '--piece-length', String(1 << 20), '--quiet']);
    const ours: number[] = [];
    const theirs: number[] = [];
    let rss = 0;
    const oursLeg = async (r: number): Promise<void> => {
      const s = spawn(CLI, ['seed', tf, dir, '--port', '0', '--host', '127.0.0.1', '--no-announce', '--quiet', '--skip-verify'], { stdio: ['ignore', 'pipe', 'ignore'] });
      const line = await new Promise<string>((res) => createInterface({ input: s.stdout }).once('line', res));
      ours.push(leech(tf, join(dir, `ours-${r}`), (JSON.parse(line) as { port: number }).port));
      rss = Math.max(rss, await peakRssMiB(s.pid!));
      s.kill('SIGINT');
      await rm(join(dir, `ours-${r}`), { recursive: true, force: true });
    };
    const theirLeg = async (r: number): Promise<void> => {
      const lt = spawn(PY, [join(FIX, 'lt-seed.py'), tf, dir, '1'], { stdio: ['pipe', 'pipe', 'ignore'] });
      const port = Number(await new Promise<string>((res) => createInterface({ input: lt.stdout }).once('line', res)));
      theirs.push(leech(tf, join(dir, `lt-${r}`), port));
      lt.kill('SIGKILL');
      await rm(join(dir, `lt-${r}`), { recursive: true, force: true });
    };
    for (let r = 0; r < runs; r++) {
      // the same conditions for both: no dirty pages from the previous leg being written back,
      // and each goes first in alternate runs
      for (const leg of r % 2 === 0 ? [oursLeg, theirLeg] : [theirLeg, oursLeg]) {
        spawnSync('sync');
        await leg(r);
      }
    }
    const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const o = med(ours);
    const t = med(theirs);
    return [
      `## seed (${sizeMiB} MiB to one python-libtorrent leecher on loopback, median of ${runs})`,
      '',
      `our seed: ${fmt(o)} s (${fmt(sizeMiB / o, 0)} MiB/s), peak RSS ${fmt(rss, 1)} MiB; python-libtorrent seeder: ${fmt(t)} s (${fmt(sizeMiB / t, 0)} MiB/s): **${fmt(t / o)}× its upload throughput** (target ≥ 1.0, RSS < 150 MiB)`,
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
