/**
 * Canonical bencode encoder: dict keys sorted by raw bytes, integers in shortest form.
 * Output is written into one growing buffer: no intermediate strings or chunk lists.
 */
import { EncodeError } from './errors.js';
import type { BEncodable } from './types.js';

const MAX_DEPTH = 10_000;
const NOT_BINARY = /[^\x00-\xff]/;

class Writer {
  buf: Buffer;
  len = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  ensure(extra: number): void {
    const need = this.len + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  byte(c: number): void {
    this.ensure(1);
    this.buf[this.len++] = c;
  }
  ascii(s: string): void {
    this.ensure(s.length);
    this.len += this.buf.write(s, this.len, 'latin1');
  }
  bytes(b: Uint8Array): void {
    this.ascii(`${b.byteLength}:`);
    this.ensure(b.byteLength);
    this.buf.set(b, this.len);
    this.len += b.byteLength;
  }
  utf8(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.ascii(`${n}:`);
    this.ensure(n);
    this.len += this.buf.write(s, this.len, 'utf8');
  }
  latin1(s: string): void {
    this.ascii(`${s.length}:`);
    this.ensure(s.length);
    this.len += this.buf.write(s, this.len, 'latin1');
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'number') return Number.isInteger(v) ? `the integer ${v} (beyond ±(2^53−1), use a bigint)` : `the number ${v}`;
  return `a ${typeof v}`;
}

function write(w: Writer, v: BEncodable, path: string, depth: number): void {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new EncodeError(path, `bencode has no form for ${describe(v)}`);
    w.ascii(`i${v === 0 ? 0 : v}e`);
  } else if (typeof v === 'bigint') {
    w.ascii(`i${v}e`);
  } else if (typeof v === 'string') {
    w.utf8(v);
  } else if (v instanceof Uint8Array) {
    w.bytes(v);
  } else if (depth >= MAX_DEPTH) {
    throw new EncodeError(path, `nesting deeper than ${MAX_DEPTH} levels`);
  } else if (Array.isArray(v)) {
    w.byte(0x6c);
    for (let i = 0; i < v.length; i++) write(w, v[i] as BEncodable, path + `[${i}]`, depth + 1);
    w.byte(0x65);
  } else if (v instanceof Map) {
    // keys are binary strings: UTF-16 code unit order is byte order
    const keys = [...v.keys()];
    for (const k of keys) {
      if (typeof k !== 'string') throw new EncodeError(path, `dict key must be a string, got ${describe(k)}`);
      if (NOT_BINARY.test(k)) throw new EncodeError(path, 'Map keys are binary strings (one char per byte); use keyOf() for UTF-8 text');
    }
    keys.sort();
    w.byte(0x64);
    for (const k of keys) {
      w.latin1(k);
      write(w, v.get(k) as BEncodable, path + '.' + k, depth + 1);
    }
    w.byte(0x65);
  } else if (typeof v === 'object' && v !== null) {
    // plain object: keys are UTF-8 text, sorted by their encoded bytes
    const entries = Object.keys(v).map((k) => [Buffer.from(k, 'utf8'), k] as const);
    entries.sort((a, b) => Buffer.compare(a[0], b[0]));
    w.byte(0x64);
    for (const [kb, k] of entries) {
      w.bytes(kb);
      write(w, (v as { [key: string]: BEncodable })[k] as BEncodable, path + '.' + k, depth + 1);
    }
    w.byte(0x65);
  } else {
    throw new EncodeError(path, `bencode has no form for ${describe(v)}`);
  }
}

/** Encodes a value as canonical bencode. Throws {@link EncodeError} for values with no bencode form. */
export function encode(v: BEncodable, sizeHint = 256): Buffer {
  const w = new Writer(Math.max(16, sizeHint));
  write(w, v, '', 0);
  return w.buf.subarray(0, w.len);
}
