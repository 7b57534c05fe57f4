import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BencodeDecoder, BencodeError, decode, decodeAll, decodeFirst, encode, type BEncodable, type BValue, type DecodeOptions, type Span } from '../src/bencode/index.js';
import { randomChunks, randomValue, rng, seedFromEnv } from './helpers/random.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Decodes all values of `input` fed in the given chunks. */
function decodeChunks(chunks: Buffer[], options: DecodeOptions = {}): BValue[] {
  const d = new BencodeDecoder(options);
  const out: BValue[] = [];
  for (const c of chunks) d.write(c, (v) => out.push(v));
  d.end();
  return out;
}

function oneByte(buf: Buffer): Buffer[] {
  return [...buf].map((c) => Buffer.from([c]));
}

/** The error (message and offset) for `input`, whole, byte by byte and in random chunks: all must agree. */
function errorOf(input: Buffer, options: DecodeOptions = {}): BencodeError {
  const errs: BencodeError[] = [];
  const r = rng(7);
  for (const chunks of [[input], oneByte(input), randomChunks(r, input, 5)]) {
    try {
      decodeChunks(chunks, options);
      assert.fail(`no error for ${JSON.stringify(input.toString('latin1'))}`);
    } catch (e) {
      assert.ok(e instanceof BencodeError, `not a BencodeError: ${String(e)}`);
      errs.push(e);
    }
  }
  for (const e of errs) assert.equal(e.message, errs[0]!.message);
  return errs[0]!;
}

test('decodes every type', () => {
  assert.deepEqual(decode(b('i42e')), 42);
  assert.deepEqual(decode(b('i-42e')), -42);
  assert.deepEqual(decode(b('i0e')), 0);
  assert.deepEqual(decode(b('4:spam')), Buffer.from('spam'));
  assert.deepEqual(decode(b('0:')), Buffer.alloc(0));
  assert.deepEqual(decode(b('l4:spami42ee')), [Buffer.from('spam'), 42]);
  assert.deepEqual(decode(b('le')), []);
  assert.deepEqual(decode(b('de')), new Map());
  const d = decode(b('d3:bar4:spam3:fooi42ee')) as Map<string, BValue>;
  assert.deepEqual([...d.keys()], ['bar', 'foo']);
  assert.deepEqual(d.get('foo'), 42);
});

test('integers are exact at any size', () => {
  assert.equal(decode(b('i9007199254740991e')), 9007199254740991);
  assert.equal(decode(b('i-9007199254740991e')), -9007199254740991);
  assert.equal(decode(b('i9007199254740992e')), 9007199254740992n);
  assert.equal(decode(b('i-123456789012345678901234567890e')), -123456789012345678901234567890n);
  assert.equal(decode(b('i000000000000000000001e'), { allowLeadingZeros: true }), 1);
  const big = '9'.repeat(4096);
  assert.equal(decode(b(`i${big}e`)), BigInt(big));
  assert.match(errorOf(b(`i${big}9e`)).message, /^byte 4097: integer longer than 4096 digits$/);
});

test('__proto__ and constructor keys are plain data', () => {
  const d = decode(b('d11:constructori1e9:__proto__d4:evili1eee'), { allowUnsorted: true }) as Map<string, BValue>;
  assert.ok(d instanceof Map);
  assert.equal(d.get('constructor'), 1);
  assert.ok(d.get('__proto__') instanceof Map);
  assert.equal(({} as Record<string, unknown>)['evil'], undefined);
});

test('malformed inputs: message and offset of the first byte that cannot be accepted', () => {
  const table: Array<[string, number, RegExp]> = [
    ['i03e', 2, /leading zeros are not allowed in integers/],
    ['i00e', 2, /leading zeros/],
    ['i-0e', 2, /'-0' and leading zeros are not allowed/],
    ['ie', 1, /expected a digit or '-' after 'i', got 'e'/],
    ['i-e', 2, /expected a digit after '-', got 'e'/],
    ['i--1e', 2, /expected a digit after '-'/],
    ['i1.5e', 2, /expected a digit or 'e' in integer, got '.'/],
    ['i12', 3, /unexpected end of input: expected a digit or 'e'/],
    ['03:abc', 1, /leading zeros are not allowed in string lengths/],
    ['-3:abc', 0, /expected 'i', 'l', 'd' or a digit to start a value, got '-'/],
    ['l-3:e', 1, /got '-'/],
    ['3abc', 1, /expected ':' after string length, got 'a'/],
    ['5:abc', 5, /unexpected end of input: expected 2 more string bytes/],
    ['3', 1, /unexpected end of input: expected ':' after string length/],
    ['l', 1, /unexpected end of input: expected a list item or 'e'/],
    ['d', 1, /unexpected end of input: expected a dict key or 'e'/],
    ['d1:a', 4, /unexpected end of input: expected a dict value/],
    ['li1e', 4, /unexpected end of input/],
    ['di1ei2ee', 1, /expected a string dict key or 'e', got 'i'/],
    ['dlei1ee', 1, /expected a string dict key or 'e', got 'l'/],
    ['d1:ae', 4, /expected a dict value, got 'e'/],
    ['d1:bi1e1:ai2ee', 7, /dict key "a" is out of order/],
    ['d1:ai1e1:ai2ee', 7, /duplicate dict key "a"/],
    ['e', 0, /got 'e'/],
    ['x', 0, /got 'x'/],
    [' i1e', 0, /got byte 0x20/],
    ['i1ex', 3, /got 'x'/],
    ['\u00ff', 0, /got byte 0xff/],
  ];
  for (const [input, offset, re] of table) {
    const e = errorOf(b(input));
    assert.equal(e.offset, offset, `${JSON.stringify(input)}: ${e.message}`);
    assert.match(e.message, re, JSON.stringify(input));
    assert.ok(e.message.startsWith(`byte ${offset}: `), e.message);
  }
});

