/**
 * Storage: assemble of a 1 GiB piece stream (re-verifying) against dd writing the same bytes,
 * and verify against sha1sum of the same bytes, each in the same run; peak RSS of ours.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode, type BValue } from '../src/bencode/index.js';
import { frameHeader } from '../src/streams/piece-frames.js';
import { CLI, fmt } from './harness.js';

const GIB = 1 << 30;
const PL = 1 << 20;

function timed(script: string): { wall: number; rss: number | null } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('bash', ['-c', `/usr/bin/time -f "__RSS %M" bash -c '${script.replace(/'/g, "'\\''")}'`], { encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${script}: ${r.stderr}`);
  const m = /__RSS (\d+)/.exec(r.stderr);
  return { wall, rss: m ? Number(m[1]) / 1024 : null };
}

export async function benchStorage(): Promise<string[]> {
  const out = ['## storage', ''];
  const dir = await mkdtemp(join(tmpdir(), 'tt-bench-st-'));
  try {
    // 1 GiB of content, its torrent, and the piece stream carrying it
    const chunk = randomBytes(PL);
    const hashes: Buffer[] = [];
    const stream = createWriteStream(join(dir, 'pieces.bin'));
    const data = createWriteStream(join(dir, 'data.bin'));
    for (let i = 0; i < GIB / PL; i++) {
      chunk.writeUInt32BE(i, 0); // distinct pieces
      hashes.push(createHash('sha1').update(chunk).digest());
      stream.write(frameHeader(i, PL));
      stream.write(Buffer.from(chunk));
      stream.write('e');
      data.write(Buffer.from(chunk));
    }
    await new Promise((r) => stream.end(r));
    await new Promise((r) => data.end(r));
    await writeFile(join(dir, 'x.torrent'), encode(new Map<string, BValue>([['info', new Map<string, BValue>([['length', GIB], ['name', Buffer.from('data.bin')], ['piece length', PL], ['pieces', Buffer.concat(hashes)]])]])));
    spawnSync('cat', [join(dir, 'pieces.bin'), join(dir, 'data.bin')], { stdio: 'ignore' });
    const runs = 5;
    const ours: number[] = [];
    const dd: number[] = [];
    const ddDirect: number[] = [];
    let rss = 0;
    const oursLeg = (): void => {
      spawnSync('rm', ['-rf', join(dir, 'out')]);
      spawnSync('sync');
      const a = timed(`"${CLI}" assemble "${dir}/x.torrent" -o "${dir}/out" --quiet < "${dir}/pieces.bin" > /dev/null`);
      ours.push(a.wall);
      rss = Math.max(rss, a.rss ?? 0);
    };
    const ddLeg = (): void => {
      spawnSync('rm', ['-f', join(dir, 'dd.bin')]);
      spawnSync('sync');
      dd.push(timed(`dd if="${dir}/pieces.bin" of="${dir}/dd.bin" bs=1M status=none`).wall);
      // the same with O_DIRECT, as assemble writes by default: a second reference, not the target's
      spawnSync('rm', ['-f', join(dir, 'dd.bin')]);
      ddDirect.push(timed(`dd if="${dir}/pieces.bin" of="${dir}/dd.bin" bs=1M oflag=direct status=none`).wall);
    };
    for (let i = 0; i < runs; i++) {
      // each leg writes 1 GiB of fresh page cache, which on this VM costs whoever comes after a
      // delete most (memory handed back to the host is slow to touch again): alternate the order
      for (const leg of i % 2 === 0 ? [oursLeg, ddLeg] : [ddLeg, oursLeg]) leg();
    }
    const med = (x: number[]): number => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)]!;
    out.push(`assemble 1 GiB piece stream (1 MiB pieces, re-verified) vs dd bs=1M of the same stream, page cache (median of ${runs}): ` +
      `torrent-tools ${fmt(med(ours))} s, dd ${fmt(med(dd))} s: **${fmt(med(dd) / med(ours))}× dd's throughput**, peak RSS ${fmt(rss, 1)} MiB; ` +
      `dd oflag=direct ${fmt(med(ddDirect))} s (${fmt(med(ddDirect) / med(ours))}×); dd through the cache ranged ${fmt(Math.min(...dd))}–${fmt(Math.max(...dd))} s`);
    const v: number[] = [];
    const s: number[] = [];
    let vr = 0;
    for (let i = 0; i < runs; i++) {
      const x = timed(`"${CLI}" verify "${dir}/x.torrent" "${dir}/out" --quiet > /dev/null`);
      v.push(x.wall);
      vr = Math.max(vr, x.rss ?? 0);
      s.push(timed(`sha1sum "${dir}/out/data.bin" > /dev/null`).wall);
    }
    out.push(`verify 1 GiB (2 worker threads) vs sha1sum of the same file (median of ${runs}): torrent-tools ${fmt(med(v))} s, sha1sum ${fmt(med(s))} s: **${fmt(med(s) / med(v))}×**, peak RSS ${fmt(vr, 1)} MiB`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}
