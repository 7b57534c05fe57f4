/**
 * Metainfo: `create` on 1 GiB against `mktorrent -t 2` (same piece length), and parsing a
 * 5,000-file torrent in-process against npm parse-torrent.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parseTorrentRef from 'parse-torrent';
import { encode, type BValue } from '../src/bencode/index.js';
import { parseTorrent } from '../src/metainfo/torrent.js';
import { CLI, fmt, ms, timeIt } from './harness.js';


function manyFiles(): Buffer {
  const files: BValue[] = [];
  for (let i = 0; i < 5000; i++) {
    files.push(new Map<string, BValue>([['length', 1000 + i], ['path', [Buffer.from(`d${i % 50}`), Buffer.from(`f-${i}.dat`)]]]));
  }
  const total = 5000 * 1000 + (4999 * 5000) / 2;
  const pl = 65536;
  return encode(new Map<string, BValue>([
    ['announce', Buffer.from('http://tracker.example.org/announce')],
    ['info', new Map<string, BValue>([['files', files], ['name', Buffer.from('many')], ['piece length', pl], ['pieces', randomBytes(20 * Math.ceil(total / pl))]])],
  ]));
}

function wall(cmd: string, args: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr?.toString()}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export async function benchMetainfo(): Promise<string[]> {
  const out = ['## metainfo', ''];
  const buf = manyFiles();
  // the first call of each (a one-shot `info` pays that), then both warmed up alike: timing
  // parse-torrent warm and ours from cold would compare V8's tiers, not the parsers
  const first = async (f: () => unknown): Promise<number> => {
    const t0 = process.hrtime.bigint();
    await f();
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  const refFirst = await first(() => parseTorrentRef(buf));
  const oursFirst = await first(() => parseTorrent(buf));
  const n = 30;
  for (let i = 0; i < n; i++) {
    await parseTorrentRef(buf);
    parseTorrent(buf);
  }
  const samples: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await parseTorrentRef(buf); // async: a batch of awaited calls
    samples.push(Number(process.hrtime.bigint() - t0) / 1e9 / n);
  }
  const refTime = [...samples].sort((a, b) => a - b)[2]!;
  const ours = timeIt(() => parseTorrent(buf));
  out.push(`info on a 5,000-file torrent (${(buf.length / 1024).toFixed(0)} KiB), in-process, warm: torrent-tools ${ms(ours)}, parse-torrent ${ms(refTime)}: **${fmt(refTime / ours)}×**` +
    `; first call: ${ms(oursFirst)} vs ${ms(refFirst)} (${fmt(refFirst / oursFirst)}×)`);
  const mk = spawnSync('sh', ['-c', 'command -v mktorrent']).status === 0;
  if (!mk) {
    out.push('create vs mktorrent: skipped (mktorrent not installed)');
    return out;
  }
  const dir = await mkdtemp(join(tmpdir(), 'tt-bench-'));
  try {
    const f = join(dir, 'data.bin');
    spawnSync('sh', ['-c', `head -c 1073741824 /dev/urandom > "${f}"`]);
    spawnSync('cat', [f], { stdio: ['ignore', 'ignore', 'ignore'] }); // into the page cache
    const runs = 3;
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < runs; i++) {
      a.push(wall(CLI, ['create', f, '--no-date', '--quiet', '--piece-length', '262144', '-o', join(dir, 'a.torrent')]));
      b.push(wall('mktorrent', ['-t', '2', '-l', '18', '-o', join(dir, `b${i}.torrent`), f]));
    }
    const med = (x: number[]): number => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)]!;
    out.push(`create on 1 GiB (256 KiB pieces, page cache warm, median of ${runs}): torrent-tools ${fmt(med(a))} s, mktorrent -t 2 ${fmt(med(b))} s: **${fmt(med(b) / med(a))}× mktorrent's speed**`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}
