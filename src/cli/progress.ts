/**
 * Progress for long commands, one renderer for all of them: a status line redrawn in place on
 * a terminal stderr, NDJSON records on stderr with --progress, or nothing (--quiet, or stderr
 * not a terminal).
 *
 * The line fits the terminal (read at every draw, so a resized window is followed): the fields
 * that matter most stay and the bar takes what is left. A log line (report()) clears it first
 * and has it redrawn after, so nothing is written over the bar. finish() draws the final state
 * and can print a one-line summary.
 */
import type { Io, StatusLine } from './io.js';
import { clock, human } from './units.js';

export interface ProgressState {
  /** work units (pieces) done and in all; after a resume, the whole torrent's */
  done: number;
  total: number;
  /** bytes done in this run (the rate is measured on it), and still to do (for the ETA) */
  bytes: number;
  left?: number;
  /** peers connected */
  peers?: number;
  /** bytes/s we upload, and bytes uploaded in all */
  upRate?: number;
  uploaded?: number;
  /** peers that failed (refused, timed out, dropped): their lines are shown with -v only */
  failed?: number;
  /** seeding: uploaded ÷ size */
  ratio?: number;
}

export type ProgressMode = 'bar' | 'ndjson' | 'off';

export function progressMode(io: Io, flags: { quiet?: boolean; progress?: boolean }): ProgressMode {
  if (flags.quiet) return 'off';
  if (flags.progress) return 'ndjson';
  return io.stderr.isTTY ? 'bar' : 'off';
}

/** the rate is what the last few seconds did, not the average since the start */
const RATE_WINDOW_MS = 5000;

export class Progress implements StatusLine {
  private readonly io: Io;
  private readonly mode: ProgressMode;
  private label: string;
  private readonly started = Date.now();
  private lastDraw = 0;
  /** a line is on the screen (the cursor is at its end) */
  private shown = false;
  private last: ProgressState | null = null;
  /** (time, bytes) samples over the rate window */
  private readonly samples: Array<[number, number]> = [];

  constructor(io: Io, mode: ProgressMode, label: string) {
    this.io = io;
    this.mode = mode;
    this.label = label;
    if (mode === 'bar') io.statusLine = this;
  }

  /** Another phase (checking, then downloading, then seeding) on the same line. */
  phase(label: string): void {
    if (label === this.label) return;
    this.label = label;
    this.samples.length = 0;
    this.last = null;
  }

  /** Reports the state; redraws at most 10 times a second unless `force`. */
  update(s: ProgressState, force = false): void {
    if (this.mode === 'off') return;
    const now = Date.now();
    this.samples.push([now, s.bytes]);
    while (this.samples.length > 2 && now - this.samples[0]![0] > RATE_WINDOW_MS) this.samples.shift();
    this.last = s;
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    if (this.mode === 'ndjson') {
      // every record has the same keys, all figures numbers, named as in --stats
      this.io.stderr.write(JSON.stringify({
        event: 'progress', phase: this.label, done: s.done, total: s.total, downloaded: s.bytes, left: s.left ?? 0,
        downRate: Math.round(this.rate(now)), upRate: Math.round(s.upRate ?? 0), uploaded: s.uploaded ?? 0, peers: s.peers ?? 0,
        failed: s.failed ?? 0, seconds: Number(((now - this.started) / 1000).toFixed(3)),
      }) + '\n');
      return;
    }
    this.draw(now);
  }

  /** Takes the line off the screen (before a log line). */
  clear(): void {
    if (!this.shown) return;
    this.io.stderr.write('\r\x1b[K');
    this.shown = false;
  }

  /** Puts the line back (after a log line). */
  redraw(): void {
    if (this.mode === 'bar' && this.last !== null) this.draw(Date.now());
  }

  /** Draws the final state and ends the line; then the summary, if any, on a line of its own. */
  finish(summary?: string): void {
    if (this.mode === 'bar') {
      if (this.last !== null) this.draw(Date.now());
      if (this.shown) this.io.stderr.write('\n');
      this.shown = false;
      this.last = null;
      if (summary !== undefined) this.io.stderr.write(`${summary}\n`);
    }
    if (this.io.statusLine === this) this.io.statusLine = undefined;
  }

