/**
 * Streaming, non-recursive bencode decoder.
 *
 * Bytes may arrive in chunks of any size (one byte included); each top-level value is handed to
 * the caller as soon as its last byte arrives. Nesting lives in an explicit stack, so depth is a
 * limit with a clear error, never a stack overflow. Every error names the absolute offset of the
 * first byte that cannot be accepted.
 */
import { constants } from 'node:buffer';
import { BencodeError, quoted } from './errors.js';
import type { BDict, BValue, Span } from './types.js';

export type LenientKind = 'unsorted-keys' | 'duplicate-keys' | 'leading-zeros';

export interface DecodeLimits {
  /** Containers nested deeper than this are refused. Default 512. */
  maxDepth?: number;
  /** Longest byte string, in bytes. Default 128 MiB. */
  maxStringLength?: number;
  /** Largest top-level value, in bytes. Default 256 MiB. */
  maxValueSize?: number;
  /** Longest integer, in digits. Default 4096. */
  maxIntegerDigits?: number;
}

export interface DecodeOptions extends DecodeLimits {
  /** Accept dict keys out of order (as some real files have them). */
  allowUnsorted?: boolean;
  /** Accept repeated dict keys; the last value wins. */
  allowDuplicates?: boolean;
  /** Accept leading zeros in integers and string lengths, and `-0`. */
  allowLeadingZeros?: boolean;
  /** Told each time a non-canonical form was accepted. */
  onLenient?: (kind: LenientKind, offset: number) => void;
  /** When given, receives the byte span of every container and byte string decoded. */
  spans?: WeakMap<object, Span>;
  /** Only record spans of values nested at most this deep (0 = top-level values). Default: all. */
  spanDepth?: number;
  /**
   * Where a byte string that arrives split across chunks is gathered (default: a new buffer);
   * one that lies inside a chunk is a slice of it. The piece stream reuses piece buffers so.
   */
  allocString?: (length: number) => Buffer;
  /**
   * Copy every byte string out of the input (into `allocString`'s buffers) instead of slicing
   * it: for a caller that overwrites its chunk buffer after each write(). A value may be
   * emitted chunks after its strings were read, so a slice would point at later bytes.
   */
  copyStrings?: boolean;
}

export const DEFAULT_LIMITS: Required<DecodeLimits> = {
  maxDepth: 512,
  maxStringLength: 128 * 1024 * 1024,
  maxValueSize: 256 * 1024 * 1024,
  maxIntegerDigits: 4096,
};

/** A decoded top-level value and where it stood in the input. */
export type EmitFn = (value: BValue, start: number, end: number) => void;

interface Frame {
  start: number;
  list: BValue[] | null;
  dict: BDict | null;
  /** dict only: the key read (a binary string), waiting for its value */
  key: string | null;
  /** dict only: the previous key, for the order check */
  lastKey: string | null;
  /** dict only: a key came out of order (lenient mode) */
  unsorted: boolean;
}

// states
const S_VALUE = 0; // expecting the first byte of a value (or 'e' closing a container)
const S_INT_FIRST = 1; // after 'i'
const S_INT_NEG = 2; // after 'i-'
const S_INT_DIGITS = 3; // inside the digits of an integer
const S_STR_LEN = 4; // inside the digits of a string length
const S_STR_BODY = 5; // inside the bytes of a string

const C_0 = 0x30;
const C_9 = 0x39;
const C_COLON = 0x3a;
const C_MINUS = 0x2d;
const C_I = 0x69;
const C_L = 0x6c;
const C_D = 0x64;
const C_E = 0x65;

/** Printable description of one input byte for error messages. */
function show(c: number): string {
  if (c >= 0x21 && c <= 0x7e && c !== 0x27) return `'${String.fromCharCode(c)}'`;
  return `byte 0x${c.toString(16).padStart(2, '0')}`;
}

/** Digits of a number kept exact: a float accumulator while it is safe, text beyond. */
const SAFE_DIGITS = 15;

export class BencodeDecoder {
  private readonly o: Required<DecodeLimits> & DecodeOptions;
  private st = S_VALUE;
  private pos = 0; // absolute offset of the next byte to read
  private valueStart = 0; // where the current top-level value began
  /** frames[0..depth) are the open containers; frame objects are reused to spare the GC */
  private readonly frames: Frame[] = [];
  private depth = 0;
  private failed: BencodeError | null = null;
  private halted = false;
  private readonly spans: WeakMap<object, Span> | undefined;
  private readonly spanDepth: number;

