/** Timing helpers for `npm run bench`: figures are ratios against a reference measured in the same run. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * The built command, to be executed itself as an installed `torrent-tools` is (not as
 * `node cli.js`), so that the node flags on its first line apply to what is measured.
 */
export const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));

/** Median seconds per call of `fn`, over `rounds` rounds of enough calls to last ~`minMs`. */
export function timeIt(fn: () => unknown, rounds = 7, minMs = 200): number {
  let n = 1;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms >= minMs / 4) break;
    n *= 2;
  }
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e9 / n);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

export function fmt(x: number, digits = 2): string {
  return x.toFixed(digits);
}

export function ms(s: number): string {
  return `${(s * 1000).toFixed(3)} ms`;
}

export interface Measured {
  wallS: number;
  maxRssMiB: number | null;
  cpuS: number | null;
  code: number | null;
}

/** One leg of a swarm bench: its figures, whether its output matched, what it said on stderr. */
export interface LegResult extends Measured {
  leg: string;
  verified: boolean;
  stderr: string[];
}

/**
 * Runs a command, feeding stdin from `feed` (with backpressure), discarding stdout, and measures
 * wall time plus peak RSS and CPU with GNU time when it is installed.
 */
export async function measureCommand(cmd: string, args: string[], feed?: (w: NodeJS.WritableStream) => Promise<void>): Promise<Measured> {
  const gnuTime = existsSync('/usr/bin/time');
  const argv = gnuTime ? ['-f', '__TIME__ %M %U %S', cmd, ...args] : args;
  const t0 = process.hrtime.bigint();
  const child = spawn(gnuTime ? '/usr/bin/time' : cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout.resume();
  child.stdin.on('error', () => {});
  const done = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  if (feed) await feed(child.stdin);
  child.stdin.end();
  const code = await done;
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const m = /__TIME__ (\d+) ([\d.]+) ([\d.]+)/.exec(stderr);
  return {
    wallS,
    code,
    maxRssMiB: m ? Number(m[1]) / 1024 : null,
    cpuS: m ? Number(m[2]) + Number(m[3]) : null,
  };
}

/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

const MiB = 1024 * 1024;

/** `mib` MiB of random bytes at `path`, written a MiB at a time; returns their SHA-1 (hex). */
export async function makeData(path: string, mib: number): Promise<string> {
  const f = await open(path, 'w');
  const h = createHash('sha1');
  try {
    for (let i = 0; i < mib; i++) {
      const b = randomBytes(MiB); // distinct pieces: identical ones would hide mix-ups
      h.update(b);
      await f.write(b);
    }
  } finally {
    await f.close();
  }
  return h.digest('hex');
}

export async function sha1File(path: string): Promise<string> {
  const h = createHash('sha1');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

/**
 * Runs a command to its end without blocking the event loop (spawnSync would stall any tracker,
 * relay or peer living in this process); resolves with its exit code and stderr.
 */
export function run(cmd: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
    child.on('error', (e) => resolve({ code: null, stderr: String(e) }));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** Distinct stderr lines with their counts, indented, at most 12: a failing leg's story in brief. */
export function summarizeStderr(lines: string[]): string[] {
  const counts = new Map<string, number>();
  for (const l of lines) {
    const k = l.slice(0, 240);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].slice(0, 12).map(([l, n]) => `    ${n > 1 ? `${n}× ` : ''}${l}`);
}

/**
 * The aria2c leg of the swarm benches, as a bash command for `timeout`: no DHT, LPD or PEX (it
 * learns peers from the torrent's tracker only), no seeding, its stderr into `err`.
 */
export function aria2cArgv(torrent: string, out: string, err: string, port: number): string[] {
  return ['bash', '-c', 'exec aria2c --no-conf --dir="$1" --seed-time=0 --enable-dht=false --enable-dht6=false --bt-enable-lpd=false --enable-peer-exchange=false --listen-port="$3" --file-allocation=none --summary-interval=0 --console-log-level=warn --download-result=hide "$0" 2>"$2"', torrent, out, err, String(port)];
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** A live process's peak RSS (VmHWM), current RSS and file-backed part of it, in MiB (NaN once gone). */
export async function procStatus(pid: number): Promise<{ hwmMiB: number; rssMiB: number; rssFileMiB: number }> {
  const s = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN) / 1024;
  return { hwmMiB: kb('VmHWM'), rssMiB: kb('VmRSS'), rssFileMiB: kb('RssFile') };
}

/** user + sys CPU seconds of a live process so far */
export async function cpuSeconds(pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // fields after the ')' that closes the command name: utime and stime are the 12th and 13th
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** The first line a child prints on stdout (its "ready" line), within 120 s. */
export function firstLine(child: ChildProcess, what: string): Promise<string> {
  return new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`${what}: not ready within 120 s`)), 120_000);
    createInterface({ input: child.stdout! }).once('line', (l) => {
      clearTimeout(t);
      res(l);
    });
    child.once('exit', (c) => {
      clearTimeout(t); // a pending timer would hold the bench's event loop for its 120 s
      rej(new Error(`${what} exited ${c} before it was ready`));
    });
  });
}

