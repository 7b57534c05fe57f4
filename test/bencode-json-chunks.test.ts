import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toJson, toJsonChunks, type BValue } from '../src/bencode/index.js';
import { JsonLinesStream } from '../src/streams/json-lines.js';
import { NdjsonError, NdjsonLineParser, type NdjsonLine } from '../src/streams/ndjson-parse.js';
import { bytes, int, randomChunks, randomValue, rng, seedFromEnv } from './helpers/random.js';

const RUNS = 300;

// characters of every UTF-8 length and every kind JSON.stringify treats apart: controls
// (escaped as \uXXXX or \n), quote and backslash, U+2028, '$' (a key gets one more), and
// characters beyond U+FFFF (a surrogate pair in JS, 4 bytes in UTF-8)
const CHARS = ['a', ' ', '$', '"', '\\', '\x00', '\x01', '\n', '\x1f', '\x7f', 'é', 'ß', '日', '\u2028', '\uffff', '😀', '\u{10ffff}', '𝄞'];

function randomText(r: () => number, max: number): string {
  let s = '';
  const n = int(r, 0, max);
  for (let i = 0; i < n; i++) s += CHARS[int(r, 0, CHARS.length - 1)]!;
  return s;
}

/** A byte string: UTF-8 text of all kinds of characters, or bytes that are (mostly) not UTF-8. */
function randomBytes(r: () => number, max: number): Buffer {
  if (r() < 0.3) return bytes(r, int(r, 0, max));
  const b = Buffer.from(randomText(r, max), 'utf8');
  // now and then a text that is not UTF-8 only at its very end: cut inside its last character
  return r() < 0.1 && b.length > 1 && b[b.length - 1]! >= 0x80 ? b.subarray(0, b.length - 1) : b;
}

/** randomValue's shapes, with strings and keys of random text (some longer than the slices). */
function randomTextValue(r: () => number, depth = 0): BValue {
  const k = depth > 4 ? int(r, 0, 1) : int(r, 0, 4);
  if (k === 0) return r() < 0.5 ? randomValue(r, 7) : randomBytes(r, 60);
  if (k === 1) return randomBytes(r, 60);
  if (k === 2) return Array.from({ length: int(r, 0, 4) }, () => randomTextValue(r, depth + 1));
  const keys = Array.from({ length: int(r, 0, 4) }, () => randomBytes(r, r() < 0.2 ? 60 : 8).toString('latin1'));
  keys.sort();
  return new Map(keys.map((key) => [key, randomTextValue(r, depth + 1)]));
}

function chunked(v: BValue, indent: string, chunkSize: number): { text: string; pieces: string[] } {
  const pieces: string[] = [];
  const rest = toJsonChunks(v, (p) => pieces.push(p), indent, chunkSize);
  return { text: pieces.join('') + rest, pieces };
}

test('property: toJsonChunks gives toJson\'s text in any chunk size, compact and indented', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  for (let i = 0; i < RUNS; i++) {
    const v = r() < 0.7 ? randomTextValue(r) : randomValue(r);
    for (const indent of ['', '  ']) {
      const want = toJson(v, indent);
      for (const size of [1, 2, 3, 4, 5, 7, 13, int(r, 1, 200), 1 << 20]) {
        const { text, pieces } = chunked(v, indent, size);
        assert.equal(text, want, `seed ${seed} run ${i} chunk ${size} indent '${indent}'`);
        for (const p of pieces) assert.ok(p.length >= size, `seed ${seed} run ${i}: a piece emitted before the chunk was full`);
      }
    }
    // toJson's own slice path (byte strings beyond 64 KiB): text of every kind, cut anywhere
    if (i % 30 === 0) {
      const big = Buffer.concat([Buffer.alloc(int(r, 65530, 65536), 'a'), Buffer.from(randomText(r, 3000), 'utf8')]);
      assert.equal(toJson(big), JSON.stringify(big.toString('utf8')), `seed ${seed} run ${i}`);
      assert.equal(toJson(new Map([[big.toString('latin1'), 1]])), `{${JSON.stringify(big.toString('utf8'))}:1}`, `seed ${seed} run ${i}`);
    }
  }
});

test('byte strings and keys beyond a slice are written slice by slice: every piece stays near the chunk size', () => {
  const kib = 1024;
  const cases: Array<[string, BValue, string]> = [];
  const controls = Buffer.alloc(300 * kib, 1);
  cases.push(['control characters (6 each)', controls, JSON.stringify(controls.toString('utf8'))]);
  const hex = Buffer.alloc(300 * kib, 0xff);
  cases.push(['not UTF-8', [hex, 1], `[{"$hex":"${hex.toString('hex')}"},1]`]);
  // 4-byte characters that straddle every slice edge (64 KiB is not a multiple of 4 after the 'a')
  const astral = Buffer.from('a' + '😀'.repeat(70 * kib), 'utf8');
  cases.push(['4-byte characters', astral, JSON.stringify(astral.toString('utf8'))]);
  const dollarKey = '$' + '\x01'.repeat(100 * kib);
  cases.push(['a long key starting with $', new Map([[dollarKey, 1]]), `{${JSON.stringify('$' + dollarKey)}:1}`]);
  const rawKey = Buffer.concat([Buffer.from([0xff]), Buffer.alloc(100 * kib, 0x22)]).toString('latin1');
  cases.push(['a long key not UTF-8', new Map([[rawKey, 1], ['\xff', 2]]), `{"$dict":[[{"$hex":"${Buffer.from(rawKey, 'latin1').toString('hex')}"},1],[{"$hex":"ff"},2]]}`]);
  for (const [name, v, want] of cases) {
    assert.equal(toJson(v), want, name);
    for (const size of [1000, 64 * kib, 1024 * kib]) {
      const { text, pieces } = chunked(v, '', size);
      assert.equal(text, want, name);
      const slice = Math.min(size, 64 * kib);
      // a piece passes the chunk size by at most a slice's worth (6 characters a byte at worst)
      for (const p of pieces) assert.ok(p.length < size + 6 * slice + 16, `${name}: a piece of ${p.length} for chunks of ${size}`);
      if (size < want.length / 2) assert.ok(pieces.length >= 2, name);
    }
    assert.equal(chunked(v, '  ', 1000).text, toJson(v, '  '), name);
  }
});

