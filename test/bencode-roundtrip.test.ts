import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BencodeDecoder, decode, encode, EncodeError, fromJson, fromJsonText, toJson, type BValue } from '../src/bencode/index.js';
import { FromJsonTextStream } from '../src/streams/from-json.js';
import { NdjsonError } from '../src/streams/ndjson-parse.js';
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
    // from the text, where repeated keys are looked for: the mapping's own output has none
    assert.deepEqual(encode(fromJsonText(line)), encode(v), `seed ${seed} run ${i}: ${line}`);
    assert.deepEqual(encode(fromJsonText(toJson(v, '  '))), encode(v), `seed ${seed} run ${i}: ${line}`);
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
    assert.ok(encode(fromJsonText(line, { maxDepth: 5000 })).equals(x), shape);
    assert.ok(encode(fromJson(JSON.parse(line), { maxDepth: 5000 })).equals(x), shape);
    const pretty = toJson(v, ' ');
    assert.ok(encode(fromJsonText(pretty, { maxDepth: 5000 })).equals(x), shape);
    // one level more is refused, naming where (the pairs form trips the check before JSON.parse)
    const over = toJson([v]);
    const message = shape === 'pairs' ? /^nesting deeper than 5000 levels \(JSON nested more than 15001 deep at column \d+\)$/ : /^at \[0\]\S*…\(\d+ more\)…\S*: nesting deeper than 5000 levels$/;
    assert.throws(() => fromJsonText(over, { maxDepth: 5000 }), (e: Error) => e instanceof EncodeError && message.test(e.message), shape);
  }
  // the pairs form is the deepest JSON: 3 levels per dict and the $hex leaf
  assert.ok(toJson(deepValue(5000, 'pairs')).startsWith('{"$dict":[[{"$hex":"ff"},{"$dict":[['));
});

test('maxDepth counts bencode containers: tags and $dict pairs do not add levels', () => {
  assert.deepEqual(encode(fromJson({ a: { $hex: 'ff' } }, { maxDepth: 1 })), Buffer.from('d1:a1:\xffe', 'latin1'));
  assert.deepEqual(encode(fromJson({ $dict: [[{ $hex: 'ff' }, { $int: '1' }]] }, { maxDepth: 1 })), Buffer.from('d1:\xffi1ee', 'latin1'));
  assert.throws(() => fromJson([[1]], { maxDepth: 1 }), /^EncodeError: at \[0\]: nesting deeper than 1 levels$/);
});

test('fromJsonText refuses a repeated object key, naming where and which', () => {
  const bad: Array<[string, string]> = [
    ['{"a":1,"a":2}', 'duplicate key "a"'],
    ['{"a":1,"b":{"c":1,"d":2,"c":3}}', 'at .b: duplicate key "c"'],
    ['[0,1,{"x":[{"y":1},{"z":1,"z":1}]}]', 'at [2].x[1]: duplicate key "z"'],
    // the same key written two ways
    ['{"a":1,"\\u0061":2}', 'duplicate key "a"'],
    ['{"$$a":1,"$$a":2}', 'duplicate key "$$a"'],
    ['{"__proto__":1,"__proto__":2}', 'duplicate key "__proto__"'],
    ['{"a\\"b":1,"a\\"b":2}', 'duplicate key "a\\"b"'],
    // tags are keys too
    ['{"$hex":"00","$hex":"01"}', 'duplicate key "$hex"'],
    ['{"k":{"$int":"1","$int":"2"}}', 'at .k: duplicate key "$int"'],
    ['{"$dict":[["a",1]],"$dict":[["b",1]]}', 'duplicate key "$dict"'],
    ['{"$dict":[[{"$hex":"ff","$hex":"fe"},1]]}', 'at .$dict[0][0]: duplicate key "$hex"'],
    // and inside $dict: the same key bytes twice, however written
    ['{"$dict":[["a",1],["a",2]]}', 'at .$dict[1][0]: duplicate dict key "a"'],
    ['{"$dict":[["a",1],[{"$hex":"61"},2]]}', 'at .$dict[1][0]: duplicate dict key "a"'],
    ['{"$dict":[[{"$hex":"ff"},1],[{"$hex":"FF"},2]]}', 'at .$dict[1][0]: duplicate dict key {"$hex":"ff"}'],
    [' { "a" : 1 ,\t"a"\r: 2 } ', 'duplicate key "a"'],
  ];
  for (const [text, message] of bad) {
    assert.throws(() => fromJsonText(text), (e: Error) => e instanceof EncodeError && e.message === message, `${text}: ${(() => { try { fromJsonText(text); return 'no error'; } catch (e) { return (e as Error).message; } })()}`);
  }
  // look-alikes that are not repeats
  const good: Array<[string, string]> = [
    ['{"a:b":"c:d","a":"x\\":\\"y"}', 'd1:a5:x":"y3:a:b3:c:de'],
    ['{"a":"\\\\","b\\\\":"\\"{[:"}', 'd1:a1:\\2:b\\4:"{[:e'],
    ['{"a":1,"$$a":2,"$$$a":3}', 'd3:$$ai3e2:$ai2e1:ai1ee'],
    ['[{"a":1},{"a":2}]', 'ld1:ai1eed1:ai2eee'],
    ['"x:y"', '3:x:y'],
  ];
  for (const [text, bencoded] of good) assert.deepEqual(encode(fromJsonText(text)), Buffer.from(bencoded, 'latin1'), text);
  // a repeat 5,000 levels down, path elided in the middle
  const deep = '{"k":'.repeat(4999) + '{"a":1,"a":1}' + '}'.repeat(4999);
  assert.throws(() => fromJsonText(deep, { maxDepth: 5000 }), /^EncodeError: at \.k\.k.*…\(4983 more\)….*\.k: duplicate key "a"$/);
});

