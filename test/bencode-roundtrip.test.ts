import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BencodeDecoder, decode, encode, EncodeError, fromJson, toJson, type BValue } from '../src/bencode/index.js';
import { randomChunks, randomValue, rng, seedFromEnv } from './helpers/random.js';

const RUNS = 400;

test('property: decode(encode(v)) equals v, and encode(decode(x)) is x byte for byte', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  for (let i = 0; i < RUNS; i++) {
    const v = randomValue(r);
    const x = encode(v);
    const back = decode(x);
    assert.deepEqual(back, v, `seed ${seed} run ${i}`);
    assert.deepEqual(encode(back), x, `seed ${seed} run ${i}`);
  }
});

test('property: 1-byte and random chunking decode the same values', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  for (let i = 0; i < 60; i++) {
    const values = Array.from({ length: 1 + (i % 4) }, () => randomValue(r));
    const input = Buffer.concat(values.map((v) => encode(v)));
    for (const chunks of [randomChunks(r, input, 1), randomChunks(r, input, 50)]) {
      const d = new BencodeDecoder();
      const out: BValue[] = [];
      for (const c of chunks) d.write(Buffer.from(c), (v) => out.push(v));
      d.end();
      assert.deepEqual(out, values, `seed ${seed} run ${i}`);
    }
  }
});

test('property: the JSON mapping round-trips every value, through JSON text', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  for (let i = 0; i < RUNS; i++) {
    const v = randomValue(r);
    const line = toJson(v);
    assert.ok(!line.includes('\n'), 'compact JSON is one line');
    const back = fromJson(JSON.parse(line));
    assert.deepEqual(encode(back), encode(v), `seed ${seed} run ${i}: ${line}`);
    // pretty output is the same JSON
    assert.deepEqual(JSON.parse(toJson(v, '  ')), JSON.parse(line));
    // and toJson(fromJson(j)) == j for the mapping's own output
    assert.equal(toJson(back), line);
  }
});

test('JSON mapping examples from design.md', () => {
  const cases: Array<[string, string]> = [
    ['4:spam', '"spam"'],
    ['3:\xff\x00\x01', '{"$hex":"ff0001"}'],
    ['i9007199254740992e', '{"$int":"9007199254740992"}'],
    ['i-9007199254740991e', '-9007199254740991'],
    ['d4:$hexi1ee', '{"$$hex":1}'],
    ['d1:$i1e2:$$i2ee', '{"$$":1,"$$$":2}'],
    ['d2:10i1e1:2i2ee', '{"10":1,"2":2}'],
    ['d1:a0:1:\xffi1ee', '{"$dict":[["a",""],[{"$hex":"ff"},1]]}'],
    ['d1:\xffd1:$i1eee', '{"$dict":[[{"$hex":"ff"},{"$$":1}]]}'],
    ['d9:__proto__i1ee', '{"__proto__":1}'],
    ['l3:\xed\xa0\x80e', '[{"$hex":"eda080"}]'],
    ['4:\xe6\x97\xa5x', '"日x"'],
  ];
  for (const [bencoded, json] of cases) {
    const v = decode(Buffer.from(bencoded, 'latin1'));
    assert.equal(toJson(v), json, bencoded);
    assert.deepEqual(encode(fromJson(JSON.parse(json))), Buffer.from(bencoded, 'latin1'), json);
  }
});

test('fromJson reads the tagged forms liberally and writes canonical bytes', () => {
  assert.deepEqual(encode(fromJson({ $int: '5' })), Buffer.from('i5e'));
  assert.deepEqual(encode(fromJson({ $hex: '6869' })), Buffer.from('2:hi'));
  assert.deepEqual(encode(fromJson({ b: 1, a: 2 })), Buffer.from('d1:ai2e1:bi1ee'));
  assert.deepEqual(encode(fromJson({ $dict: [['b', 1], [{ $hex: '61' }, 2]] })), Buffer.from('d1:ai2e1:bi1ee'));
  assert.deepEqual(encode(fromJson(1e5)), Buffer.from('i100000e'));
});

