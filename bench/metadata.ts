/**
 * Time from start to verified metadata (BEP 9), ours against a python-libtorrent session given
 * the same magnet and the same two peers (our seeders on loopback), in the same run. Both are
 * measured as whole processes (interpreter start included) and, for libtorrent, also from its
 * session start.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CLI, fmt } from './harness.js';

const LT = fileURLToPath(new URL('../../bench/lt-metadata.py', import.meta.url));
const PY = '/usr/bin/python3';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function benchMetadata(rounds = 9): Promise<string[]> {
  if (spawnSync(PY, ['-c', 'import libtorrent']).status !== 0) return ['## metadata', '', 'skipped: python3-libtorrent is not installed'];
  const dir = await mkdtemp(join(tmpdir(), 'tt-bench-meta-'));
  // 3,000 files: about 150 KiB of metadata, ten BEP 9 pieces
  const data = join(dir, 'data');
  await mkdir(join(data, 'set'), { recursive: true });
  for (let i = 0; i < 3000; i++) await writeFile(join(data, 'set', `file-${String(i).padStart(5, '0')}-with-a-longish-name.dat`), Buffer.alloc(100 + (i % 50), i & 0xff));
  const tf = join(dir, 'x.torrent');
  spawnSync(CLI, ['create', join(data, 'set'), '-o', tf, '--piece-length', '16384']);
  const info = JSON.parse(spawnSync(CLI, ['info', tf], { encoding: 'utf8' }).stdout) as { infoHash: string };
  const seeds = await Promise.all([0, 1].map(async () => {
    const c = spawn(CLI, ['seed', tf, data, '--port', '0', '--host', '127.0.0.1', '--no-announce', '--quiet'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const line = await new Promise<string>((res) => createInterface({ input: c.stdout }).once('line', res));
    return { c, port: (JSON.parse(line) as { port: number }).port };
  }));
  const peers = seeds.map((s) => `127.0.0.1:${s.port}`);
  const magnet = `magnet:?xt=urn:btih:${info.infoHash}`;
  const ours: number[] = [];
  const theirs: number[] = [];
  const theirsSession: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(CLI, ['fetch-metadata', magnet, ...peers.flatMap((p) => ['--peer', p])], { input: '', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`fetch-metadata failed: ${r.stderr.toString()}`);
    ours.push(Number(process.hrtime.bigint() - t0) / 1e9);
    const l = spawnSync(PY, [LT, magnet, ...peers], { encoding: 'utf8' });
    if (l.status !== 0) throw new Error(`lt-metadata.py failed: ${l.stderr}`);
    const [whole, session] = l.stdout.trim().split(' ').map(Number) as [number, number];
    theirs.push(whole);
    theirsSession.push(session);
  }
  for (const s of seeds) s.c.kill('SIGINT');
  const o = median(ours);
  const t = median(theirs);
  return [
    `## metadata (BEP 9 from 2 of our seeders on loopback, median of ${rounds})`,
    '',
    '| client | start to verified metadata | ratio (ours / theirs, target ≤ 1.0) |',
    '|---|---|---|',
    `| torrent-tools fetch-metadata (whole process) | ${fmt(o * 1000, 1)} ms | ${fmt(o / t)} |`,
    `| python-libtorrent (whole process) | ${fmt(t * 1000, 1)} ms | 1.00 |`,
    `| python-libtorrent (from add_torrent) | ${fmt(median(theirsSession) * 1000, 1)} ms | — |`,
  ];
}