  // token accumulators
  private tokStart = 0;
  private neg = false;
  private acc = 0;
  private nd = 0;
  private digits = '';
  private zeroLead = false;
  private strLen = 0;
  private strBuf: Buffer | null = null;
  private strFill = 0;

  constructor(options: DecodeOptions = {}) {
    this.o = { ...DEFAULT_LIMITS, ...options };
    this.spans = options.spans;
    this.spanDepth = options.spanDepth ?? Infinity;
    if (!(this.o.maxDepth >= 1)) throw new RangeError('maxDepth must be at least 1');
  }

  /** A byte string value: a slice of the chunk, or a copy when the caller reuses chunks. */
  private bytes(chunk: Buffer, start: number, end: number): Buffer {
    const s = chunk.subarray(start, end);
    if (this.o.copyStrings !== true) return s;
    const out = this.allocString(s.length);
    s.copy(out);
    return out;
  }

  private allocString(length: number): Buffer {
    return this.o.allocString?.(length) ?? Buffer.allocUnsafe(length);
  }

  /** Absolute offset of the next byte the decoder expects. */
  get offset(): number {
    return this.pos;
  }

  /** True between top-level values (nothing partial held). */
  get idle(): boolean {
    return this.st === S_VALUE && this.depth === 0;
  }

  /** Bytes of the current partial value (0 when idle). */
  get pending(): number {
    return this.idle ? 0 : this.pos - this.valueStart;
  }