test('fromJson refuses what has no bencode form, naming the JSON path', () => {
  const bad: Array<[unknown, RegExp]> = [
    [null, /EncodeError: bencode has no null$/],
    [true, /no booleans/],
    [{ a: [1, 2.5] }, /EncodeError: at \.a\[1\]: bencode has no fractions: 2.5$/],
    [2 ** 60, /beyond ±\(2\^53−1\).*\$int/],
    [{ $hex: 'abc' }, /hex digit pairs/],
    [{ $hex: 'zz' }, /hex digit pairs/],
    [{ $int: '007' }, /no leading zeros/],
    [{ $int: '-0' }, /no leading zeros/],
    [{ $int: 5 }, /decimal integer string/],
    [{ $int: '1', x: 1 }, /no other key/],
    [{ $foo: 1 }, /unknown tag "\$foo"/],
    [{ $: 1 }, /unknown tag "\$"/],
    [{ $dict: [['a', 1], ['a', 2]] }, /duplicate dict key "a"/],
    [{ $dict: [['a']] }, /\[key, value\] pair/],
    [{ $dict: [[1, 1]] }, /must be a string or/],
    ['\ud800', /lone UTF-16 surrogate/],
  ];
  for (const [j, re] of bad) assert.throws(() => fromJson(j), re, JSON.stringify(j));
  let deep: unknown = 1;
  for (let i = 0; i < 600; i++) deep = [deep];
  assert.throws(() => fromJson(deep), /nesting deeper than 512 levels/);
});

test('the encoder refuses values with no bencode form', () => {
  assert.throws(() => encode(1.5), /no form for the number 1.5/);
  assert.throws(() => encode({ a: [null as unknown as number] }), /at \.a\[0\]: bencode has no form for null/);
  assert.throws(() => encode(new Map([['\u0100', 1]])), /binary strings/);
  assert.deepEqual(encode({ b: 'x', a: new Uint8Array([1]) }), Buffer.from('d1:a1:\x011:b1:xe', 'latin1'));
  assert.deepEqual(encode(-0), Buffer.from('i0e'));
});

/** A value `depth` containers deep: lists, dicts with UTF-8 keys, and dicts in $dict form. */
function deepValue(depth: number, shape: 'list' | 'object' | 'pairs' | 'mixed'): BValue {
  // the innermost value is not UTF-8: a {"$hex":…} leaf, one JSON level more
  let v: BValue = Buffer.from([0xff]);
  for (let i = 0; i < depth; i++) {
    const s = shape === 'mixed' ? (['list', 'object', 'pairs'] as const)[i % 3]! : shape;
    if (s === 'list') v = [1, v];
    else if (s === 'object') v = new Map<string, BValue>([['$a', 1], ['k', v]]);
    else v = new Map<string, BValue>([['\xff', v]]);
  }
  return v;
}

test('the JSON mapping works both ways at the deepest level the limits allow (5000), compact and pretty', () => {
  for (const shape of ['list', 'object', 'pairs', 'mixed'] as const) {
    const v = deepValue(5000, shape);
    const x = encode(v);
    const line = toJson(v);
    assert.ok(!line.includes('\n'));
    // (deepEqual would recurse: compare the bytes)
    assert.ok(encode(fromJson(JSON.parse(line), { maxDepth: 5000 })).equals(x), shape);
    const pretty = toJson(v, ' ');
    assert.ok(encode(fromJson(JSON.parse(pretty), { maxDepth: 5000 })).equals(x), shape);
    // one level more is refused, naming where
    const over = toJson([v]);
    const message = /^at \[0\]\S*…\(\d+ more\)…\S*: nesting deeper than 5000 levels$/;
    assert.throws(() => fromJson(JSON.parse(over), { maxDepth: 5000 }), (e: Error) => e instanceof EncodeError && message.test(e.message), shape);
  }
  // the pairs form is the deepest JSON: 3 levels per dict and the $hex leaf
  assert.ok(toJson(deepValue(5000, 'pairs')).startsWith('{"$dict":[[{"$hex":"ff"},{"$dict":[['));
});

test('maxDepth counts bencode containers: tags and $dict pairs do not add levels', () => {
  assert.deepEqual(encode(fromJson({ a: { $hex: 'ff' } }, { maxDepth: 1 })), Buffer.from('d1:a1:\xffe', 'latin1'));
  assert.deepEqual(encode(fromJson({ $dict: [[{ $hex: 'ff' }, { $int: '1' }]] }, { maxDepth: 1 })), Buffer.from('d1:\xffi1ee', 'latin1'));
  assert.throws(() => fromJson([[1]], { maxDepth: 1 }), /^EncodeError: at \[0\]: nesting deeper than 1 levels$/);
});
