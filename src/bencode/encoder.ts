/**
 * Canonical bencode encoder: dict keys sorted by raw bytes, integers in shortest form.
 *
 * Output goes into one growing buffer. Short strings and numbers are written byte by byte in
 * JS: for the many tiny keys and lengths of a torrent, a native Buffer call costs more than
 * the copy itself. The JSON path of a value is only built when there is an error to report.
 *
 * Nesting lives in an explicit stack of frames, not on the JS stack: a recursive writer ran
 * out of stack near 1,800 nested dicts with Node 20's default stack, so any depth up to
 * MAX_DEPTH works.
 */
import { EncodeError, pathText } from './errors.js';
import type { BEncodable } from './types.js';

/** Deeper than this is refused (a guard against cycles; the decoder's default is 512). */
const MAX_DEPTH = 10_000;
const NOT_BINARY = /[^\x00-\xff]/;
/** below this many bytes a JS loop beats a native copy */
const SMALL = 48;
const NO_ITEMS: readonly BEncodable[] = [];

const LIST = 0;
const MAP = 1;
const OBJECT = 2;

/**
 * One open container: what is left of it to write. Frames and their arrays are reused from one
 * container to the next at the same depth (allocating them per dict, or even truncating them,
 * cost ~40% on a torrent of 5,000 small file dicts). What they still hold after a container
 * closes is part of the value being encoded, alive until encode() returns anyway.
 */
interface Frame {
  kind: typeof LIST | typeof MAP | typeof OBJECT;
  /** the list itself, or `vals` */
  items: readonly BEncodable[];
  /** MAP: the binary-string keys in order; OBJECT: the JS keys, in the order of their bytes */
  keys: string[];
  vals: BEncodable[];
  /** OBJECT: the UTF-8 bytes of `keys` */
  keyBytes: Buffer[];
  /** how many items (the arrays may be longer) */
  n: number;
  /** the next item to write; items[i - 1] is the one being written */
  i: number;
}

class Writer {
  buf: Buffer;
  len = 0;
  /** frames[0..depth) are the open containers, outermost first; frame objects are reused */
  readonly frames: Frame[] = [];
  depth = 0;
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

  /** The frame for a container about to open (see {@link open}). */
  next(): Frame {
    let f = this.frames[this.depth];
    if (f === undefined) {
      f = { kind: LIST, items: NO_ITEMS, keys: [], vals: [], keyBytes: [], n: 0, i: 0 };
      this.frames.push(f);
    }
    return f;
  }

  /** Opens the frame given by {@link next}, its items set. */
  open(f: Frame, kind: Frame['kind'], items: readonly BEncodable[], n: number): void {
    f.kind = kind;
    f.items = items;
    f.n = n;
    f.i = 0;
    this.depth++;
    this.byte(kind === LIST ? 0x6c : 0x64);
  }

  notBinary(): never {
    this.fail('Map keys are binary strings (one char per byte); use keyOf() for UTF-8 text');
  }

  fail(reason: string): never {
    const parts: Array<string | number> = [];
    for (let d = 0; d < this.depth; d++) {
      const f = this.frames[d]!;
      parts.push(f.kind === LIST ? f.i - 1 : f.keys[f.i - 1]!);
    }
    throw new EncodeError(pathText(parts), reason);
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'number') return Number.isInteger(v) ? `the integer ${v} (beyond ±(2^53−1), use a bigint)` : `the number ${v}`;
  return `a ${typeof v}`;
}

/** Writes `root`: scalars at once, containers as frames whose items are taken in turn. */
function writeValue(w: Writer, root: BEncodable): void {
  const frames = w.frames;
  let v = root;
  for (;;) {
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
    } else if (typeof v !== 'object' || v === null) {
      w.fail(`bencode has no form for ${describe(v)}`);
    } else if (w.depth >= MAX_DEPTH) {
      w.fail(`nesting deeper than ${MAX_DEPTH} levels`);
    } else if (Array.isArray(v)) {
      w.open(w.next(), LIST, v as readonly BEncodable[], (v as readonly BEncodable[]).length);
    } else if (v instanceof Map) {
      openMap(w, v as ReadonlyMap<string, BEncodable>);
    } else {
      openObject(w, v as { readonly [key: string]: BEncodable });
    }
    // the next value: the next item of the innermost open container, closing finished ones
    for (;;) {
      if (w.depth === 0) return;
      const f = frames[w.depth - 1]!;
      const i = f.i;
      if (i < f.n) {
        f.i = i + 1;
        if (f.kind === MAP) w.latin1(f.keys[i]!);
        else if (f.kind === OBJECT) w.bytes(f.keyBytes[i]!);
        v = f.items[i]!;
        break;
      }
      w.byte(0x65);
      w.depth--;
    }
  }
}

function openMap(w: Writer, m: ReadonlyMap<string, BEncodable>): void {
  // Binary-string keys compare as JS strings in byte order. Decoded dicts are already sorted,
  // so check before paying for a sort.
  const f = w.next();
  const keys = f.keys;
  const vals = f.vals;
  let sorted = true;
  let prev: string | null = null;
  let n = 0;
  // (keys() then values() is faster than destructuring entries)
  for (const k of m.keys()) {
    if (typeof k !== 'string') w.fail(`dict key must be a string, got ${describe(k)}`);
    if (prev !== null && prev > k) sorted = false;
    prev = k;
    keys[n++] = k;
  }
  n = 0;
  for (const val of m.values()) vals[n++] = val;
  if (!sorted) {
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (keys[a]! < keys[b]! ? -1 : 1));
    f.keys = order.map((i) => keys[i]!);
    f.vals = order.map((i) => vals[i]!);
  }
  w.open(f, MAP, f.vals, n);
}

function openObject(w: Writer, v: { readonly [key: string]: BEncodable }): void {
  // plain object: keys are UTF-8 text, sorted by their encoded bytes
  const f = w.next();
  const entries = Object.keys(v).map((k) => [Buffer.from(k, 'utf8'), k] as const);
  entries.sort((a, b) => Buffer.compare(a[0], b[0]));
  for (let i = 0; i < entries.length; i++) {
    const [kb, k] = entries[i]!;
    f.keyBytes[i] = kb;
    f.keys[i] = k;
    f.vals[i] = v[k]!;
  }
  w.open(f, OBJECT, f.vals, entries.length);
}

/** Encodes a value as canonical bencode. Throws {@link EncodeError} for values with no bencode form. */
export function encode(v: BEncodable, sizeHint = 1024): Buffer {
  const w = new Writer(Math.max(64, sizeHint));
  writeValue(w, v);
  return w.buf.subarray(0, w.len);
}