  /**
   * Feeds bytes. Calls `emit` for each top-level value completed inside them.
   * Throws a {@link BencodeError} at the first byte that cannot be accepted; the decoder is
   * unusable afterwards.
   */
  write(input: Uint8Array, emit: EmitFn): void {
    if (this.failed) throw this.failed;
    this.guard(() => this.run(Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength), emit));
  }

  /** Runs a step; a BencodeError out of it leaves the decoder failed (unusable), as documented. */
  private guard(step: () => void): void {
    try {
      step();
    } catch (e) {
      if (e instanceof BencodeError) this.failed = e;
      throw e;
    }
  }

  /**
   * Inside a byte string: the part of its buffer still to be filled, so that a reader can read
   * the bytes straight into place and report them with {@link filled} rather than pass them
   * through write() (a copy saved: a piece stream reader reads its 1 MiB pieces so). Null
   * anywhere else.
   */
  pendingString(): Buffer | null {
    if (this.failed || this.halted || this.st !== S_STR_BODY) return null;
    this.strBuf ??= this.allocString(this.strLen);
    return this.strBuf.subarray(this.strFill, this.strLen);
  }

  /** `n` bytes were put at the start of {@link pendingString}'s buffer: taken as if write() had brought them. */
  filled(n: number, emit: EmitFn): void {
    if (this.failed) throw this.failed;
    if (this.st !== S_STR_BODY || this.strBuf === null || n > this.strLen - this.strFill) throw new RangeError('filled() beyond the pending string');
    this.strFill += n;
    this.pos += n;
    if (this.strFill < this.strLen) return;
    const s = this.strBuf;
    this.strBuf = null;
    this.st = S_VALUE;
    this.guard(() => this.done(s, this.tokStart, this.pos, emit));
  }

  /** Stops reading: the rest of the current write() is left unread (see {@link offset}). */
  stop(): void {
    this.halted = true;
  }

  /** Declares the end of input: throws if a value was left unfinished. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.idle) return;
    let what: string;
    switch (this.st) {
      case S_INT_FIRST:
      case S_INT_NEG:
      case S_INT_DIGITS:
        what = "expected a digit or 'e' to end the integer";
        break;
      case S_STR_LEN:
        what = "expected ':' after string length";
        break;
      case S_STR_BODY:
        what = `expected ${this.strLen - this.strFill} more string bytes`;
        break;
      default: {
        const top = this.frames[this.depth - 1]!;
        what = top.dict ? (top.key ? 'expected a dict value' : "expected a dict key or 'e'") : "expected a list item or 'e'";
      }
    }
    this.failed = new BencodeError(this.pos, `unexpected end of input: ${what}`);
    throw this.failed;
  }

  private fail(at: number, reason: string): never {
    throw new BencodeError(at, reason);
  }

  private run(chunk: Buffer, emit: EmitFn): void {
    const n = chunk.length;
    const base = this.pos;
    const o = this.o;
    const frames = this.frames;
    const maxStr = o.maxStringLength;
    const maxVal = o.maxValueSize;
    const inline = this.spans === undefined || this.spanDepth === 0;
    let i = 0;
    while (i < n && !this.halted) {
      switch (this.st) {
        case S_VALUE: {
          const c = chunk[i]!;
          const at = base + i;
          const top = this.depth > 0 ? frames[this.depth - 1]! : null;
          if (top === null) this.valueStart = at;
          if (c >= C_0 && c <= C_9) {
            // Fast path: the whole string lies in this chunk and is canonical. Anything else
            // (a leading zero, a limit, a chunk boundary, a bad byte) goes the slow way, which
            // also produces the precise error.
            if (c !== C_0 || chunk[i + 1] === C_COLON) {
              let j = i + 1;
              let len = c - C_0;
              let d = 0;
              while (j < n && (d = chunk[j]!) >= C_0 && d <= C_9 && len <= maxStr) {
                len = len * 10 + (d - C_0);
                j++;
              }
              const s0 = j + 1;
              const e = s0 + len;
              if (j < n && d === C_COLON && len <= maxStr && e <= n && base + e - this.valueStart <= maxVal) {
                i = e;
                if (top === null || !inline) this.done(this.bytes(chunk, s0, e), at, base + e, emit);
                else if (top.list !== null) top.list.push(this.bytes(chunk, s0, e));
                else if (top.key === null) this.key(top, binaryString(chunk, s0, e), at);
                else {
                  top.dict!.set(top.key, this.bytes(chunk, s0, e));
                  top.key = null;
                }
                break;
              }
            }
            this.st = S_STR_LEN;
            this.tokStart = at;
            this.acc = c - C_0;
            this.nd = 1;
            this.zeroLead = c === C_0;
            i++;
            break;
          }
          if (c === C_E) {
            if (top === null) this.fail(at, "expected 'i', 'l', 'd' or a digit to start a value, got 'e'");
            if (top.key !== null) this.fail(at, "expected a dict value, got 'e'");
            this.depth--;
            i++;
            this.pos = base + i;
            this.done(top.list ?? top.dict!, top.start, at + 1, emit);
            break;
          }
          if (top !== null && top.dict !== null && top.key === null) {
            this.fail(at, `expected a string dict key or 'e', got ${show(c)}`);
          }
          if (c === C_I) {
            // Fast path: a canonical integer of at most 15 digits inside this chunk.
            let j = i + 1;
            const neg = chunk[j] === C_MINUS;
            if (neg) j++;
            const d0 = j;
            let v = 0;
            let d = 0;
            while (j < n && (d = chunk[j]!) >= C_0 && d <= C_9) {
              v = v * 10 + (d - C_0);
              j++;
            }
            const nd = j - d0;
            if (j < n && d === C_E && nd > 0 && nd <= SAFE_DIGITS && (chunk[d0] !== C_0 || (nd === 1 && !neg))) {
              i = j + 1;
              if (top === null) this.done(neg ? -v : v, at, base + i, emit);
              else if (top.list !== null) top.list.push(neg ? -v : v);
              else {
                top.dict!.set(top.key!, neg ? -v : v);
                top.key = null;
              }
              break;
            }
            this.st = S_INT_FIRST;
            this.tokStart = at;
            i++;
          } else if (c === C_L || c === C_D) {
            if (this.depth >= o.maxDepth) this.fail(at, `nesting deeper than ${o.maxDepth} levels`);
            const f = frames[this.depth];
            if (f === undefined) {
              frames.push({ start: at, list: c === C_L ? [] : null, dict: c === C_D ? new Map() : null, key: null, lastKey: null, unsorted: false });
            } else {
              f.start = at;
              f.list = c === C_L ? [] : null;
              f.dict = c === C_D ? new Map() : null;
              f.key = null;
              f.lastKey = null;
              f.unsorted = false;
            }
            this.depth++;
            i++;
          } else {
            this.fail(at, `expected 'i', 'l', 'd' or a digit to start a value, got ${show(c)}`);
          }
          break;
        }
        case S_INT_FIRST: {
          const c = chunk[i]!;
          const at = base + i;
          this.neg = false;
          this.acc = 0;
          this.nd = 0;
          this.digits = '';
          if (c === C_MINUS) {
            this.neg = true;
            this.st = S_INT_NEG;
          } else if (c >= C_0 && c <= C_9) {
            this.zeroLead = c === C_0;
            this.addDigit(c, at);
            this.st = S_INT_DIGITS;
          } else {
            this.fail(at, `expected a digit or '-' after 'i', got ${show(c)}`);
          }
          i++;
          break;
        }
        case S_INT_NEG: {
          const c = chunk[i]!;
          const at = base + i;
          if (c < C_0 || c > C_9) this.fail(at, `expected a digit after '-', got ${show(c)}`);
          if (c === C_0) {
            if (!o.allowLeadingZeros) this.fail(at, "'-0' and leading zeros are not allowed in integers");
            o.onLenient?.('leading-zeros', at);
          }
          this.zeroLead = false;
          this.addDigit(c, at);
          this.st = S_INT_DIGITS;
          i++;
          break;
        }
        case S_INT_DIGITS: {
          // tight loop over the digits in this chunk
          while (i < n) {
            const c = chunk[i]!;
            const at = base + i;
            if (c >= C_0 && c <= C_9) {
              if (this.zeroLead && this.nd === 1) {
                if (!o.allowLeadingZeros) this.fail(at, 'leading zeros are not allowed in integers');
                o.onLenient?.('leading-zeros', at);
                this.zeroLead = false;
              }
              this.addDigit(c, at);
              i++;
            } else if (c === C_E) {
              i++;
              this.pos = base + i;
              this.st = S_VALUE;
              this.done(this.intValue(), this.tokStart, at + 1, emit);
              break;
            } else {
              this.fail(at, `expected a digit or 'e' in integer, got ${show(c)}`);
            }
          }
          break;
        }
        case S_STR_LEN: {
          while (i < n) {
            const c = chunk[i]!;
            const at = base + i;
            if (c >= C_0 && c <= C_9) {
              if (this.zeroLead) {
                if (!o.allowLeadingZeros) this.fail(at, 'leading zeros are not allowed in string lengths');
                o.onLenient?.('leading-zeros', at);
                this.zeroLead = false;
              }
              this.acc = this.acc * 10 + (c - C_0);
              this.nd++;
              if (this.acc > o.maxStringLength) {
                this.fail(at, `string length exceeds the limit of ${o.maxStringLength} bytes`);
              }
              i++;
            } else if (c === C_COLON) {
              i++;
              const len = this.acc;
              const end = at + 1 + len;
              if (end - this.valueStart > o.maxValueSize) {
                this.fail(this.tokStart, `value exceeds the limit of ${o.maxValueSize} bytes`);
              }
              this.strLen = len;
              this.strFill = 0;
              this.strBuf = null;
              this.st = S_STR_BODY;
              if (len === 0) {
                this.pos = base + i;
                this.st = S_VALUE;
                this.done(Buffer.alloc(0), this.tokStart, at + 1, emit);
              }
              break;
            } else {
              this.fail(at, `expected ':' after string length, got ${show(c)}`);
            }
          }
          break;
        }
        case S_STR_BODY: {
          const need = this.strLen - this.strFill;
          const avail = n - i;
          if (this.strBuf === null && avail >= need && this.o.copyStrings !== true) {
            const s = chunk.subarray(i, i + need);
            i += need;
            this.pos = base + i;
            this.st = S_VALUE;
            this.done(s, this.tokStart, base + i, emit);
            break;
          }
          if (this.strBuf === null) this.strBuf = this.allocString(this.strLen);
          const take = Math.min(avail, need);
          chunk.copy(this.strBuf, this.strFill, i, i + take);
          this.strFill += take;
          i += take;
          if (this.strFill === this.strLen) {
            const s = this.strBuf;
            this.strBuf = null;
            this.pos = base + i;
            this.st = S_VALUE;
            this.done(s, this.tokStart, base + i, emit);
          }
          break;
        }
      }
    }
    this.pos = base + i;
    if (!this.idle && this.pos - this.valueStart > o.maxValueSize) {
      this.fail(this.valueStart + o.maxValueSize, `value exceeds the limit of ${o.maxValueSize} bytes`);
    }
  }

  private addDigit(c: number, at: number): void {
    if (this.nd < SAFE_DIGITS) {
      this.acc = this.acc * 10 + (c - C_0);
    } else {
      if (this.nd === SAFE_DIGITS) this.digits = String(this.acc).padStart(SAFE_DIGITS, '0');
      if (this.nd >= this.o.maxIntegerDigits) this.fail(at, `integer longer than ${this.o.maxIntegerDigits} digits`);
      this.digits += String.fromCharCode(c);
    }
    this.nd++;
  }

  private intValue(): number | bigint {
    if (this.nd <= SAFE_DIGITS) return this.neg ? -this.acc : this.acc;
    const big = BigInt(this.digits);
    const v = this.neg ? -big : big;
    return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
  }

  /** A value is complete: give it to its container, or to the caller when top-level. */
  private done(v: BValue, start: number, end: number, emit: EmitFn): void {
    if (this.spans !== undefined && typeof v === 'object' && this.depth <= this.spanDepth) this.spans.set(v, { start, end });
    if (this.depth === 0) {
      emit(v, start, end);
      return;
    }
    const top = this.frames[this.depth - 1]!;
    if (top.list !== null) {
      top.list.push(v);
    } else if (top.key === null) {
      // a dict key (the S_VALUE check guarantees it is a byte string); keys are JS strings, so
      // one longer than the longest string V8 makes is refused here rather than crashing
      const k = v as Buffer;
      if (k.length > constants.MAX_STRING_LENGTH) throw new BencodeError(start, `dict key of ${k.length} bytes: longer than the longest key this decoder can hold (${constants.MAX_STRING_LENGTH} bytes)`);
      this.key(top, k.toString('latin1'), start);
    } else {
      top.dict!.set(top.key, v);
      top.key = null;
    }
  }

  /** A dict key is complete: check its order (binary strings compare in byte order). */
  private key(top: Frame, key: string, start: number): void {
    const last = top.lastKey;
    if (last !== null && last >= key) {
      if (last > key) {
        if (!this.o.allowUnsorted) throw new BencodeError(start, `dict key ${quoted(key)} is out of order (keys must be sorted)`);
        this.o.onLenient?.('unsorted-keys', start);
        top.unsorted = true;
      }
    }
    // once the order is broken, an earlier key may come back anywhere
    if (last === key || (top.unsorted && top.dict!.has(key))) {
      if (!this.o.allowDuplicates) throw new BencodeError(start, `duplicate dict key ${quoted(key)}`);
      this.o.onLenient?.('duplicate-keys', start);
    }
    top.key = key;
    top.lastKey = key;
  }
}