test('no input hangs: l-3:e and friends end with an error at once', () => {
  for (const s of ['l-3:e', 'd-1:e', '99999999999999999999:', 'i', 'l'.repeat(10)]) {
    assert.throws(() => decodeAll(b(s)), BencodeError);
  }
});

test('nesting 100000 deep is an error, not a crash; 100 deep is always fine', () => {
  const deep = b('l'.repeat(100000) + 'e'.repeat(100000));
  const e = errorOf(deep);
  assert.equal(e.offset, 512);
  assert.match(e.message, /nesting deeper than 512 levels/);
  const ok = b('l'.repeat(100) + 'e'.repeat(100));
  assert.ok(Array.isArray(decode(ok, { maxDepth: 100 })));
  const dd = b('d1:a'.repeat(512) + 'i1e' + 'e'.repeat(512));
  assert.ok(decode(dd) instanceof Map);
});

test('the deepest nesting --max-depth allows (5000) decodes in any chunking and encodes back', () => {
  const depth = 5000;
  for (const open of ['l', 'd1:a', 'd1:\xff']) {
    const input = b(open.repeat(depth) + 'i1e' + 'e'.repeat(depth));
    const r = rng(11);
    for (const chunks of [[input], oneByte(input), randomChunks(r, input, 7)]) {
      const out = decodeChunks(chunks, { maxDepth: depth });
      assert.equal(out.length, 1);
      // encode() walks the same 5,000 levels (deepEqual would recurse)
      assert.ok(encode(out[0]!).equals(input), open);
    }
    const over = b(open.repeat(depth + 1) + 'i1e' + 'e'.repeat(depth + 1));
    const e = errorOf(over, { maxDepth: depth });
    assert.equal(e.message, `byte ${open.length * depth}: nesting deeper than 5000 levels`);
  }
});

test('the encoder takes values nested up to its own limit (10000), and says so beyond', () => {
  let v: BValue = 1;
  for (let i = 0; i < 10000; i++) v = i % 2 === 0 ? [v] : new Map([['k', v]]);
  const x = encode(v);
  assert.equal(x.length, 5000 * 'l'.length + 5000 * 'd1:k'.length + 3 + 10000);
  assert.ok(encode(decode(x, { maxDepth: 10000 })).equals(x));
  let o: BEncodable = 'x';
  for (let i = 0; i < 10000; i++) o = { k: o };
  assert.equal(encode(o).length, 10000 * 'd1:k'.length + 3 + 10000);
  const e = (() => {
    try {
      encode([v]);
    } catch (err) {
      return err as Error;
    }
    return null;
  })();
  assert.ok(e !== null);
  // one readable line: the 10,000-part path is elided in the middle
  assert.match(e.message, /^at \[0\]\.k\[0\]\.k.*…\(9984 more\)….*: nesting deeper than 10000 levels$/);
  assert.ok(e.message.length < 200, e.message);
});

test('string and value size limits', () => {
  assert.match(errorOf(b('99999999999999999999:'), {}).message, /string length exceeds the limit of 134217728 bytes/);
  assert.match(errorOf(b('11:hello world'), { maxStringLength: 10 }).message, /^byte 1: string length exceeds the limit of 10 bytes/);
  assert.match(errorOf(b('l5:hello5:worlde'), { maxValueSize: 10 }).message, /value exceeds the limit of 10 bytes/);
  assert.deepEqual(decode(b('l5:hello5:worlde'), { maxValueSize: 16 }), [Buffer.from('hello'), Buffer.from('world')]);
});