/** Stops a child with `signal`, SIGKILL after 5 s: never leaves a process behind. */
export function stopper(child: ChildProcess, signal: NodeJS.Signals): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.kill(signal);
    await gone;
    clearTimeout(killer);
  };
}

async function childrenOf(pid: number): Promise<number[]> {
  const s = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return s.split(' ').filter(Boolean).map(Number);
}

/**
 * Samples the summed VmRSS of the leaf processes under `roots()` (the clients themselves, not the
 * `time`/`timeout` wrappers above them) every `everyMs`: the memory several processes hold at
 * the same moment, which the sum of their separate peaks overstates.
 */
export class RssSampler {
  peakMiB = 0;
  private readonly timer: NodeJS.Timeout;
  private busy = false;

  constructor(private readonly roots: () => number[], everyMs = 200) {
    this.timer = setInterval(() => void this.sample(), everyMs);
  }

  async sample(): Promise<void> {
    if (this.busy) return; // a slow /proc walk on a loaded machine must not pile up
    this.busy = true;
    try {
      let sum = 0;
      const walk = async (pid: number, depth: number): Promise<void> => {
        const kids = depth < 8 ? await childrenOf(pid) : [];
        if (kids.length === 0) sum += (await procStatus(pid)).rssMiB || 0;
        for (const k of kids) await walk(k, depth + 1);
      };
      for (const r of this.roots()) await walk(r, 0);
      this.peakMiB = Math.max(this.peakMiB, sum);
    } finally {
      this.busy = false;
    }
  }

  stop(): number {
    clearInterval(this.timer);
    return this.peakMiB;
  }
}

/**
 * A swarm bench's table, one row per leg over its verified runs (median, min and max wall
 * time, MiB/s, the peak RSS over runs, median CPU per GiB), with each leg's median wall time,
 * peak RSS and CPU s/GiB for the ratios under it (NaN for a leg with no verified run).
 */
export function legTable(names: readonly string[], results: readonly LegResult[], sizeMiB: number): { rows: string[]; med: Map<string, number>; rss: Map<string, number>; cpuPerGiB: Map<string, number> } {
  const GiB = sizeMiB / 1024;
  const rows = ['| leg | verified | median s | min s | max s | MiB/s | peak RSS MiB | CPU s/GiB |', '|---|---|---|---|---|---|---|---|'];
  const med = new Map<string, number>();
  const rss = new Map<string, number>();
  const cpuPerGiB = new Map<string, number>();
  for (const name of names) {
    const rs = results.filter((x) => x.leg === name);
    const ok = rs.filter((x) => x.verified);
    const walls = ok.map((x) => x.wallS);
    med.set(name, median(walls));
    rss.set(name, Math.max(...ok.map((x) => x.maxRssMiB ?? NaN)));
    cpuPerGiB.set(name, median(ok.map((x) => x.cpuS ?? NaN)) / GiB);
    if (ok.length === 0) {
      rows.push(`| ${name} | 0/${rs.length} | failed (exit ${rs.map((x) => x.code).join(',')}) | | | | | |`);
      continue;
    }
    rows.push(`| ${name} | ${ok.length}/${rs.length} | ${fmt(med.get(name)!)} | ${fmt(Math.min(...walls))} | ${fmt(Math.max(...walls))} | ${fmt(sizeMiB / med.get(name)!, 0)} | ${fmt(rss.get(name)!, 1)} | ${fmt(cpuPerGiB.get(name)!)} |`);
  }
  return { rows, med, rss, cpuPerGiB };
}

/** The runs that failed or wrote to stderr, each with what it said; nothing when none did. */
export function badRuns(results: readonly LegResult[]): string[] {
  const bad = results.filter((x) => !x.verified || x.stderr.length > 0);
  const out = bad.length > 0 ? ['', 'runs that failed or wrote to stderr:', ''] : [];
  for (const x of bad) {
    out.push(`- ${x.leg}: exit ${x.code}, ${fmt(x.wallS)} s, ${x.verified ? 'verified' : '**NOT verified**'}`);
    if (x.stderr.length > 0) out.push('  stderr:', ...summarizeStderr(x.stderr));
  }
  return out;
}