/**
 * The bytes [start, end) as a binary string. Dict keys repeat endlessly (5,000 × "length",
 * "path"), so short ones come from a small cache instead of being built again each time.
 */
const KEY_CACHE: string[] = new Array<string>(512).fill('');
function binaryString(b: Buffer, start: number, end: number): string {
  const n = end - start;
  if (n > 24) return b.toString('latin1', start, end);
  let h = n;
  for (let i = start; i < end; i++) h = (h * 31 + b[i]!) | 0;
  const slot = h & 511;
  const cached = KEY_CACHE[slot]!;
  if (cached.length === n) {
    let same = true;
    for (let i = 0; i < n; i++) {
      if (cached.charCodeAt(i) !== b[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return cached;
  }
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(b[i]!);
  KEY_CACHE[slot] = s;
  return s;
}

/** Decodes the first value of `buf`; `end` is where it stopped (trailing bytes are the caller's). */
export function decodeFirst(buf: Uint8Array, options: DecodeOptions = {}): { value: BValue; end: number } {
  const d = new BencodeDecoder(options);
  let found: { value: BValue; end: number } | null = null;
  // stop at the first value, so trailing garbage is never parsed
  d.write(buf, (value, _s, end) => {
    found = { value, end };
    d.stop();
  });
  if (found === null) {
    d.end();
    throw new BencodeError(0, 'empty input: expected a bencoded value');
  }
  return found;
}

/** Decodes exactly one value filling all of `buf`. */
export function decode(buf: Uint8Array, options: DecodeOptions = {}): BValue {
  const { value, end } = decodeFirst(buf, options);
  if (end !== buf.byteLength) throw new BencodeError(end, 'trailing bytes after the value');
  return value;
}

/** Decodes every concatenated value in `buf`. */
export function decodeAll(buf: Uint8Array, options: DecodeOptions = {}): BValue[] {
  const d = new BencodeDecoder(options);
  const out: BValue[] = [];
  d.write(buf, (v) => out.push(v));
  d.end();
  return out;
}
