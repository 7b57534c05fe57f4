/**
 * A web-seed-only download from one local HTTP server (node:http with Range, serving the file
 * from disk, in this process): our `download --web-seed URL` against `aria2c -x4 -s4` fetching
 * the same file from the same server (4 connections, as our web seed keeps 4 runs in flight),
 * and the floor: bare Node doing the same fetch and write with nothing of ours (webseed-floor.ts).
 * Each leg writes a fresh folder, checked by SHA-1; the order rotates every run.
 * Run alone: `node dist/bench/webseed.js` (env BENCH_WEBSEED_MIB, BENCH_WEBSEED_RUNS).
 */
import { spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasCommand } from '../test/helpers/interop.js';
import { CLI, fmt, makeData, measureCommand, median, run, sha1File, summarizeStderr, type LegResult } from './harness.js';

const LIMIT_S = 600;
const FLOOR = fileURLToPath(new URL('./webseed-floor.js', import.meta.url));

/** Serves one file with Range support (206 for `bytes=a-b`), streamed from disk. */
async function fileServer(path: string): Promise<{ url: string; server: Server; requests: () => number }> {
  const size = (await stat(path)).size;
  let n = 0;
  const server = createServer((req, res) => {
    n++;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = size - 1;
    if (m) {
      start = Number(m[1]);
      end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
      res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}`, 'accept-ranges': 'bytes' });
    } else {
      res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes' });
    }
    if (req.method === 'HEAD') return void res.end();
    const s = createReadStream(path, { start, end, highWaterMark: 256 * 1024 });
    s.on('error', () => res.destroy());
    res.on('close', () => s.destroy());
    s.pipe(res);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/data.bin`, server, requests: () => n };
}

export async function benchWebseed(sizeMiB = Number(process.env['BENCH_WEBSEED_MIB'] ?? 256), runs = Number(process.env['BENCH_WEBSEED_RUNS'] ?? 3)): Promise<string[]> {
  if (!hasCommand('aria2c')) return ['## webseed', '', 'skipped: aria2c is not installed'];
  const dir = await mkdtemp(join(tmpdir(), 'tt-bench-webseed-'));
  let srv: Awaited<ReturnType<typeof fileServer>> | null = null;
  try {
    const data = join(dir, 'data.bin');
    const sha1 = await makeData(data, sizeMiB);
    const torrent = join(dir, 'x.torrent');
    const c = spawnSync(CLI, ['create', data, '-o', torrent, '--quiet'], { encoding: 'utf8' });
    if (c.status !== 0) throw new Error(`create: ${c.stderr}`);
    const pieceLength = (JSON.parse(spawnSync(CLI, ['info', torrent], { encoding: 'utf8' }).stdout) as { pieceLength: number }).pieceLength;
    srv = await fileServer(data);
    const url = srv.url;
    const legs: Array<{ name: string; argv: (out: string, err: string) => string[] }> = [
      { name: 'ours', argv: (out, err) => ['bash', '-c', 'exec 2>"$3"; exec "$0" download "$1" -o "$2" --web-seed "$4" --no-announce --no-dht --quiet --port 0', CLI, torrent, out, err, url] },
      // the floor: bare Node, same server, same 4 connections, no hashing (webseed-floor.ts)
      { name: 'node floor', argv: (out, err) => ['bash', '-c', 'mkdir -p "$1" && exec node "$0" "$3" "$4" "$1/data.bin" 2>"$2"', FLOOR, out, err, url, String(sizeMiB * 1024 * 1024)] },
      { name: 'aria2c', argv: (out, err) => ['bash', '-c', 'exec aria2c --no-conf -x4 -s4 --dir="$0" --file-allocation=none --summary-interval=0 --console-log-level=warn --download-result=hide "$2" 2>"$1"', out, err, url] },
    ];
    const results: LegResult[] = [];
    const requests = new Map<string, number[]>();
    for (let r = 0; r < runs; r++) {
      for (let k = 0; k < legs.length; k++) {
        const leg = legs[(k + r) % legs.length]!;
        const out = join(dir, `out-${leg.name}-${r}`);
        const err = join(dir, `err-${leg.name}-${r}.txt`);
        await run('sync', []);
        const before = srv.requests();
        const m = await measureCommand('timeout', ['-k', '5', String(LIMIT_S), ...leg.argv(out, err)]);
        requests.set(leg.name, [...(requests.get(leg.name) ?? []), srv.requests() - before]);
        const verified = m.code === 0 && (await sha1File(join(out, 'data.bin')).catch(() => '')) === sha1;
        const stderr = (await readFile(err, 'utf8').catch(() => '')).split(/[\r\n]/).map((l) => l.trim()).filter(Boolean);
        results.push({ ...m, leg: leg.name, verified, stderr });
        await rm(out, { recursive: true, force: true });
      }
    }
    const out = [
      `## webseed (${sizeMiB} MiB single file, ${pieceLength / 1024} KiB pieces, one node:http server with Range on loopback serving it from disk; ${runs} runs, order rotated; verified runs only)`,
      '',
      '| leg | verified | median s | min s | max s | MiB/s | peak RSS MiB | CPU s | HTTP requests |',
      '|---|---|---|---|---|---|---|---|---|',
    ];
    const med = new Map<string, number>();
    for (const leg of legs) {
      const ok = results.filter((x) => x.leg === leg.name && x.verified);
      const walls = ok.map((x) => x.wallS);
      med.set(leg.name, median(walls));
      if (ok.length === 0) {
        out.push(`| ${leg.name} | 0/${runs} | failed | | | | | | |`);
        continue;
      }
      out.push(`| ${leg.name} | ${ok.length}/${runs} | ${fmt(median(walls))} | ${fmt(Math.min(...walls))} | ${fmt(Math.max(...walls))} | ${fmt(sizeMiB / median(walls), 0)} | ${fmt(Math.max(...ok.map((x) => x.maxRssMiB ?? NaN)), 1)} | ${fmt(median(ok.map((x) => x.cpuS ?? NaN)))} | ${median(requests.get(leg.name) ?? [])} |`);
    }
    const ourRss = Math.max(...results.filter((x) => x.leg === 'ours' && x.verified).map((x) => x.maxRssMiB ?? NaN));
    out.push('', `- ours / aria2c wall time: **${fmt(med.get('ours')! / med.get('aria2c')!)}×** (target ≤ 1.0); our peak RSS ${fmt(ourRss, 1)} MiB (target ≤ 100)`);
    out.push(`- ours / node floor: ${fmt(med.get('ours')! / med.get('node floor')!)}×; node floor / aria2c: ${fmt(med.get('node floor')! / med.get('aria2c')!)}× (above 1: Node alone, fetching and writing, is slower than aria2c)`);
    out.push('', 'wall: the whole process. Ours copies each byte twice more than aria2c (HTTP body → piece message, handed over in-process → the frame decoder scratch → piece buffer), SHA-1-checks it and writes it with O_DIRECT; aria2c writes into the page cache and checks nothing. Peak RSS: GNU time, max over runs (`download` alone is 102–105 MiB from libtorrent seeders).');
    const bad = results.filter((x) => !x.verified || x.stderr.length > 0);
    for (const x of bad) {
      out.push(`- ${x.leg}: exit ${x.code}, ${fmt(x.wallS)} s, ${x.verified ? 'verified' : '**NOT verified**'}`);
      if (x.stderr.length > 0) out.push('  stderr:', ...summarizeStderr(x.stderr));
    }
    return out;
  } finally {
    srv?.server.closeAllConnections();
    srv?.server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const line of await benchWebseed()) console.log(line);
}
