/**
 * `npm run fuzz -- [TARGET…] [--runs N] [--seed N]`: fuzz campaigns over the decoders that take
 * outside bytes, one target after the other (never in parallel: the machine is shared), each in
 * a worker thread that this process watches. CONTRIBUTING.md "Fuzzing" is the user's guide.
 *
 * Whatever fails (an exception that is not the decoder's documented error, a broken contract, a
 * stack overflow, an input that runs over the time limit, a heap blown) is written to
 * test/fuzz-corpus/<target>/crash-<hash>.bin, where `npm test` replays it from then on.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import type { FileCoverage } from './coverage.js';
import { SHARED, type CrashReport, type FromWorker, type WorkerJob } from './protocol.js';
import { TARGETS, target as findTarget } from './targets.js';

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/fuzz
const ROOT = join(HERE, '..', '..');
const CORPUS = join(ROOT, 'test', 'fuzz-corpus');
/**
 * The fuzzing thread's stack: about the main thread's (V8's 984 KiB; a worker gets 4 MiB by
 * default), so that recursion overflows where it would in the CLI.
 */
const STACK_MB = 1.17;

const USAGE = `usage: npm run fuzz -- [TARGET…] [options]

Fuzzes every decoder that takes outside bytes (or the TARGETs named), one after the other.

  --runs N          inputs per target (default 100000; 1e6 for a full campaign)
  --seed N          fast-check seed (default: random; printed, so a run can be repeated)
  --timeout-ms N    an input that runs longer is a hang (default 1000)
  --max-heap-mb N   heap limit of the fuzzing thread: past it, the input is a memory failure (default 1024)
  --no-coverage     skip line coverage (a little faster)
  --coverage-detail also list the lines (of the compiled dist/…js) never run
  --list            list the targets and exit
  --write-seeds     (re)write the targets' built-in seed inputs into test/fuzz-corpus/ and exit
  -h, --help        this text

Failures are saved as test/fuzz-corpus/<target>/crash-<hash>.bin; npm test replays them.
Targets: ${TARGETS.map((t) => t.name).join(', ')}
`;

interface Result {
  target: string;
  runs: number;
  seconds: number;
  lines: string;
  blocksNotRun: number;
  crashes: Array<{ report: CrashReport; file: string; fromCorpus: boolean }>;
  knownHits: number;
  slowestMs: number;
  peakHeapMb: number;
  endHeapMb: number;
  coverage: FileCoverage[];
  stopped?: string;
}

class UsageError extends Error {}

function fail(msg: string): never {
  throw new UsageError(msg);
}

function num(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) fail(`--${name} must be a non-negative number, got ${JSON.stringify(v)}`);
  return Math.floor(n);
}

function saveCrash(targetName: string, r: CrashReport): string {
  const dir = join(CORPUS, targetName);
  mkdirSync(dir, { recursive: true });
  const name = `crash-${createHash('sha1').update(r.input).digest('hex').slice(0, 12)}.bin`;
  const file = join(dir, name);
  if (!existsSync(file)) writeFileSync(file, r.input);
  return relative(ROOT, file);
}

