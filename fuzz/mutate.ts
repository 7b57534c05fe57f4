/**
 * Input generators for the fuzz targets (fast-check arbitraries): random bytes, valid inputs
 * mutated (so that inputs get past a decoder's first checks), and structured values (bencode
 * built from a grammar). Every generator is a plain arbitrary, so fast-check shrinks what it
 * finds: a mutated seed shrinks to fewer, smaller mutations of the same seed.
 */
import fc from 'fast-check';
import { encode } from '../src/bencode/encoder.js';
import type { BValue } from '../src/bencode/types.js';
// a small seeded generator (mulberry32), for what an input derives from its hash: the tests' own
import { rng } from '../test/helpers/random.js';
export { rng };

/** FNV-1a over the bytes: how an input picks its own chunking and options, reproducibly. */
export function hash32(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}


/**
 * How a stream decoder is fed `input`, decided by the input itself so that a saved input
 * replays the same way: whole, one byte at a time, or in pieces of 1..64 bytes.
 */
export function chunks(input: Buffer, h = hash32(input)): Buffer[] {
  const mode = h % 4;
  if (mode === 0 || input.length === 0) return [input];
  if (mode === 1) {
    const out: Buffer[] = [];
    for (let i = 0; i < input.length; i++) out.push(input.subarray(i, i + 1));
    return out;
  }
  const r = rng(h);
  const out: Buffer[] = [];
  for (let i = 0; i < input.length; ) {
    const n = 1 + Math.floor(r() * (mode === 2 ? 8 : 64));
    out.push(input.subarray(i, i + n));
    i += n;
  }
  return out;
}

const INTERESTING_BYTES = [0x00, 0x01, 0x13, 0x20, 0x7f, 0x80, 0xfe, 0xff, 0x30, 0x39, 0x3a, 0x65, 0x69, 0x6c, 0x64, 0x2d, 0x0a, 0x0d, 0x22, 0x7b, 0x5b, 0x25, 0x26, 0x3d];
const INTERESTING_U32 = [0, 1, 2, 4, 5, 8, 9, 12, 13, 16, 17, 20, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x4000, 0x4001, 0x4009, 0x7fff, 0x8000, 0xffff, 0x10000, 0x100000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const INTERESTING_NUMBERS = ['0', '-0', '00', '1', '-1', '01', '255', '256', '65535', '65536', '16384', '16385', '2147483647', '2147483648', '4294967295', '4294967296', '9007199254740991', '9007199254740992', '-9007199254740993', '99999999999999999999', '1e3', '0x10', '134217728', '268435456', '1048576'];
const TOKENS = ['e', 'i', 'l', 'd', 'le', 'de', 'i0e', 'i-1e', '0:', '1:a', 'lle', 'dde', 'd1:a', '4:info', '5:index', '5:piece', '1:m', '1:t', '1:y', '1:q', '1:r', '%', '%00', '%ff', '&', '=', '&so=', '&tr=', '&xt=urn:btih:', '\n', '\r\n', '{', '}', '[', ']', '"', '\\', '\\u0000', ',', ':', 'null', '"$hex"', '"$int"', '"$dict"', '"__proto__"'];

export interface Mutation {
  op: number;
  at: number;
  len: number;
  value: number;
  count: number;
}

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  op: fc.integer({ min: 0, max: 10 }),
  at: fc.nat(),
  len: fc.nat({ max: 64 }),
  value: fc.nat(),
  count: fc.integer({ min: 1, max: 600 }),
});

/** `b` changed by `ops`, in order; `others` are where splices take bytes from. */
export function applyMutations(input: Buffer, ops: readonly Mutation[], others: readonly Buffer[]): Buffer {
  let b = Buffer.from(input);
  for (const m of ops) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    const end = Math.min(b.length, at + m.len);
    switch (m.op) {
      case 0: // flip a bit
        if (at < b.length) b[at] = b[at]! ^ (1 << (m.value % 8));
        break;
      case 1: // an interesting byte
        if (at < b.length) b[at] = INTERESTING_BYTES[m.value % INTERESTING_BYTES.length]!;
        break;
      case 2: // delete a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(end)]);
        break;
      case 3: {
        // insert bytes
        const r = rng(m.value);
        const ins = Buffer.alloc(m.len);
        for (let i = 0; i < ins.length; i++) ins[i] = Math.floor(r() * 256);
        b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
        break;
      }
      case 4: {
        // repeat a range (nesting, long lists, repeated parameters); bounded output
        const slice = b.subarray(at, end);
        const times = Math.min(m.count, Math.floor(65536 / Math.max(1, slice.length)));
        b = Buffer.concat([b.subarray(0, at), ...new Array<Buffer>(times).fill(slice), b.subarray(at)]);
        break;
      }
      case 5: {
        // splice in part of another input
        const o = others[m.value % Math.max(1, others.length)];
        if (o === undefined || o.length === 0) break;
        const from = m.count % o.length;
        b = Buffer.concat([b.subarray(0, at), o.subarray(from, from + m.len + 1), b.subarray(end)]);
        break;
      }
      case 6: // truncate
        b = b.subarray(0, at);
        break;
      case 7: {
        // replace a decimal number (bencode lengths and integers, JSON numbers, ports)
        let s = at;
        while (s < b.length && (b[s]! < 0x30 || b[s]! > 0x39)) s++;
        if (s >= b.length) break;
        let e = s;
        while (e < b.length && b[e]! >= 0x30 && b[e]! <= 0x39) e++;
        if (s > 0 && b[s - 1] === 0x2d) s--;
        const n = Buffer.from(INTERESTING_NUMBERS[m.value % INTERESTING_NUMBERS.length]!, 'latin1');
        b = Buffer.concat([b.subarray(0, s), n, b.subarray(e)]);
        break;
      }
      case 8: // a big-endian 32-bit field (frame lengths, indexes, offsets, actions)
        if (at + 4 <= b.length) b.writeUInt32BE(INTERESTING_U32[m.value % INTERESTING_U32.length]!, at);
        break;
      case 9: {
        // insert grammar tokens, maybe many
        const t = Buffer.from(TOKENS[m.value % TOKENS.length]!, 'latin1');
        const times = 1 + (m.count % 32 === 0 ? m.count : m.count % 4);
        b = Buffer.concat([b.subarray(0, at), ...new Array<Buffer>(times).fill(t), b.subarray(at)]);
        break;
      }
      default: // a 16-bit field (ports, pad lengths)
        if (at + 2 <= b.length) b.writeUInt16BE(INTERESTING_U32[m.value % INTERESTING_U32.length]! & 0xffff, at);
        break;
    }
  }
  return b;
}

