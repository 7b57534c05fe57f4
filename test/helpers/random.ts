/** Seeded randomness for property tests: a failure prints its seed, and TT_SEED=… replays it. */
import type { BValue } from '../../src/bencode/types.js';

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seedFromEnv(): number {
  const s = process.env['TT_SEED'];
  return s ? Number(s) : Math.floor(Math.random() * 2 ** 31);
}

export function int(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

export function bytes(r: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

// JSON's own punctuation inside strings too: a reader of the JSON text must not take it for structure
const KEY_TEXTS = ['', '$', '$hex', '$int', '$dict', '$$x', '__proto__', 'constructor', 'prototype', '10', '2', 'ñ', '日本', 'a b', 'info', 'pieces', '\u0000', '😀',
  'http://h:1/a', '"', '\\', '\\"', '"{[:', 'a\\":b'];

function randomString(r: () => number): Buffer {
  switch (int(r, 0, 4)) {
    case 0:
      return bytes(r, int(r, 0, 40)); // mostly not UTF-8
    case 1:
      return Buffer.from(KEY_TEXTS[int(r, 0, KEY_TEXTS.length - 1)]!, 'utf8');
    case 2:
      return Buffer.from([0xed, 0xa0, 0x80]); // a UTF-8-encoded surrogate: not valid UTF-8
    default:
      return Buffer.from(Math.floor(r() * 1e9).toString(36), 'utf8');
  }
}

/** Decoded integers are numbers when safe, bigints beyond: generate them the same way. */
function norm(v: bigint): number | bigint {
  return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
}

function randomInt(r: () => number): number | bigint {
  switch (int(r, 0, 4)) {
    case 0:
      return int(r, -1000, 1000);
    case 1:
      return r() < 0.5 ? 9007199254740991 : -9007199254740991;
    case 2: {
      const digits = int(r, 16, 80);
      let s = String(int(r, 1, 9));
      for (let i = 1; i < digits; i++) s += String(int(r, 0, 9));
      const b = BigInt(s);
      return norm(r() < 0.5 ? -b : b);
    }
    case 3:
      return r() < 0.5 ? 9007199254740992n : -9007199254740992n;
    default:
      return Math.floor((r() - 0.5) * 2 ** 53);
  }
}

/** A random bencode value: bytes, huge ints, `$` keys, non-UTF-8 keys, some deep nesting. */
export function randomValue(r: () => number, depth = 0): BValue {
  const k = depth > 6 ? int(r, 0, 1) : int(r, 0, 4);
  if (k === 0) return randomInt(r);
  if (k === 1) return randomString(r);
  if (k === 2) {
    const n = int(r, 0, 5);
    const out: BValue[] = [];
    for (let i = 0; i < n; i++) out.push(randomValue(r, depth + 1));
    return out;
  }
  if (k === 3 && r() < 0.1) {
    // a deep chain
    let v: BValue = randomValue(r, 7);
    const n = int(r, 10, 200);
    for (let i = 0; i < n; i++) v = r() < 0.5 ? [v] : new Map([['k', v]]);
    return v;
  }
  const n = int(r, 0, 5);
  const keys: Buffer[] = [];
  for (let i = 0; i < n; i++) keys.push(randomString(r));
  keys.sort(Buffer.compare);
  const d = new Map<string, BValue>();
  for (const key of keys) d.set(key.toString('latin1'), randomValue(r, depth + 1));
  return d;
}

/** Splits `buf` into random chunks (sizes 1..max). */
export function randomChunks(r: () => number, buf: Buffer, max = 64): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i < buf.length) {
    const n = int(r, 1, max);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}