  /** Seconds since the start, for summaries. */
  get seconds(): number {
    return (Date.now() - this.started) / 1000;
  }

  private rate(now: number): number {
    const first = this.samples[0];
    const lastSample = this.samples[this.samples.length - 1];
    if (first === undefined || lastSample === undefined || lastSample[0] === first[0]) return 0;
    // over the window, but never over less than a second (the first samples are noisy)
    return (lastSample[1] - first[1]) / (Math.max(1000, now - first[0]) / 1000);
  }

  private draw(now: number): void {
    const s = this.last!;
    const width = Math.max(20, ((this.io.stderr as { columns?: number }).columns ?? 80) - 1);
    this.io.stderr.write(`\r\x1b[K${fit(this.fields(s, now), width)}`);
    this.shown = true;
  }

  /** The line's fields, most important first; fit() keeps what the width allows. */
  private fields(s: ProgressState, now: number): Field[] {
    if (s.ratio !== undefined) {
      return [
        { text: this.label, keep: 0 },
        { text: `peers ${s.peers ?? 0}`, keep: 1 },
        { text: `up ${human(s.upRate ?? 0)}/s`, keep: 1 },
        { text: `uploaded ${human(s.uploaded ?? 0)}`, keep: 2 },
        { text: `ratio ${s.ratio.toFixed(2)}`, keep: 3 },
      ];
    }
    const frac = s.total > 0 ? Math.min(1, s.done / s.total) : 1;
    // once done, the rate of the whole run (the last seconds' would read 0 B/s)
    const rate = frac >= 1 ? s.bytes / Math.max(0.001, (now - this.started) / 1000) : this.rate(now);
    const left = s.left ?? 0;
    const eta = frac < 1 && rate > 0 && left > 0 ? `ETA ${clock(left / rate)}` : '';
    return [
      { text: this.label, keep: 0 },
      { text: `${Math.floor(frac * 100)}%`, keep: 0 },
      { bar: frac, keep: 5 },
      { text: `${s.done}/${s.total}`, keep: 2 },
      { text: human(s.bytes), keep: 4 },
      { text: `${human(rate)}/s`, keep: 1 },
      { text: s.peers !== undefined ? `peers ${s.peers}` : '', keep: 2 },
      { text: s.upRate !== undefined && s.upRate > 0 ? `up ${human(s.upRate)}/s` : '', keep: 4 },
      { text: s.failed ? `failed ${s.failed}` : '', keep: 3 },
      { text: eta, keep: 1 },
    ];
  }
}

interface Field {
  text?: string;
  /** a bar showing this fraction, as wide as the room left */
  bar?: number;
  /** 0 always kept; higher numbers go first when the line is too long */
  keep: number;
}

/** The fields that fit in `width`, in their order; the bar takes the room that is left. */
export function fit(fields: Field[], width: number): string {
  const present = fields.filter((f) => f.bar !== undefined || (f.text ?? '') !== '');
  const len = (fs: Field[]): number => fs.reduce((n, f) => n + (f.bar !== undefined ? 0 : f.text!.length + 1), -1);
  let kept = present.filter((f) => f.bar === undefined);
  for (let k = 5; len(kept) > width && k > 0; k--) kept = kept.filter((f) => f.keep < k);
  const room = width - len(kept) - 1;
  const parts: string[] = [];
  for (const f of present) {
    if (f.bar !== undefined) {
      // a bar narrower than 10 tells nothing: left out
      if (room >= 12) {
        const inner = Math.min(room - 2, 40);
        const fill = Math.round(f.bar * inner);
        parts.push(`[${'#'.repeat(fill)}${'.'.repeat(inner - fill)}]`);
      }
    } else if (kept.includes(f)) parts.push(f.text!);
  }
  const line = parts.join(' ');
  return line.length > width ? line.slice(0, width) : line;
}