test('property: a member repeated anywhere in the mapping\'s JSON is found', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  let tried = 0;
  for (let i = 0; i < RUNS && tried < 100; i++) {
    const text = toJson(randomValue(r));
    // repeat the first member of some object: `{"key":value` → `{"key":value,"key":value`
    const starts = [...text.matchAll(/\{"(?:[^"\\]|\\.)*":/g)].map((m) => m.index!).filter((at) => !text.startsWith('{"$', at) || text.startsWith('{"$$', at));
    if (starts.length === 0) continue;
    tried++;
    const at = starts[Math.floor(r() * starts.length)]!;
    const end = memberEnd(text, at + 1);
    const member = text.slice(at + 1, end);
    const doubled = text.slice(0, end) + ',' + member + text.slice(end);
    assert.throws(() => fromJsonText(doubled), /duplicate key/, `seed ${seed} run ${i}: ${doubled}`);
  }
  assert.ok(tried > 10, `seed ${seed}: only ${tried} objects`);
});

/** Where the member starting at `i` (a key) ends: at the `,` or `}` closing it at its level. */
function memberEnd(text: string, i: number): number {
  let depth = 0;
  for (; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      for (i++; text[i] !== '"'; i++) if (text[i] === '\\') i++;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      if (depth === 0) return i;
      depth--;
    } else if (c === ',' && depth === 0) return i;
  }
  throw new Error('no end');
}

test('nesting far beyond the limit is refused before JSON.parse builds it', () => {
  const text = '['.repeat(4_000_000) + ']'.repeat(4_000_000);
  const t0 = process.hrtime.bigint();
  assert.throws(() => fromJsonText(text), /^EncodeError: nesting deeper than 512 levels \(JSON nested more than 1537 deep at column 1538\)$/);
  assert.ok(Number(process.hrtime.bigint() - t0) / 1e6 < 1000, 'refused at once');
  assert.throws(() => fromJsonText('[1,'), SyntaxError);
});

test('FromJsonTextStream: 1-byte and random chunking give the same values, and the same errors with line numbers', async () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const values = Array.from({ length: 30 }, () => randomValue(r));
  values.push(deepValue(600, 'mixed'));
  const text = Buffer.from(values.map((v) => toJson(v)).join('\n') + '\n\n' + toJson(values[0]!, '  ').replace(/\n/g, ' ') + '\r\n');
  const want = Buffer.concat([...values, values[0]!].map((v) => encode(v)));
  for (const chunks of [[text], [...text].map((c) => Buffer.from([c])), randomChunks(r, text, 40)]) {
    const out = await collect(chunks, { maxDepth: 600 });
    assert.ok(Buffer.concat(out.map((v) => encode(v))).equals(want), `seed ${seed}`);
  }
  const bad = Buffer.from('1\n{"a":{"b":1,"b":2}}\n3\n');
  for (const chunks of [[bad], [...bad].map((c) => Buffer.from([c])), randomChunks(r, bad, 5)]) {
    await assert.rejects(collect(chunks), (e: Error) => e instanceof NdjsonError && e.line === 2 && e.message === '2: at .a: duplicate key "b"');
  }
  await assert.rejects(collect([Buffer.from('[[[1]]]\n')], { maxDepth: 2 }), (e: Error) => e instanceof NdjsonError && e.message === '1: at [0][0]: nesting deeper than 2 levels');
  await assert.rejects(collect([Buffer.from('\n[1,]\n')]), (e: Error) => e instanceof NdjsonError && e.line === 2 && e.message.startsWith('2: invalid JSON: '));
});

async function collect(chunks: Buffer[], options: { maxDepth?: number } = {}): Promise<BValue[]> {
  const out: BValue[] = [];
  const s = new FromJsonTextStream(options);
  s.on('data', (v: BValue) => out.push(v));
  const done = new Promise<void>((resolve, reject) => {
    s.on('end', resolve);
    s.on('error', reject);
  });
  for (const c of chunks) s.write(c);
  s.end();
  await done;
  return out;
}

test('toJson shares its frames between calls: a failed call, another indent, a call from inside a call', () => {
  const v = new Map<string, BValue>([['a', [1, new Map<string, BValue>([['\xff', [2]]])]]]);
  const line = '{"a":[1,{"$dict":[[{"$hex":"ff"},[2]]]}]}';
  assert.throws(() => toJson([[1, undefined as unknown as BValue]]), TypeError);
  assert.equal(toJson(v), line);
  assert.equal(toJson(v, '\t'), '{\n\t"a": [\n\t\t1,\n\t\t{\n\t\t\t"$dict": [\n\t\t\t\t[{"$hex":"ff"}, [\n\t\t\t\t\t2\n\t\t\t\t]]\n\t\t\t]\n\t\t}\n\t]\n}');
  assert.equal(toJson(v), line);
  class Nosy extends Map<string, BValue> {
    override get size(): number {
      assert.equal(toJson(v), line);
      return super.size;
    }
  }
  assert.equal(toJson([new Nosy([['b', [3]]]), v]), `[{"b":[3]},${line}]`);
});