test('lenient mode accepts the forms real files contain and says so', () => {
  const seen: string[] = [];
  const opts: DecodeOptions = { allowUnsorted: true, allowDuplicates: true, allowLeadingZeros: true, onLenient: (k, at) => seen.push(`${k}@${at}`) };
  const d = decode(b('d1:bi1e1:ai2e1:bi03ee'), opts) as Map<string, BValue>;
  assert.deepEqual([...d.entries()], [['b', 3], ['a', 2]]);
  assert.deepEqual(seen, ['unsorted-keys@7', 'duplicate-keys@13', 'leading-zeros@18']);
  assert.equal(decode(b('03:abc'), opts).toString(), 'abc');
  // unsorted allowed but a duplicate that is not adjacent is still refused
  assert.match(errorOf(b('d1:bi1e1:ai2e1:bi3ee'), { allowUnsorted: true }).message, /^byte 13: duplicate dict key "b"/);
});

test('concatenated values stream out one by one, in any chunking', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const input = b('i1e4:spamli1ei2eed1:ad1:bleee0:i-99999999999999999999e');
  const whole = decodeAll(input);
  assert.equal(whole.length, 6);
  assert.deepEqual(decodeChunks(oneByte(input)), whole, `seed ${seed}`);
  for (let i = 0; i < 50; i++) assert.deepEqual(decodeChunks(randomChunks(r, input, 7)), whole, `seed ${seed}`);
  // each value is emitted as soon as its last byte arrives
  const d = new BencodeDecoder();
  const got: BValue[] = [];
  d.write(b('i1'), (v) => got.push(v));
  assert.equal(got.length, 0);
  d.write(b('ei'), (v) => got.push(v));
  assert.deepEqual(got, [1]);
  assert.equal(d.idle, false);
});

test('spans give the raw bytes of any container or string (the info hash comes from them)', () => {
  // unsorted keys inside info: re-encoding would change the bytes, the span does not
  const raw = b('d8:announce3:url4:infod6:lengthi1e4:name1:xe1:zi0ee');
  const infoRaw = b('d6:lengthi1e4:name1:xe');
  const spans = new WeakMap<object, Span>();
  const top = decode(raw, { spans }) as Map<string, BValue>;
  const info = top.get('info') as Map<string, BValue>;
  const s = spans.get(info)!;
  assert.deepEqual(raw.subarray(s.start, s.end), infoRaw);
  const name = info.get('name') as Buffer;
  assert.deepEqual(spans.get(name), { start: raw.indexOf('1:x'), end: raw.indexOf('1:x') + 3 });
  // spans are absolute across chunks
  const spans2 = new WeakMap<object, Span>();
  const out = decodeChunks([b('i5e'), ...oneByte(raw)], { spans: spans2 });
  const info2 = (out[1] as Map<string, BValue>).get('info') as object;
  assert.deepEqual(spans2.get(info2), { start: s.start + 3, end: s.end + 3 });
});

test('decodeFirst leaves trailing bytes to the caller; decode refuses them', () => {
  const { value, end } = decodeFirst(b('de\ntrailing junk'));
  assert.deepEqual(value, new Map());
  assert.equal(end, 2);
  assert.throws(() => decode(b('dejunk')), /byte 2: trailing bytes after the value/);
  assert.throws(() => decode(b('')), /empty input/);
});

test('a decoder that failed stays failed', () => {
  const d = new BencodeDecoder();
  assert.throws(() => d.write(b('x'), () => {}), BencodeError);
  assert.throws(() => d.write(b('i1e'), () => {}), /byte 0/);
});

test('decoding a string never copies when it lies inside one chunk', () => {
  const input = b('5:hello');
  const v = decode(input) as Buffer;
  assert.equal(v.buffer, input.buffer);
  assert.deepEqual(encode(v), Buffer.from('5:hello'));
});

test('copyStrings: a caller that overwrites its chunk after each write still gets every value intact', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  for (let k = 0; k < 200; k++) {
    const values = Array.from({ length: 1 + Math.floor(r() * 4) }, () => randomValue(r));
    const input = Buffer.concat(values.map((v) => encode(v)));
    for (const chunks of [oneByte(input), randomChunks(r, input, 7), [input]]) {
      // one reused chunk buffer, scribbled over after every write, as a reader into reused memory does
      const scratch = Buffer.alloc(input.length);
      const d = new BencodeDecoder({ copyStrings: true });
      const out: BValue[] = [];
      for (const c of chunks) {
        c.copy(scratch);
        d.write(scratch.subarray(0, c.length), (v) => out.push(v));
        scratch.fill(0xaa);
      }
      d.end();
      assert.deepEqual(out, values, `seed ${seed}`);
    }
  }
});
