/**
 * Scale and memory (issue #24): many torrents in one process of ours, against the same work
 * done another way in the same run. Two legs:
 *
 * seed: 100 small torrents (256 KiB..2 MiB, every 10th multi-file) served by ONE `seed FOLDER`
 * process to python-libtorrent leechers (sessions in one lt-swarm.py process, each holding all
 * 100 torrents, download-limited, told only the seeder's port), against ONE libtorrent session
 * seeding the same 100 (lt-swarm.py in a process of its own, seed mode) to the same leechers.
 * Both trust their data (ours --skip-verify): what is measured is serving. Of the seeder
 * process: peak RSS (VmHWM; the issue's target is ≤ 150 MiB), CPU while the leechers ran, wall
 * time until every leecher has every torrent; every file is then compared byte for byte.
 *
 * download: 20 torrents (8..16 MiB, every 10th multi-file) seeded by 3 upload-limited
 * libtorrent sessions that each hold all 20 (one lt-swarm.py process); (a) ONE
 * `download -i LIST --max-active 20` process fetching all 20 at once (its default would queue
 * all but 8), (b) 20 `download` processes started together, one per torrent. The same swarm for every leg, order alternating; a leg starts once
 * the seeders' rate limiters have banked their full quota again (libtorrent banks up to 3 s).
 * Both with --no-dht (a loopback swarm has no DHT to join; one node per process would only add
 * unanswered bootstrap queries to (b)). Figures from GNU time per process (peak RSS, user + sys)
 * and the summed RSS of the clients sampled every 200 ms (what they held at the same moment).
 *
 * Run alone: `node dist/bench/many.js`. Env: BENCH_MANY_LEGS (seed,download), BENCH_MANY_RUNS
 * (3), BENCH_MANY_SEED_TORRENTS (100), BENCH_MANY_SEED_KIB (256-2048), BENCH_MANY_LEECHERS (2),
 * BENCH_MANY_LEECH_KIB (each leecher session's download limit, KiB/s; 8192),
 * BENCH_MANY_DL_TORRENTS (20), BENCH_MANY_DL_MIB (8-16), BENCH_MANY_DL_SEEDERS (3),
 * BENCH_MANY_DL_KIB (each seeder session's upload limit, KiB/s; 4096), BENCH_MANY_SEED_ARGS and
 * BENCH_MANY_DL_ARGS (more options for our `seed` / `download`, e.g. "--max-peers 400").
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseTorrent } from '../src/metainfo/torrent.js';
import { hasLibtorrent } from '../test/helpers/interop.js';
import { LtSwarm } from '../test/helpers/lt-swarm.js';
import { int, rng } from '../test/helpers/random.js';
import { makeTorrentBytes, writeFiles, type TestFile } from '../test/helpers/torrent.js';
import { CLI, cpuSeconds, fmt, median, procStatus, RssSampler, run, sha1File, stopper, summarizeStderr } from './harness.js';

const KiB = 1024;
const MiB = 1024 * 1024;
/** libtorrent's limiter banks up to 3 s of quota: every download leg starts with the bank full. */
const SETTLE_MS = 4000;
const RSS_TARGET_MIB = 150;
/** The data's sizes and layout are the same every run (its bytes are random). */
const LAYOUT_SEED = 24;

function envRange(name: string, dflt: string): [number, number] {
  const [lo, hi] = (process.env[name] ?? dflt).split('-').map(Number);
  return [lo!, hi ?? lo!];
}

function extraArgs(name: string): string[] {
  return (process.env[name] ?? '').split(' ').filter(Boolean);
}