/** A seed (a valid input) with a few mutations. */
export function mutatedFrom(seeds: readonly Buffer[], maxOps = 6): fc.Arbitrary<Buffer> {
  if (seeds.length === 0) return fc.uint8Array({ maxLength: 256 }).map((u) => Buffer.from(u));
  return fc
    .record({ seed: fc.nat({ max: seeds.length - 1 }), ops: fc.array(mutationArb, { minLength: 1, maxLength: maxOps }) })
    .map(({ seed, ops }) => applyMutations(seeds[seed]!, ops, seeds));
}

/** Inputs built by `gen`, sometimes mutated afterwards. */
export function structured(gen: fc.Arbitrary<Buffer>, maxOps = 3): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 3, arbitrary: gen },
    { weight: 2, arbitrary: fc.tuple(gen, fc.array(mutationArb, { minLength: 1, maxLength: maxOps })).map(([b, ops]) => applyMutations(b, ops, [])) },
  );
}

export const rawBytes = (maxLength = 512): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength }).map((u) => Buffer.from(u));

/** The usual mix: random bytes, mutated seeds, and structured inputs (mutated or not). */
export function mix(seeds: readonly Buffer[], gen: fc.Arbitrary<Buffer> | null, maxLength = 512): fc.Arbitrary<Buffer> {
  const parts: Array<fc.WeightedArbitrary<Buffer>> = [
    { weight: 1, arbitrary: rawBytes(maxLength) },
    { weight: 4, arbitrary: mutatedFrom(seeds) },
  ];
  if (gen !== null) parts.push({ weight: 4, arbitrary: structured(gen) });
  return fc.oneof(...parts);
}

// ---- bencode values from the grammar ----

const KEYS = ['', 'a', 'b', 'info', 'name', 'length', 'piece length', 'pieces', 'files', 'path', 'm', 'ut_metadata', 'ut_pex', 'metadata_size', 'msg_type', 'piece', 'total_size', 'added', 'added.f', 'added6', 'dropped', 'peers', 'peers6', 'interval', 'index', 't', 'y', 'q', 'r', 'a', 'e', 'id', 'nodes', 'values', 'token', '__proto__', 'constructor', '$hex', '$$x', '\u00e9', '\u0000'];

const bytesArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)),
  fc.constantFrom(...KEYS).map((k) => Buffer.from(k, 'utf8')),
  fc.constantFrom(6, 18, 20, 26, 32).chain((n) => fc.uint8Array({ minLength: n, maxLength: n * 3 }).map((u) => Buffer.from(u))),
);

const intArb: fc.Arbitrary<number | bigint> = fc.oneof(
  fc.integer({ min: -1000, max: 100000 }),
  fc.constantFrom(0, 1, 2, 3, 255, 256, 16384, 65535, 65536, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((b) => (b >= -9007199254740991n && b <= 9007199254740991n ? Number(b) : b)),
);

export function bvalueArb(keys: readonly string[] = KEYS, maxDepth = 5): fc.Arbitrary<BValue> {
  const { value } = fc.letrec<{ value: BValue }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', maxDepth, withCrossShrink: true },
      intArb,
      bytesArb,
      fc.array(tie('value'), { maxLength: 5 }),
      fc
        .array(fc.tuple(fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 6 })), tie('value')), { maxLength: 6 })
        .map((pairs) => new Map(pairs.map(([k, v]) => [Buffer.from(k, 'utf8').toString('latin1'), v] as const))),
    ),
  }));
  return value;
}

/** Canonical bencode of grammar values. */
export const bencodeArb = (keys?: readonly string[], maxDepth?: number): fc.Arbitrary<Buffer> => bvalueArb(keys, maxDepth).map((v) => encode(v));

/** A dict with the given fields drawn from their arbitraries (each present or not), plus extras. */
export function dictArb(fields: Record<string, fc.Arbitrary<BValue>>): fc.Arbitrary<Map<string, BValue>> {
  const entries = Object.entries(fields).map(([k, a]) => fc.option(a, { freq: 4 }).map((v) => [k, v] as const));
  return fc.tuple(fc.tuple(...entries), fc.array(fc.tuple(fc.constantFrom(...KEYS), bvalueArb(KEYS, 2)), { maxLength: 2 })).map(([fs, extra]) => {
    const m = new Map<string, BValue>();
    for (const [k, v] of extra) m.set(k, v);
    for (const [k, v] of fs) if (v !== null) m.set(k, v);
    return m;
  });
}
