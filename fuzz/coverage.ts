/**
 * Line and block coverage of chosen files from V8's precise coverage (node:inspector's
 * Profiler, the data NODE_V8_COVERAGE writes), computed as c8 does it: a line is covered when
 * some code on it ran, i.e. the innermost range around one of its characters has a count > 0.
 * Blocks are V8's block ranges (branches, loop bodies, functions): V8 reports a block only when
 * its count differs from its parent's, so "blocks not run" is the number of distinct code
 * regions that never ran, the figure to look at when a line percentage is not 100.
 *
 * Figures are for the compiled files in dist/ (tsc output for ES2022 keeps the code's shape;
 * types and comments are gone, so line numbers differ from the .ts).
 */
import { readFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { fileURLToPath } from 'node:url';

interface Range {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface ScriptCoverage {
  url: string;
  functions: Array<{ functionName: string; ranges: Range[]; isBlockCoverage: boolean }>;
}

export interface FileCoverage {
  file: string;
  lines: number;
  linesCovered: number;
  /** 1-based numbers of the lines never run */
  uncovered: number[];
  blocksNotRun: number;
}

export class CoverageRecorder {
  private readonly session = new Session();

  start(): void {
    this.session.connect();
    this.post('Profiler.enable', {});
    // binary block coverage: whether each block ran, the cheapest mode that has blocks
    this.post('Profiler.startPreciseCoverage', { callCount: false, detailed: true });
  }

  private post(method: string, params: object): unknown {
    let out: unknown = null;
    let err: Error | null = null;
    // a session on the thread's own inspector answers synchronously
    this.session.post(method, params, (e, r) => {
      err = e;
      out = r;
    });
    if (err) throw err;
    return out;
  }

  /** Coverage of the files whose path ends with one of `files` (e.g. 'src/bencode/decoder.js'). */
  take(files: readonly string[]): FileCoverage[] {
    const r = this.post('Profiler.takePreciseCoverage', {}) as { result: ScriptCoverage[] };
    const out: FileCoverage[] = [];
    for (const f of files) {
      const scripts = r.result.filter((s) => s.url.startsWith('file:') && s.url.endsWith('/' + f));
      if (scripts.length === 0) {
        out.push({ file: f, lines: 0, linesCovered: 0, uncovered: [], blocksNotRun: 0 });
        continue;
      }
      out.push(fileCoverage(f, readFileSync(fileURLToPath(scripts[0]!.url), 'utf8'), scripts.flatMap((s) => s.functions)));
    }
    return out;
  }
}

function fileCoverage(file: string, source: string, functions: ScriptCoverage['functions']): FileCoverage {
  const ranges = functions.flatMap((fn) => fn.ranges);
  // paint counts outermost first, so that each character ends with its innermost range's count
  ranges.sort((a, b) => a.startOffset - b.startOffset || b.endOffset - a.endOffset);
  const counts = new Int32Array(source.length).fill(1);
  for (const r of ranges) counts.fill(r.count > 0 ? 1 : 0, r.startOffset, Math.min(r.endOffset, source.length));
  let blocksNotRun = 0;
  for (const fn of functions) {
    // ranges[0] is the function itself; a block not run inside a function not run is not counted again
    fn.ranges.forEach((r, i) => {
      if (r.count !== 0) return;
      if (i === 0 || fn.ranges[0]!.count !== 0) blocksNotRun++;
    });
  }
  const uncovered: number[] = [];
  let lines = 0;
  let covered = 0;
  let at = 0;
  const all = source.split('\n');
  for (let n = 0; n < all.length; n++) {
    const text = all[n]!;
    const start = at;
    at += text.length + 1;
    const t = text.trim();
    if (t === '' || t.startsWith('//') || t.startsWith('/*') || t.startsWith('*') || t.startsWith('import ') || t.startsWith('export {')) continue;
    lines++;
    let ran = false;
    for (let i = start; i < start + text.length; i++) {
      if (text.charCodeAt(i - start) > 0x20 && counts[i] === 1) {
        ran = true;
        break;
      }
    }
    if (ran) covered++;
    else uncovered.push(n + 1);
  }
  return { file, lines, linesCovered: covered, uncovered, blocksNotRun };
}