function seconds(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** A torrent of the bench's data: where it is and what each of its files must hash to. */
interface Made {
  name: string;
  torrent: string;
  infoHash: string;
  bytes: number;
  /** path under the download's root (NAME, or NAME/…) and SHA-1 of the content */
  files: Array<{ rel: string; sha1: string }>;
}

/**
 * `count` torrents of random content (sizes in [minBytes, maxBytes], every 10th of three files,
 * one of them in a sub-folder, boundaries off the pieces), written as `dir/NAME` beside
 * `dir/NAME.torrent`: the layout `seed FOLDER` serves.
 */
async function makeTorrents(dir: string, prefix: string, count: number, minBytes: number, maxBytes: number, pieceLength: number): Promise<Made[]> {
  const r = rng(LAYOUT_SEED);
  const made: Made[] = [];
  await mkdir(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const size = int(r, minBytes, maxBytes);
    const multi = i % 10 === 3;
    const id = String(i).padStart(3, '0');
    const name = multi ? `${prefix}-${id}` : `${prefix}-${id}.bin`;
    const data = randomBytes(size); // distinct pieces: identical ones would hide mix-ups
    let files: TestFile[];
    if (multi) {
      const a = Math.floor(size * 0.2) + 1;
      const b = Math.floor(size * 0.5);
      files = [
        { path: ['a.bin'], data: data.subarray(0, a) },
        { path: ['sub', 'b.bin'], data: data.subarray(a, a + b) },
        { path: ['c.bin'], data: data.subarray(a + b) },
      ];
    } else files = [{ path: [name], data }];
    const bytes = makeTorrentBytes(name, files, pieceLength, [], !multi);
    await writeFiles(dir, name, files, !multi);
    const torrent = join(dir, `${name}.torrent`);
    await writeFile(torrent, bytes);
    const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex');
    made.push({
      name,
      torrent,
      infoHash: parseTorrent(bytes).infoHash.toString('hex'),
      bytes: size,
      files: multi ? files.map((f) => ({ rel: join(name, ...f.path), sha1: sha1(f.data) })) : [{ rel: name, sha1: sha1(data) }],
    });
  }
  return made;
}

/** How many of `made` are byte-identical under `root(m)`. */
async function countIdentical(made: Made[], root: (m: Made) => string): Promise<number> {
  let ok = 0;
  for (const m of made) {
    let same = true;
    for (const f of m.files) if ((await sha1File(join(root(m), f.rel)).catch(() => '')) !== f.sha1) same = false;
    if (same) ok++;
  }
  return ok;
}

function totalMiB(made: Made[]): number {
  return made.reduce((a, m) => a + m.bytes, 0) / MiB;
}

// ---------------------------------------------------------------- seed: 100 torrents, one process

type SeederKind = 'ours' | 'libtorrent';

interface SeedSetup {
  dir: string;
  made: Made[];
  leechers: number;
  leechRate: number;
  limitMs: number;
}

interface SeedResult {
  seeder: SeederKind;
  wallS: number;
  /** the first leecher session done (every torrent), s from the start */
  firstS: number;
  /** from spawning the seeder until it listened (ours) or seeded every torrent (libtorrent) */
  startS: number;
  /** user + sys of the seeder process while the leechers ran */
  cpuS: number;
  hwmMiB: number;
  /** VmHWM when it was ready: what serving added on top shows against hwmMiB */
  readyHwmMiB: number;
  fileMiB: number;
  exchangedMiB: number;
  /** byte-identical torrents over all leechers, and how many there should be */
  identical: number;
  expected: number;
  error: string | null;
}

interface Seeder {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function startSeeder(kind: SeederKind, s: SeedSetup, stderrTail: { text: string }): Promise<Seeder> {
  if (kind === 'ours') {
    const child: ChildProcess = spawn(CLI, ['seed', s.dir, '--port', '0', '--host', '127.0.0.1', '--no-announce', '--quiet', '--skip-verify', ...extraArgs('BENCH_MANY_SEED_ARGS')], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stderr!.on('data', (c: Buffer) => (stderrTail.text = (stderrTail.text + c.toString()).slice(-2000)));
    const stop = stopper(child, 'SIGINT');
    try {
      const ready = await listening(child);
      if (ready.torrents !== s.made.length) throw new Error(`seed: listening with ${ready.torrents} torrents of ${s.made.length}`);
      return { port: ready.port, pid: child.pid!, stop };
    } catch (e) {
      await stop();
      throw e;
    }
  }
  const lt = await LtSwarm.start();
  try {
    const sd = await lt.seedMany(s.made.map((m) => ({ torrent: m.torrent, data: s.dir })), 0, { trust: true, timeoutMs: 300_000 });
    return { port: sd.port, pid: lt.pid, stop: () => lt.close() };
  } catch (e) {
    await lt.close();
    throw e;
  }
}

/**
 * Our seed's {"event":"listening"} record (it comes once every torrent is ready), within 300 s;
 * the lines after it are drained, so that its stats records never fill the pipe.
 */
function listening(child: ChildProcess): Promise<{ port: number; torrents: number }> {
  return new Promise((res, rej) => {
    const lines = createInterface({ input: child.stdout! });
    const fail = (e: Error): void => {
      clearTimeout(timer);
      lines.removeAllListeners('line');
      child.stdout!.resume();
      rej(e);
    };
    const timer = setTimeout(() => fail(new Error('seed: not listening within 300 s')), 300_000);
    const exited = (c: number | null): void => fail(new Error(`seed exited ${c} before it was listening`));
    child.once('exit', exited);
    lines.on('line', (l) => {
      let rec: { event?: unknown; port?: unknown; torrents?: unknown };
      try {
        rec = JSON.parse(l) as typeof rec;
      } catch {
        return;
      }
      if (rec.event !== 'listening') return;
      clearTimeout(timer);
      child.off('exit', exited);
      lines.removeAllListeners('line'); // the interface goes on reading: the pipe keeps draining
      res({ port: Number(rec.port), torrents: Number(rec.torrents ?? 1) });
    });
  });
}

async function seedLeg(kind: SeederKind, s: SeedSetup, r: number): Promise<SeedResult> {
  await run('sync', []); // the previous leg's dirty pages must not be written back during this one
  const res: SeedResult = { seeder: kind, wallS: NaN, firstS: NaN, startS: NaN, cpuS: NaN, hwmMiB: NaN, readyHwmMiB: NaN, fileMiB: NaN, exchangedMiB: NaN, identical: 0, expected: s.leechers * s.made.length, error: null };
  const stderrTail = { text: '' };
  const outs = Array.from({ length: s.leechers }, (_, i) => join(s.dir, '..', `out-seed-${kind}-${r}-${i}`));
  const tStart = process.hrtime.bigint();
  let seeder: Seeder | null = null;
  let lt: LtSwarm | null = null;
  try {
    seeder = await startSeeder(kind, s, stderrTail);
    res.startS = seconds(tStart);
    res.readyHwmMiB = (await procStatus(seeder.pid)).hwmMiB;
    lt = await LtSwarm.start();
    const cpu0 = await cpuSeconds(seeder.pid);
    const t0 = process.hrtime.bigint();
    const peers = [`127.0.0.1:${seeder.port}`];
    const sw = lt;
    const names = await Promise.all(outs.map(async (out) => (await sw.leechMany({ torrents: s.made.map((m) => ({ torrent: m.torrent, out })), trackers: false, peers, downloadRate: s.leechRate })).name));
    const done: number[] = [];
    await Promise.all(names.map((nm) => sw.waitDone(nm, s.limitMs).then(() => done.push(seconds(t0)))));
    res.wallS = seconds(t0);
    res.firstS = Math.min(...done);
    res.cpuS = (await cpuSeconds(seeder.pid)) - cpu0;
    const st = await procStatus(seeder.pid);
    res.hwmMiB = st.hwmMiB;
    res.fileMiB = st.rssFileMiB;
    let exchanged = 0;
    for (const nm of names) exchanged += (await sw.stats(nm)).total_payload_upload;
    res.exchangedMiB = exchanged / MiB;
    await lt.close(); // libtorrent has written every piece once the session is gone
    lt = null;
    for (const out of outs) res.identical += await countIdentical(s.made, () => out);
  } catch (e) {
    const tail = stderrTail.text.trim().split('\n').slice(-3).join(' / ');
    res.error = `${e instanceof Error ? e.message : String(e)}${tail ? ` (stderr: ${tail})` : ''}`;
  } finally {
    await lt?.close();
    await seeder?.stop();
    await Promise.all(outs.map((o) => rm(o, { recursive: true, force: true })));
  }
  return res;
}

async function benchSeedMany(base: string, runs: number): Promise<string[]> {
  const count = Number(process.env['BENCH_MANY_SEED_TORRENTS'] ?? 100);
  const [loKiB, hiKiB] = envRange('BENCH_MANY_SEED_KIB', '256-2048');
  const leechers = Number(process.env['BENCH_MANY_LEECHERS'] ?? 2);
  const leechRate = Number(process.env['BENCH_MANY_LEECH_KIB'] ?? 8192) * KiB;
  const dir = join(base, 'seed');
  const made = await makeTorrents(dir, 's', count, loKiB * KiB, hiKiB * KiB, 64 * KiB);
  const size = totalMiB(made);
  const idealS = (size * MiB) / leechRate;
  const s: SeedSetup = { dir, made, leechers, leechRate, limitMs: Math.max(120, Math.ceil(idealS * 8)) * 1000 };
  const results: SeedResult[] = [];
  for (let r = 0; r < runs; r++) {
    // each seeder goes first in alternate runs
    const kinds: SeederKind[] = r % 2 === 0 ? ['ours', 'libtorrent'] : ['libtorrent', 'ours'];
    for (const kind of kinds) results.push(await seedLeg(kind, s, r));
  }

  const extra = process.env['BENCH_MANY_SEED_ARGS'] ? `; our seed with ${process.env['BENCH_MANY_SEED_ARGS']}` : '';
  const out = [
    `## many: seeding ${count} torrents from one process (${fmt(size, 1)} MiB in all, ${loKiB}..${hiKiB} KiB each, 64 KiB pieces, every 10th multi-file; ${leechers} python-libtorrent leecher sessions each fetching all ${count}, ${fmt(leechRate / MiB, 1)} MiB/s each (ideal ${fmt(idealS, 1)} s), told only the seeder's port; a fresh seeder per leg; median of ${runs}${extra})`,
    '',
    '| seeder | ok runs | median s (all done) | min s | max s | first leecher done s | MiB/s out of the seeder | seeder CPU s | peak RSS MiB (ready → end) | ready after s | byte-identical |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const med = new Map<SeederKind, { wall: number; cpu: number; rss: number }>();
  for (const kind of ['ours', 'libtorrent'] as const) {
    const all = results.filter((x) => x.seeder === kind);
    const rs = all.filter((x) => x.error === null);
    if (rs.length === 0) {
      out.push(`| ${kind} | 0/${all.length} | – | – | – | – | – | – | – | – | – |`);
      continue;
    }
    const walls = rs.map((x) => x.wallS);
    const w = median(walls);
    const ex = median(rs.map((x) => x.exchangedMiB));
    const rss = Math.max(...rs.map((x) => x.hwmMiB));
    med.set(kind, { wall: w, cpu: median(rs.map((x) => x.cpuS)), rss });
    out.push(
      `| ${kind} | ${rs.length}/${all.length} | ${fmt(w)} | ${fmt(Math.min(...walls))} | ${fmt(Math.max(...walls))} | ${fmt(median(rs.map((x) => x.firstS)))} | ${fmt((leechers * size - ex) / w, 1)} | ${fmt(median(rs.map((x) => x.cpuS)))} | ${fmt(Math.max(...rs.map((x) => x.readyHwmMiB)), 1)} → ${fmt(rss, 1)} | ${fmt(median(rs.map((x) => x.startS)))} | ${rs.reduce((a, x) => a + x.identical, 0)}/${rs.reduce((a, x) => a + x.expected, 0)} |`,
    );
  }
  const ours = med.get('ours');
  const lt = med.get('libtorrent');
  if (ours || lt) out.push('');
  if (ours) out.push(`- our seed's peak RSS (VmHWM, max over runs) **${fmt(ours.rss, 1)} MiB**: ${ours.rss <= RSS_TARGET_MIB ? 'within' : '**over**'} the ${RSS_TARGET_MIB} MiB target`);
  if (ours && lt) out.push(`- ours / libtorrent: wall time **${fmt(ours.wall / lt.wall)}×**, CPU **${fmt(ours.cpu / lt.cpu)}×**, peak RSS **${fmt(ours.rss / lt.rss)}×**`);
  out.push(
    '',
    "MiB/s out of the seeder: what the leechers got minus what they gave each other (they meet through the seeder's PEX), over the wall time. " +
      `Peak RSS: the seeder process's VmHWM when ready and at the end (file-backed at the end, median: ours ${fmt(median(results.filter((x) => x.seeder === 'ours' && x.error === null).map((x) => x.fileMiB)), 1)} MiB, ` +
      `libtorrent ${fmt(median(results.filter((x) => x.seeder === 'libtorrent' && x.error === null).map((x) => x.fileMiB)), 1)} MiB: binaries and libraries, plus for libtorrent 2 the data it maps); libtorrent's includes the python interpreter. ` +
      'libtorrent with its defaults (8 unchoke slots for the session), seed mode; ours with --skip-verify.',
    '',
    'per run:',
    '',
  );
  for (const x of results) out.push(`- ${x.seeder}: ${x.error === null ? `${fmt(x.wallS)} s, CPU ${fmt(x.cpuS)} s, RSS ${fmt(x.hwmMiB, 1)} MiB, ${x.identical}/${x.expected} byte-identical` : `**failed**: ${x.error}`}`);
  return out;
}

// ------------------------------------------------------ download: 20 torrents, one process or 20

type DlKind = 'one process' | 'separate';

interface DlSetup {
  dir: string;
  made: Made[];
  list: string;
  peers: string[];
  limitS: number;
}

interface Proc {
  code: number | null;
  wallS: number;
  rssMiB: number;
  cpuS: number;
  stderr: string;
}

interface DlResult {
  leg: DlKind;
  wallS: number;
  /** user + sys summed over the leg's processes */
  cpuS: number;
  /** the largest process's peak RSS, and the sum of every process's peak */
  maxRssMiB: number;
  sumRssMiB: number;
  /** the summed RSS of the leg's processes at the same moment, sampled: its peak */
  concurrentMiB: number;
  identical: number;
  codes: string;
  stderr: string[];
}

const GNU_TIME = '/usr/bin/time';

/** One client under GNU time (peak RSS, CPU) and `timeout`; its /usr/bin/time pid for the sampler. */
function measured(argv: string[], limitS: number): { pid: number; done: Promise<Proc> } {
  const t0 = process.hrtime.bigint();
  const child = spawn(GNU_TIME, ['-f', '__TIME__ %M %U %S', 'timeout', '-k', '5', String(limitS), ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const done = new Promise<Proc>((res) => {
    child.on('error', (e) => res({ code: null, wallS: seconds(t0), rssMiB: NaN, cpuS: NaN, stderr: String(e) }));
    child.on('close', (code) => {
      const m = /__TIME__ (\d+) ([\d.]+) ([\d.]+)/.exec(stderr);
      const rest = stderr.replace(/.*__TIME__.*\n?/, '').replace(/^Command exited with non-zero status \d+\n?/m, '');
      res({ code, wallS: seconds(t0), rssMiB: m ? Number(m[1]) / 1024 : NaN, cpuS: m ? Number(m[2]) + Number(m[3]) : NaN, stderr: rest });
    });
  });
  return { pid: child.pid!, done };
}

function clientArgs(peers: string[]): string[] {
  return [...peers.flatMap((p) => ['--peer', p]), '--no-announce', '--no-dht', '--port', '0', '--quiet', ...extraArgs('BENCH_MANY_DL_ARGS')];
}

async function dlLeg(kind: DlKind, s: DlSetup, r: number): Promise<DlResult> {
  const out = join(s.dir, '..', `out-dl-${kind === 'separate' ? 'sep' : 'one'}-${r}`);
  await run('sync', []);
  await sleep(SETTLE_MS);
  const t0 = process.hrtime.bigint();
  const procs =
    kind === 'one process'
      ? [measured([CLI, 'download', '-i', s.list, '-o', out, '--max-active', String(s.made.length), ...clientArgs(s.peers)], s.limitS)]
      : s.made.map((m) => measured([CLI, 'download', m.torrent, '-o', join(out, m.infoHash), ...clientArgs(s.peers)], s.limitS));
  const sampler = new RssSampler(() => procs.map((p) => p.pid));
  const ends = await Promise.all(procs.map((p) => p.done));
  const wallS = seconds(t0);
  const concurrentMiB = sampler.stop();
  try {
    return {
      leg: kind,
      wallS,
      cpuS: ends.reduce((a, p) => a + p.cpuS, 0),
      maxRssMiB: Math.max(...ends.map((p) => p.rssMiB)),
      sumRssMiB: ends.reduce((a, p) => a + p.rssMiB, 0),
      concurrentMiB,
      identical: await countIdentical(s.made, (m) => join(out, m.infoHash)),
      codes: [...new Set(ends.map((p) => String(p.code)))].join(','),
      stderr: ends.flatMap((p) => p.stderr.split('\n').map((l) => l.trim()).filter(Boolean)),
    };
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

async function benchDownloadMany(base: string, runs: number): Promise<string[]> {
  if (!existsSync(GNU_TIME)) return ['## many: downloading', '', `skipped: ${GNU_TIME} (GNU time) is not installed`];
  const count = Number(process.env['BENCH_MANY_DL_TORRENTS'] ?? 20);
  const [loMiB, hiMiB] = envRange('BENCH_MANY_DL_MIB', '8-16');
  const nSeeders = Number(process.env['BENCH_MANY_DL_SEEDERS'] ?? 3);
  const rate = Number(process.env['BENCH_MANY_DL_KIB'] ?? 4096) * KiB;
  const dir = join(base, 'dl');
  const made = await makeTorrents(dir, 'd', count, loMiB * MiB, hiMiB * MiB, 256 * KiB);
  const list = join(base, 'dl-list.txt');
  await writeFile(list, made.map((m) => `${m.torrent}\n`).join(''));
  const size = totalMiB(made);
  const idealS = (size * MiB) / (nSeeders * rate);
  const lt = await LtSwarm.start();
  const results: DlResult[] = [];
  try {
    const seeders = [];
    for (let i = 0; i < nSeeders; i++) seeders.push(await lt.seedMany(made.map((m) => ({ torrent: m.torrent, data: dir })), rate, { trust: true }));
    const s: DlSetup = { dir, made, list, peers: seeders.map((sd) => `127.0.0.1:${sd.port}`), limitS: Math.max(120, Math.ceil(idealS * 8)) };
    for (let r = 0; r < runs; r++) {
      const kinds: DlKind[] = r % 2 === 0 ? ['one process', 'separate'] : ['separate', 'one process'];
      for (const kind of kinds) results.push(await dlLeg(kind, s, r));
    }
  } finally {
    await lt.close();
  }

  const extra = process.env['BENCH_MANY_DL_ARGS'] ? `; our download with ${process.env['BENCH_MANY_DL_ARGS']}` : '';
  const out = [
    `## many: downloading ${count} torrents at once (${fmt(size, 1)} MiB in all, ${loMiB}..${hiMiB} MiB each, 256 KiB pieces; ${nSeeders} python-libtorrent seeder sessions each holding all ${count}, ${fmt(rate / MiB, 1)} MiB/s each, ${fmt((nSeeders * rate) / MiB, 1)} MiB/s in all (ideal ${fmt(idealS, 1)} s); (a) one \`download -i\` process, (b) ${count} \`download\` processes; median of ${runs}, order alternating${extra})`,
    '',
    '| leg | ok runs | median s | min s | max s | MiB/s | CPU s (sum) | peak RSS MiB (largest process) | sum of peak RSS MiB | RSS held at once MiB (sampled peak) | byte-identical |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const med = new Map<DlKind, { wall: number; cpu: number; sumRss: number; concurrent: number }>();
  for (const kind of ['one process', 'separate'] as const) {
    const all = results.filter((x) => x.leg === kind);
    const rs = all.filter((x) => x.identical === count && x.codes === '0');
    const walls = rs.map((x) => x.wallS);
    const m = { wall: median(walls), cpu: median(rs.map((x) => x.cpuS)), sumRss: median(rs.map((x) => x.sumRssMiB)), concurrent: median(rs.map((x) => x.concurrentMiB)) };
    if (rs.length > 0) med.set(kind, m);
    const name = kind === 'one process' ? '(a) one process' : `(b) ${count} processes`;
    out.push(
      rs.length === 0
        ? `| ${name} | 0/${all.length} | – | – | – | – | – | – | – | – | ${all.map((x) => `${x.identical}/${count}`).join(', ')} |`
        : `| ${name} | ${rs.length}/${all.length} | ${fmt(m.wall)} | ${fmt(Math.min(...walls))} | ${fmt(Math.max(...walls))} | ${fmt(size / m.wall, 1)} | ${fmt(m.cpu)} | ${fmt(Math.max(...rs.map((x) => x.maxRssMiB)), 1)} | ${fmt(m.sumRss, 1)} | ${fmt(m.concurrent, 1)} | ${all.reduce((a, x) => a + x.identical, 0)}/${count * all.length} |`,
    );
  }
  const a = med.get('one process');
  const b = med.get('separate');
  if (a && b) out.push('', `- (a) / (b): wall time **${fmt(a.wall / b.wall)}×**, CPU **${fmt(a.cpu / b.cpu)}×**, summed peak RSS **${fmt(a.sumRss / b.sumRss)}×**, RSS held at once **${fmt(a.concurrent / b.concurrent)}×**`);
  out.push(
    '',
    'CPU: user + sys of every process of the leg (GNU time); peak RSS per process from GNU time, medians over the runs that completed byte-identical with exit 0 (the largest process: max over them). ' +
      "RSS held at once: the clients' VmRSS summed every 200 ms. " +
      `Both legs with --no-dht --no-announce, the seeders given by --peer; (a) with --max-active ${count} (all at once, as (b)).`,
    '',
    'per run:',
    '',
  );
  for (const x of results) {
    out.push(`- ${x.leg}: exit ${x.codes}, ${fmt(x.wallS)} s, CPU ${fmt(x.cpuS)} s, RSS max ${fmt(x.maxRssMiB, 1)} / sum ${fmt(x.sumRssMiB, 1)} / at once ${fmt(x.concurrentMiB, 1)} MiB, ${x.identical}/${count} byte-identical`);
    if (x.stderr.length > 0) out.push('  stderr:', ...summarizeStderr(x.stderr));
  }
  return out;
}

export async function benchMany(runs = Number(process.env['BENCH_MANY_RUNS'] ?? 3)): Promise<string[]> {
  if (!hasLibtorrent()) return ['## many', '', 'skipped: python3-libtorrent is not installed'];
  const legs = (process.env['BENCH_MANY_LEGS'] ?? 'seed,download').split(',');
  const base = await mkdtemp(join(tmpdir(), 'tt-bench-many-'));
  try {
    const out: string[] = [];
    if (legs.includes('seed')) out.push(...(await benchSeedMany(base, runs)));
    if (legs.includes('download')) out.push(...(out.length > 0 ? [''] : []), ...(await benchDownloadMany(base, runs)));
    return out;
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const line of await benchMany()) console.log(line);
}
