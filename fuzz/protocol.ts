/** What fuzz/run.ts and fuzz/worker.ts say to each other, and how a failure is named. */
import type { FileCoverage } from './coverage.js';

export interface WorkerJob {
  target: string;
  runs: number;
  seed: number;
  batch: number;
  hangMs: number;
  shrinkMs: number;
  maxRssMb: number;
  coverage: boolean;
  corpusRoot: string;
  /** failure signatures already reported in this campaign */
  known: string[];
  /** corpus files not to replay: they stopped a thread of this campaign already */
  skip: string[];
  shared: SharedArrayBuffer;
}

export type CrashKind = 'exception' | 'stack-overflow' | 'hang' | 'memory' | 'property';

export interface CrashReport {
  kind: CrashKind;
  /** the same failure gives the same signature: error name, message shape, where it was thrown */
  signature: string;
  message: string;
  stack: string;
  input: Uint8Array;
}

export type FromWorker =
  | { type: 'progress'; runs: number; knownHits: number; heap: number }
  | { type: 'crash'; report: CrashReport; fromCorpus: boolean }
  | { type: 'done'; runs: number; knownHits: number; slowestMs: number; heap: number; coverage: FileCoverage[] };

/** Layout of the shared memory: [state, input length] Int32, start time Float64, input bytes. */
export const SHARED = {
  headerInts: 2,
  state: 0,
  length: 1,
  timeOffset: 8,
  bytesOffset: 16,
  /** the longest input saved whole */
  maxInput: 1024 * 1024,
} as const;

export function classify(e: unknown): CrashKind {
  if (e instanceof RangeError && /call stack/i.test(e.message)) return 'stack-overflow';
  if (e instanceof Error && e.name === 'Hang') return 'hang';
  if (e instanceof Error && e.name === 'PropertyFailure') return 'property';
  return 'exception';
}

/** The first stack frame in the project's code (dist/src or dist/fuzz), as file:line. */
function place(stack: string): string {
  for (const line of stack.split('\n').slice(1)) {
    const m = /dist\/((?:src|fuzz)\/[^:)]+):(\d+)/.exec(line);
    if (m) return `${m[1]}:${m[2]}`;
  }
  return '?';
}

export function crashSignature(e: unknown): string {
  if (!(e instanceof Error)) return `non-error:${typeof e}`;
  // numbers in messages (offsets, lengths) vary with the input, not with the bug
  const shape = e.message.split('\n')[0]!.replace(/"(?:[^"\\]|\\.)*"/g, '"…"').replace(/\d+/g, 'N').slice(0, 120);
  if (e.name === 'Hang') return 'hang';
  return `${e.name}: ${shape} @ ${place(e.stack ?? '')}`;
}
