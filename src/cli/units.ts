/** Figures for people: sizes in binary units, durations as a clock; rates and units read from them. */
import { UsageError } from './errors.js';

/** Binary units, always with one decimal past bytes: 1.0 MiB, 812.4 KiB, 17 B. */
export function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

/** h:mm:ss (m:ss below an hour). */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** Binary unit letters as the options read them: K = 1024, M = 1024², G = 1024³, T = 1024⁴. */
const UNIT_LETTERS = 'KMGT';

/** The factor of a unit letter (either case; none is 1), shared by Args.size() and parseRate(). */
export function unitFactor(letter: string | undefined): number {
  if (letter === undefined || letter === '') return 1;
  const i = UNIT_LETTERS.indexOf(letter.toUpperCase());
  if (i < 0 || letter.length !== 1) throw new RangeError(`not a unit letter: ${JSON.stringify(letter)}`);
  return 1024 ** (i + 1);
}

/**
 * The largest rate parseRate() accepts: 1 TiB/s, far past any link, and small enough that a
 * rate limiter's arithmetic (rate × milliseconds) stays exact in a double.
 */
export const MAX_RATE = 1024 ** 4;

// A number (a fraction only with a unit), a unit letter with an optional `iB`/`B`, or a bare
// `B`, then an optional `/s`. No leading zeros, no exponent, no spaces, as Args.size().
const RATE_TEXT = /^(0|[1-9][0-9]*)(\.[0-9]+)?(?:([KMGTkmgt])(?:[iI]?B)?|B)?(?:\/s)?$/;

/**
 * A rate in bytes per second: `65536`, `500K`, `1.5M`, `1G`, with an optional `B`, `iB` and
 * `/s` (`500KB/s`, `500KiB/s`, `65536B/s`); K = 1024 as in Args.size(). A JSON number must be
 * a whole number of bytes. 0 means unlimited. A fraction is rounded to whole bytes. Throws a
 * UsageError whose message starts with `what` (an option, or a list line and key).
 */
export function parseRate(text: string | number, what: string): number {
  const expected = 'expected a rate in bytes per second like 65536, 500K or 1.5M/s (0: unlimited)';
  const shown = typeof text === 'number' ? String(text) : JSON.stringify(text.length > 40 ? text.slice(0, 40) + '…' : text);
  let n: number;
  if (typeof text === 'number') {
    if (!Number.isSafeInteger(text) || text < 0) throw new UsageError(`${what}: ${expected}, got ${shown}`);
    n = text;
  } else {
    const m = RATE_TEXT.exec(text);
    if (m === null) {
      // 500Kb/s, 1Mbps: bits, by the usual spelling; say so rather than guess
      const bits = /^[0-9.]+[KMGTkmgt]?(?:b|bit|bps)(?:\/s)?$/.test(text);
      throw new UsageError(`${what}: ${expected}, got ${shown}${bits ? ' (a lowercase b means bits: write B or nothing for bytes)' : ''}`);
    }
    if (m[2] !== undefined && m[3] === undefined) throw new UsageError(`${what}: ${shown}: a fraction of a byte (write whole bytes, or a unit: 1.5K)`);
    const exact = Number(m[1]! + (m[2] ?? '')) * unitFactor(m[3]);
    n = Math.round(exact);
    if (n === 0 && exact > 0) throw new UsageError(`${what}: ${shown} is less than 1 byte per second (0 means unlimited)`);
  }
  if (n > MAX_RATE) throw new UsageError(`${what}: ${shown} is more than 1T (${MAX_RATE} bytes per second)`);
  return n;
}
