/**
 * Progress for long commands: a one-line bar redrawn on a terminal stderr, or NDJSON records
 * on stderr with --progress, or nothing (--quiet, or stderr not a terminal).
 */
import type { Io } from './io.js';

export interface ProgressState {
  done: number;
  total: number;
  bytes: number;
  /** extra fields for the NDJSON form and the bar (peers, rates…) */
  extra?: Record<string, number | string>;
}

export type ProgressMode = 'bar' | 'ndjson' | 'off';

export function progressMode(io: Io, flags: { quiet?: boolean; progress?: boolean }): ProgressMode {
  if (flags.quiet) return 'off';
  if (flags.progress) return 'ndjson';
  return io.stderr.isTTY ? 'bar' : 'off';
}

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

export class Progress {
  private readonly io: Io;
  private readonly mode: ProgressMode;
  private readonly label: string;
  private readonly started = Date.now();
  private lastDraw = 0;
  private drawn = false;

  constructor(io: Io, mode: ProgressMode, label: string) {
    this.io = io;
    this.mode = mode;
    this.label = label;
  }

  /** Reports the state; redraws at most 10 times a second unless `force`. */
  update(s: ProgressState, force = false): void {
    if (this.mode === 'off') return;
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const secs = (now - this.started) / 1000;
    const rate = secs > 0 ? s.bytes / secs : 0;
    if (this.mode === 'ndjson') {
      this.io.stderr.write(JSON.stringify({ event: 'progress', done: s.done, total: s.total, bytes: s.bytes, rate: Math.round(rate), seconds: Number(secs.toFixed(3)), ...s.extra }) + '\n');
      return;
    }
    const width = 24;
    const frac = s.total > 0 ? s.done / s.total : 1;
    const fill = Math.round(frac * width);
    const eta = rate > 0 && frac > 0 && frac < 1 ? ` ETA ${Math.ceil((secs / frac) * (1 - frac))}s` : '';
    const extra = s.extra ? ' ' + Object.entries(s.extra).map(([k, v]) => `${k} ${v}`).join(' ') : '';
    const line = `${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${s.done}/${s.total} ${human(s.bytes)} ${human(rate)}/s${extra}${eta}`;
    this.io.stderr.write(`\r\x1b[K${line}`);
    this.drawn = true;
  }

  /** Ends the bar's line. */
  finish(): void {
    if (this.drawn) this.io.stderr.write('\n');
    this.drawn = false;
  }
}
