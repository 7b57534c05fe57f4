/**
 * Canonical bencode encoder: dict keys sorted by raw bytes, integers in shortest form.
 *
 * Output goes into one growing buffer. Short strings and numbers are written byte by byte in
 * JS: for the many tiny keys and lengths of a torrent, a native Buffer call costs more than
 * the copy itself. The JSON path of a value is only built when there is an error to report.
 */
import { EncodeError } from './errors.js';
import type { BEncodable } from './types.js';

const MAX_DEPTH = 10_000;
const NOT_BINARY = /[^\x00-\xff]/;
/** below this many bytes a JS loop beats a native copy */
const SMALL = 48;

class Writer {
  buf: Buffer;
  len = 0;
  /** keys and indexes from the root to the value being written, for error messages */
  readonly path: Array<string | number> = [];
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  grow(need: number): void {
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  /** decimal digits of a non-negative safe integer */
  uint(n: number): void {
    if (this.len + 17 > this.buf.length) this.grow(this.len + 17);
    const buf = this.buf;
    if (n < 10) {
      buf[this.len++] = 0x30 + n;
      return;
    }
    let digits = 0;
    for (let t = n; t > 0; t = Math.floor(t / 10)) digits++;
    let p = this.len + digits;
    this.len = p;
    for (let t = n; t > 0; t = Math.floor(t / 10)) buf[--p] = 0x30 + (t % 10);
  }

  byte(c: number): void {
    if (this.len + 1 > this.buf.length) this.grow(this.len + 1);
    this.buf[this.len++] = c;
  }

  int(v: number): void {
    if (v < 0) {
      this.byte(0x69);
      this.byte(0x2d);
      this.uint(-v);
    } else {
      this.byte(0x69);
      this.uint(v);
    }
    this.byte(0x65);
  }

  bytes(b: Uint8Array): void {
    const n = b.byteLength;
    this.uint(n);
    this.byte(0x3a);
    if (this.len + n > this.buf.length) this.grow(this.len + n);
    if (n < SMALL) {
      const buf = this.buf;
      let p = this.len;
      for (let i = 0; i < n; i++) buf[p++] = b[i]!;
    } else {
      this.buf.set(b, this.len);
    }
    this.len += n;
  }

  /** a binary string (one char per byte) */
  latin1(s: string): void {
    const n = s.length;
    this.uint(n);
    this.byte(0x3a);
    if (this.len + n > this.buf.length) this.grow(this.len + n);
    if (n < SMALL) {
      const buf = this.buf;
      let p = this.len;
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 0xff) this.notBinary();
        buf[p++] = c;
      }
      this.len = p;
    } else {
      if (NOT_BINARY.test(s)) this.notBinary();
      this.len += this.buf.write(s, this.len, 'latin1');
    }
  }

  utf8(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    if (n === s.length) {
      // ASCII: the binary form is the same
      this.latin1(s);
      return;
    }
    this.uint(n);
    this.byte(0x3a);
    if (this.len + n > this.buf.length) this.grow(this.len + n);
    this.len += this.buf.write(s, this.len, 'utf8');
  }

  notBinary(): never {
    this.fail('Map keys are binary strings (one char per byte); use keyOf() for UTF-8 text');
  }

  fail(reason: string): never {
    let p = '';
    for (const k of this.path) p += typeof k === 'number' ? `[${k}]` : `.${k}`;
    throw new EncodeError(p, reason);
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'number') return Number.isInteger(v) ? `the integer ${v} (beyond ±(2^53−1), use a bigint)` : `the number ${v}`;
  return `a ${typeof v}`;
}

function write(w: Writer, v: BEncodable, depth: number): void {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) w.fail(`bencode has no form for ${describe(v)}`);
    w.int(v === 0 ? 0 : v);
  } else if (v instanceof Uint8Array) {
    w.bytes(v);
  } else if (typeof v === 'string') {
    w.utf8(v);
  } else if (typeof v === 'bigint') {
    const s = `i${v}e`;
    for (let i = 0; i < s.length; i++) w.byte(s.charCodeAt(i));
  } else if (depth >= MAX_DEPTH) {
    w.fail(`nesting deeper than ${MAX_DEPTH} levels`);
  } else if (Array.isArray(v)) {
    w.byte(0x6c);
    const path = w.path;
    path.push(0);
    for (let i = 0; i < v.length; i++) {
      path[path.length - 1] = i;
      write(w, v[i] as BEncodable, depth + 1);
    }
    path.pop();
    w.byte(0x65);
  } else if (v instanceof Map) {
    writeMap(w, v as ReadonlyMap<string, BEncodable>, depth);
  } else if (typeof v === 'object' && v !== null) {
    // plain object: keys are UTF-8 text, sorted by their encoded bytes
    const entries = Object.keys(v).map((k) => [Buffer.from(k, 'utf8'), k] as const);
    entries.sort((a, b) => Buffer.compare(a[0], b[0]));
    w.byte(0x64);
    w.path.push('');
    for (const [kb, k] of entries) {
      w.path[w.path.length - 1] = k;
      w.bytes(kb);
      write(w, (v as { [key: string]: BEncodable })[k] as BEncodable, depth + 1);
    }
    w.path.pop();
    w.byte(0x65);
  } else {
    w.fail(`bencode has no form for ${describe(v)}`);
  }
}

function writeMap(w: Writer, m: ReadonlyMap<string, BEncodable>, depth: number): void {
  // Binary-string keys compare as JS strings in byte order. Decoded dicts are already sorted,
  // so check before paying for a sort.
  let sorted = true;
  let prev: string | null = null;
  for (const k of m.keys()) {
    if (typeof k !== 'string') w.fail(`dict key must be a string, got ${describe(k)}`);
    if (prev !== null && prev > k) sorted = false;
    prev = k;
  }
  w.byte(0x64);
  w.path.push('');
  const entries = sorted ? m : [...m].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  for (const [k, val] of entries) {
    w.path[w.path.length - 1] = k;
    w.latin1(k);
    write(w, val, depth + 1);
  }
  w.path.pop();
  w.byte(0x65);
}

/** Encodes a value as canonical bencode. Throws {@link EncodeError} for values with no bencode form. */
export function encode(v: BEncodable, sizeHint = 1024): Buffer {
  const w = new Writer(Math.max(64, sizeHint));
  write(w, v, 0);
  return w.buf.subarray(0, w.len);
}