async function campaign(name: string, o: { runs: number; seed: number; hangMs: number; heapMb: number; coverage: boolean }): Promise<Result> {
  const res: Result = { target: name, runs: 0, seconds: 0, lines: '-', blocksNotRun: 0, crashes: [], knownHits: 0, slowestMs: 0, peakHeapMb: 0, endHeapMb: 0, coverage: [] };
  const known: string[] = [];
  const skip: string[] = [];
  const started = performance.now();
  let restarts = 0;
  let seed = o.seed;
  while (res.runs < o.runs || (res.runs === 0 && o.runs === 0)) {
    const shared = new SharedArrayBuffer(SHARED.bytesOffset + SHARED.maxInput);
    const header = new Int32Array(shared, 0, SHARED.headerInts);
    const startedAt = new Float64Array(shared, SHARED.timeOffset, 1);
    const job: WorkerJob = { target: name, runs: o.runs - res.runs, seed, batch: 2000, hangMs: o.hangMs, shrinkMs: 30_000, maxRssMb: 0, coverage: o.coverage, corpusRoot: CORPUS, known: [...known], skip: [...skip], shared };
    const runsBefore = res.runs;
    const outcome = await new Promise<'done' | 'hang' | 'memory' | 'error'>((resolve) => {
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: job, resourceLimits: { maxOldGenerationSizeMb: o.heapMb, stackSizeMb: STACK_MB } });
      let finished = false;
      let lastRuns = 0;
      let lastPrint = performance.now();
      /** the input the thread was running when it was lost (empty if between inputs) */
      const savedInput = (): CrashReport => {
        const running = Atomics.load(header, SHARED.state) === 1;
        const len = running ? Math.min(header[SHARED.length]!, SHARED.maxInput) : 0;
        return { kind: 'hang', signature: 'hang', message: '', stack: '', input: new Uint8Array(new Uint8Array(shared, SHARED.bytesOffset, len)) };
      };
      // the thread may be stuck in a loop that never yields: watch the input's start time
      const watchdog = setInterval(() => {
        if (Atomics.load(header, SHARED.state) === 1 && Date.now() - startedAt[0]! > Math.max(5000, o.hangMs * 5)) {
          finished = true;
          clearInterval(watchdog);
          const r = savedInput();
          r.message = `Hang: no progress for ${Math.round((Date.now() - startedAt[0]!) / 1000)} s on one input (thread stopped)`;
          skip.push(record(r, false));
          void w.terminate().then(() => resolve('hang'));
        }
      }, 250);
      /** reports a failure, saves its input; returns the file's name */
      const record = (report: CrashReport, fromCorpus: boolean): string => {
        known.push(report.signature);
        const file = report.input.length > 0 || report.kind !== 'exception' ? saveCrash(name, report) : '(no input: between inputs)';
        res.crashes.push({ report, file, fromCorpus });
        process.stderr.write(`fuzz: ${name}: ${fromCorpus ? 'corpus input still fails' : 'FAILURE'} (${report.kind}): ${report.message.split('\n')[0]}\n       input: ${file} (${report.input.length} bytes)\n`);
        const frames = report.stack.split('\n').slice(1, 6).join('\n');
        if (frames) process.stderr.write(`${frames}\n`);
        return file.slice(file.lastIndexOf('/') + 1);
      };
      w.on('message', (m: FromWorker) => {
        if (m.type === 'progress') {
          res.runs = runsBefore + m.runs;
          res.knownHits = m.knownHits;
          res.peakHeapMb = Math.max(res.peakHeapMb, m.heap / 2 ** 20);
          const t = performance.now();
          if (t - lastPrint > 10_000) {
            const rate = ((m.runs - lastRuns) / (t - lastPrint)) * 1000;
            process.stderr.write(`fuzz: ${name}: ${res.runs} inputs, ${Math.round(rate)}/s\n`);
            lastPrint = t;
            lastRuns = m.runs;
          }
        } else if (m.type === 'crash') {
          record(m.report, m.fromCorpus);
        } else {
          res.runs = runsBefore + m.runs;
          res.knownHits = m.knownHits;
          res.slowestMs = Math.max(res.slowestMs, m.slowestMs);
          res.peakHeapMb = Math.max(res.peakHeapMb, m.heap / 2 ** 20);
          res.endHeapMb = m.heap / 2 ** 20;
          res.coverage = m.coverage;
        }
      });
      w.on('error', (e: Error & { code?: string }) => {
        if (finished) return;
        finished = true;
        clearInterval(watchdog);
        const r = savedInput();
        if (e.code === 'ERR_WORKER_OUT_OF_MEMORY') {
          r.kind = 'memory';
          r.signature = 'memory';
          r.message = `Memory: the input took the heap past ${o.heapMb} MiB`;
          skip.push(record(r, false));
          resolve('memory');
        } else {
          r.kind = 'exception';
          r.signature = `worker: ${e.message}`;
          r.message = `the fuzzing thread died: ${e.stack ?? e.message}`;
          skip.push(record(r, false));
          resolve('error');
        }
      });
      w.on('exit', () => {
        clearInterval(watchdog);
        if (!finished) {
          finished = true;
          resolve('done');
        }
      });
    });
    if (outcome === 'done') break;
    // the thread was lost with its input: go on from where it was, with another seed
    if (++restarts > 5) {
      res.stopped = 'stopped after 5 lost threads';
      break;
    }
    seed++;
  }
  res.seconds = (performance.now() - started) / 1000;
  let lines = 0;
  let covered = 0;
  for (const c of res.coverage) {
    lines += c.lines;
    covered += c.linesCovered;
    res.blocksNotRun += c.blocksNotRun;
  }
  res.lines = lines > 0 ? `${((100 * covered) / lines).toFixed(1)}%` : '-';
  return res;
}

