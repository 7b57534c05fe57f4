/**
 * One fuzz campaign for one target, in a worker thread (fuzz/run.ts supervises it): fast-check
 * runs the target in batches; every input is copied into shared memory before it runs, so that
 * the supervisor can save the input that hangs the thread or exhausts its heap.
 *
 * A failing input (an exception that is not the decoder's documented error, a broken property,
 * a stack overflow) is shrunk by fast-check and reported; the campaign then goes on, tolerating
 * that same failure (same error and place) so that one known crash does not hide the others.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { CoverageRecorder } from './coverage.js';
import { SHARED, type CrashReport, type FromWorker, type WorkerJob } from './protocol.js';

const job = workerData as WorkerJob;
const port = parentPort!;
const post = (m: FromWorker): void => port.postMessage(m);

// coverage first: code compiled before precise coverage starts reports no blocks
const coverage = job.coverage ? new CoverageRecorder() : null;
coverage?.start();

const fc = (await import('fast-check')).default;
const { target } = await import('./targets.js');
const { crashSignature, classify } = await import('./protocol.js');

const t = target(job.target)!;
const header = new Int32Array(job.shared, 0, SHARED.headerInts);
const startedAt = new Float64Array(job.shared, SHARED.timeOffset, 1);
const bytes = new Uint8Array(job.shared, SHARED.bytesOffset);

function mark(input: Buffer): void {
  const n = Math.min(input.length, bytes.length);
  bytes.set(input.subarray(0, n));
  header[SHARED.length] = input.length;
  startedAt[0] = Date.now();
  Atomics.store(header, SHARED.state, 1);
}
function unmark(): void {
  Atomics.store(header, SHARED.state, 0);
}

function corpusFiles(): Buffer[] {
  const dir = join(job.corpusRoot, t.name);
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => !n.startsWith('.') && n !== 'README.md' && !job.skip.includes(n)).sort();
  } catch {
    return [];
  }
  return names.map((n) => readFileSync(join(dir, n)));
}

const known = new Set<string>(job.known);
let runs = 0;
let knownHits = 0;
let slowest = 0;
let lastProgress = Date.now();
/** after the first failure of a batch, shrinking may go on until then */
let shrinkUntil = Infinity;

/** What one run of an input came to: null when the decoder behaved. */
function outcome(input: Buffer, failure: unknown, ms: number): CrashReport | null {
  unmark();
  runs++;
  if (ms > slowest) slowest = ms;
  if (failure === null && ms > job.hangMs) failure = Object.assign(new Error(`input took ${Math.round(ms)} ms (limit ${job.hangMs} ms)`), { name: 'Hang' });
  if (failure === null) return null;
  return {
    kind: classify(failure),
    signature: crashSignature(failure),
    message: failure instanceof Error ? `${failure.name}: ${failure.message}` : String(failure),
    stack: failure instanceof Error ? (failure.stack ?? '') : '',
    input: new Uint8Array(input),
  };
}

function oneSync(input: Buffer, again = true): CrashReport | null {
  mark(input);
  const t0 = performance.now();
  let failure: unknown = null;
  try {
    void t.run(input);
  } catch (e) {
    if (!t.expected(e)) failure = e ?? new Error('threw nothing');
  }
  const r = outcome(input, failure, performance.now() - t0);
  // on a shared machine a thread can stall for a second (another process, a collection): an
  // input is slow only if it is slow again
  return r?.kind === 'hang' && again ? oneSync(input, false) : r;
}

/**
 * An exception thrown from an event handler (a socket's, a request's) is nobody's to catch: in
 * a program it ends the process. Here it is the failure of the input that is running.
 */
let uncaught: ((e: unknown) => void) | null = null;
process.on('uncaughtException', (e) => {
  if (uncaught !== null) uncaught(Object.assign(e, { message: `uncaught in an event handler: ${e.message}` }));
  else throw e;
});

async function oneAsync(input: Buffer, again = true): Promise<CrashReport | null> {
  mark(input);
  const t0 = performance.now();
  let failure: unknown = null;
  try {
    await Promise.race([t.run(input), new Promise((_, reject) => (uncaught = reject))]);
  } catch (e) {
    if (!t.expected(e)) failure = e ?? new Error('threw nothing');
  } finally {
    uncaught = null;
  }
  const r = outcome(input, failure, performance.now() - t0);
  return r?.kind === 'hang' && again ? oneAsync(input, false) : r;
}

const now = (): number => Date.now();
function progress(): void {
  if (now() - lastProgress < 2000) return;
  lastProgress = now();
  post({ type: 'progress', runs, knownHits, heap: getHeapStatistics().used_heap_size });
}

// the corpus first: regressions and seeds must pass (or be known) before anything new is tried
const corpus = corpusFiles();
for (const input of corpus) {
  const r = t.async ? await oneAsync(input) : oneSync(input);
  if (r !== null && !known.has(r.signature)) {
    known.add(r.signature);
    post({ type: 'crash', report: r, fromCorpus: true });
  }
}

const arb = t.inputs(corpus);
let batch = 0;
const batchSize = Math.min(job.batch, Math.max(1, job.runs));
while (runs < job.runs) {
  const numRuns = Math.min(batchSize, job.runs - runs);
  let found: CrashReport | null = null;
  shrinkUntil = Infinity;
  /** fast-check's verdict on a run: true = fine or already known */
  const verdict = (r: CrashReport | null): boolean => {
    progress();
    if (r === null) return true;
    if (known.has(r.signature)) {
      knownHits++;
      return true;
    }
    if (r.kind === 'hang') {
      // not shrunk: every try would take as long again
      known.add(r.signature);
      post({ type: 'crash', report: r, fromCorpus: false });
      return true;
    }
    if (found === null) shrinkUntil = now() + job.shrinkMs;
    if (found === null || r.input.length <= found.input.length) found = r;
    return false;
  };
  // shrinking that takes too long keeps what it has: later runs pass
  const details = t.async
    ? await fc.check(fc.asyncProperty(arb, async (input: Buffer) => now() > shrinkUntil || verdict(await oneAsync(input))), { seed: job.seed + batch, numRuns })
    : fc.check(fc.property(arb, (input: Buffer) => now() > shrinkUntil || verdict(oneSync(input))), { seed: job.seed + batch, numRuns });
  batch++;
  if (details.failed && found !== null) {
    const f: CrashReport = found;
    known.add(f.signature);
    post({ type: 'crash', report: f, fromCorpus: false });
  }
  // let timers and nextTicks of the targets run between batches
  await new Promise((r) => setImmediate(r));
}

// the heap after a collection: what the campaign left behind (a leak shows here)
(globalThis as { gc?: () => void }).gc?.();
post({ type: 'done', runs, knownHits, slowestMs: slowest, heap: getHeapStatistics().used_heap_size, coverage: coverage?.take(t.files) ?? [] });