test('toJsonChunks: an emit that calls toJson (another indent) leaves the value it is writing alone', () => {
  const v = [new Map<string, BValue>([['a', [1, Buffer.alloc(50, 0xff)]], ['b', Buffer.from('x'.repeat(100))]]), [[2]]];
  const inner = new Map<string, BValue>([['k', [3, [4]]]]);
  for (const indent of ['', '  ', '\t']) {
    const seen: string[] = [];
    const { text } = (() => {
      const pieces: string[] = [];
      const rest = toJsonChunks(v, (p) => {
        pieces.push(p);
        seen.push(toJson(inner, indent === '' ? ' ' : ''));
      }, indent, 7);
      return { text: pieces.join('') + rest };
    })();
    assert.equal(text, toJson(v, indent));
    assert.ok(seen.length > 5);
    for (const s of seen) assert.equal(s, toJson(inner, indent === '' ? ' ' : ''));
  }
  assert.throws(() => toJsonChunks(v, () => {}, '', 0), RangeError);
  // an emit that throws leaves the writer usable
  assert.throws(() => toJsonChunks(v, () => {
    throw new Error('full');
  }, '', 3), /full/);
  assert.equal(chunked(v, '', 3).text, toJson(v));
});

test('JsonLinesStream writes a value in pieces of about 1 MiB, each line whole', async () => {
  const big = Buffer.alloc(3 * 1024 * 1024, 0xfe);
  const values: BValue[] = [1, [big, Buffer.from('é\x01')], new Map([['k', big]])];
  for (const pretty of [false, true]) {
    const s = new JsonLinesStream({ pretty });
    const out: Buffer[] = [];
    s.on('data', (c: Buffer) => out.push(c));
    const done = new Promise((resolve, reject) => s.on('end', resolve).on('error', reject));
    for (const v of values) s.write(v);
    s.end();
    await done;
    assert.equal(Buffer.concat(out).toString(), values.map((v) => toJson(v, pretty ? '  ' : '') + '\n').join(''));
    assert.ok(out.length >= 12, `${out.length} pieces`);
    for (const c of out) assert.ok(c.length <= 1.5 * 1024 * 1024, `a piece of ${c.length} bytes`);
  }
});

function parseAll(parser: NdjsonLineParser, chunks: Buffer[]): NdjsonLine[] {
  const out: NdjsonLine[] = [];
  for (const c of chunks) parser.write(c, (l) => out.push(l));
  parser.end((l) => out.push(l));
  return out;
}

test('NdjsonLineParser: a line longer than a string can be (in characters, not bytes) is refused naming it, in any chunking', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  // the limit lowered to 10 characters: 10 characters of 4 bytes each (20 UTF-16 units) are too many,
  // 5 of them (10 units, 20 bytes) are not; a `\r` before the newline is no part of the line
  const fits = ['"日日日日日日日日"', '"😀😀😀😀"', '"aaaaaaaa"\r', '"é😀éé日"'];
  const tooLong = ['"😀😀😀😀😀"', '"aaaaaaaaa"', '"aaaaaaaa"\r\r', '"日日日日日日日日日"'];
  for (const t of fits) assert.ok(Buffer.byteLength(t) > 10 || t.endsWith('\r'), t);
  const ok = Buffer.from(fits.join('\n') + '\n');
  const want = fits.map((t) => JSON.parse(t.replace(/\r$/, '')) as string);
  for (const chunks of [[ok], [...ok].map((c) => Buffer.from([c])), randomChunks(r, ok, 7)]) {
    assert.deepEqual(parseAll(new NdjsonLineParser(1000, undefined, 10), chunks).map((l) => l.value), want, `seed ${seed}`);
  }
  for (const [i, t] of tooLong.entries()) {
    const input = Buffer.from(`1\n${t}\n2\n`);
    for (const chunks of [[input], [...input].map((c) => Buffer.from([c])), randomChunks(r, input, 7)]) {
      assert.throws(() => parseAll(new NdjsonLineParser(1000, undefined, 10), chunks),
        (e: Error) => e instanceof NdjsonError && e.line === 2 && /^2: line longer than 10 characters, the most one JSON text can have/.test(e.message),
        `seed ${seed} case ${i}`);
    }
    // without a newline at the end
    assert.throws(() => parseAll(new NdjsonLineParser(1000, undefined, 10), [...Buffer.from(`1\n${t}`)].map((c) => Buffer.from([c]))), /^NdjsonError: 2: line longer than 10 characters/);
  }
  // refused as soon as it is too long, not gathered to its end first
  const endless = new NdjsonLineParser(1e6, undefined, 10);
  let fed = 0;
  assert.throws(() => {
    for (const c of Buffer.from('1\n"' + '日'.repeat(1000))) {
      endless.write(Buffer.from([c]), () => {});
      fed++;
    }
  }, /^NdjsonError: 2: line longer than 10 characters/);
  assert.equal(fed, 2 + 1 + 3 * 10, 'refused at the first byte of its 12th character');
  // the byte limit still comes first when it is lower
  assert.throws(() => parseAll(new NdjsonLineParser(12, undefined, 10), [Buffer.from('"😀😀😀😀😀"\n')]), /^NdjsonError: 1: line longer than 12 bytes$/);
});