function table(results: Result[]): string {
  const rows = [['target', 'inputs', 'inputs/s', 'lines', 'blocks not run', 'failures', 'slowest', 'heap peak/end']];
  for (const r of results) {
    const fresh = r.crashes.filter((c) => !c.fromCorpus).length;
    const old = r.crashes.length - fresh;
    rows.push([
      r.target,
      String(r.runs),
      String(Math.round(r.runs / Math.max(r.seconds, 1e-9))),
      r.lines,
      String(r.blocksNotRun),
      `${fresh}${old ? ` (+${old} corpus)` : ''}${r.stopped ? ` ${r.stopped}` : ''}`,
      `${Math.round(r.slowestMs)} ms`,
      `${Math.round(r.peakHeapMb)}/${Math.round(r.endHeapMb)} MiB`,
    ]);
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')).join('\n') + '\n';
}

async function main(): Promise<void> {
  let a;
  try {
    a = parseArgs({
      options: {
        runs: { type: 'string' },
        seed: { type: 'string' },
        'timeout-ms': { type: 'string' },
        'max-heap-mb': { type: 'string' },
        'no-coverage': { type: 'boolean' },
        list: { type: 'boolean' },
        'write-seeds': { type: 'boolean' },
        'coverage-detail': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const v = a.values;
  if (v.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (v.list) {
    for (const t of TARGETS) process.stdout.write(`${t.name.padEnd(14)} ${t.summary}\n`);
    return;
  }
  if (v['write-seeds']) {
    for (const t of TARGETS) {
      const dir = join(CORPUS, t.name);
      mkdirSync(dir, { recursive: true });
      for (const [n, b] of Object.entries(t.seeds())) writeFileSync(join(dir, `seed-${n}`), b);
      process.stdout.write(`${relative(ROOT, dir)}: ${readdirSync(dir).length} files\n`);
    }
    return;
  }
  const names = a.positionals.length > 0 ? a.positionals : TARGETS.map((t) => t.name);
  for (const n of names) if (!findTarget(n)) fail(`unknown target ${JSON.stringify(n)} (targets: ${TARGETS.map((t) => t.name).join(', ')})`);
  const runs = num(v.runs, 'runs', 100_000);
  const seed = v.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : num(v.seed, 'seed', 0);
  const hangMs = num(v['timeout-ms'], 'timeout-ms', 1000);
  const heapMb = num(v['max-heap-mb'], 'max-heap-mb', 1024);
  process.stderr.write(`fuzz: ${names.length} target(s), ${runs} inputs each, --seed ${seed}\n`);
  const results: Result[] = [];
  for (const n of names) {
    const r = await campaign(n, { runs, seed, hangMs, heapMb, coverage: !v['no-coverage'] });
    results.push(r);
    process.stderr.write(`fuzz: ${n}: ${r.runs} inputs in ${r.seconds.toFixed(1)} s, lines ${r.lines}, ${r.crashes.length} failure(s)\n`);
    if (v['coverage-detail']) {
      for (const c of r.coverage) process.stderr.write(`  ${c.file}: ${c.linesCovered}/${c.lines} lines; not run: ${c.uncovered.join(',')}\n`);
    }
  }
  process.stdout.write(`\nseed ${seed}, ${runs} inputs per target, hang limit ${hangMs} ms\n`);
  process.stdout.write(table(results));
  for (const r of results) for (const c of r.coverage) process.stdout.write(`  ${r.target}: ${c.file} ${c.linesCovered}/${c.lines} lines, ${c.blocksNotRun} blocks not run\n`);
  const failures = results.flatMap((r) => r.crashes.map((c) => ({ target: r.target, ...c })));
  if (failures.length > 0) {
    process.stdout.write('\nfailures:\n');
    for (const f of failures) process.stdout.write(`  ${f.target} ${f.report.kind} ${f.file}: ${f.report.message.split('\n')[0]}\n`);
    process.exitCode = 1;
  }
}

try {
  await main();
} catch (e) {
  if (!(e instanceof UsageError)) throw e;
  process.stderr.write(`fuzz: ${e.message}\ntry 'npm run fuzz -- --help'\n`);
  process.exitCode = 2;
}
