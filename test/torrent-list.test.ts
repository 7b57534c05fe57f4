import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addAbortSignal, PassThrough, Readable } from 'node:stream';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseArgs } from '../src/cli/args.js';
import { UsageError } from '../src/cli/errors.js';
import { formatListLine, parseListLine, readTorrentList, TorrentListError, type TorrentListItem, type TorrentRequest } from '../src/cli/torrent-list.js';
import { MAX_RATE, parseRate } from '../src/cli/units.js';
import { CLI } from './helpers/cli.js';
import { randomChunks, rng, seedFromEnv } from './helpers/random.js';
import { makeTorrent } from './helpers/torrent.js';

const HASH = 'c12fe1c06bba254a9dc9f519b335aa7c1367a88a';
const MAGNET = `magnet:?xt=urn:btih:${HASH}&dn=x&tr=http%3A%2F%2Ft%3A1%2Fa`;

/** An item as plain data: a request's fields, or an error's message. */
type Plain = TorrentRequest | { error: string; where: string; line: number };

function plain(item: TorrentListItem): Plain {
  if (item instanceof TorrentListError) return { error: item.message, where: item.where, line: item.line };
  return { ...item };
}

async function collect(source: AsyncIterable<Uint8Array | string>, name = 'list', maxLine?: number): Promise<Plain[]> {
  const out: Plain[] = [];
  for await (const item of readTorrentList(source, name, maxLine === undefined ? {} : { maxLine })) out.push(plain(item));
  return out;
}

function chunks(parts: readonly Buffer[]): AsyncIterable<Buffer> {
  return Readable.from(parts.map((p) => Buffer.from(p)), { objectMode: false });
}

function oneByte(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) out.push(buf.subarray(i, i + 1));
  return out;
}

/** Resolves with `p`, or with 'pending' if it has not settled within `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

const EXAMPLE = [
  '\ufeff# torrents for tonight',
  '',
  'a.torrent',
  '   ',
  '  spaced name.torrent  \r',
  MAGNET,
  HASH.toUpperCase(),
  '# {"torrent": "commented out"}',
  `{"torrent":"b.torrent","output":"out/b","select":["docs/x.txt",3],"maxDownloadRate":"500K","maxUploadRate":65536}`,
  '{"torrent":"c.torrent","maxDownloadRate":0}\r',
  '"quoted name.torrent"',
  '{"torrent":"d.torrent","infoHash":"x"}',
  '{"torrent":"e.torrent",}',
  '-',
  'last line.torrent',
].join('\n');

const EXAMPLE_ITEMS: Plain[] = [
  { input: 'a.torrent', where: 'list:3', line: 3 },
  { input: 'spaced name.torrent', where: 'list:5', line: 5 },
  { input: MAGNET, where: 'list:6', line: 6 },
  { input: HASH.toUpperCase(), where: 'list:7', line: 7 },
  { input: 'b.torrent', where: 'list:9', line: 9, output: 'out/b', select: ['docs/x.txt', '3'], maxDownloadRate: 512000, maxUploadRate: 65536 },
  { input: 'c.torrent', where: 'list:10', line: 10, maxDownloadRate: 0 },
  { input: 'quoted name.torrent', where: 'list:11', line: 11 },
  { error: 'list:12: unknown key "infoHash" (known: torrent, output, select, maxDownloadRate, maxUploadRate)', where: 'list:12', line: 12 },
  { error: `list:13: invalid JSON record: Expected double-quoted property name in JSON at position 23`, where: 'list:13', line: 13 },
  { error: 'list:14: "-" (stdin) cannot be a torrent of a list', where: 'list:14', line: 14 },
  { input: 'last line.torrent', where: 'list:15', line: 15 },
];

test('torrent list: the examples, a bad line in the middle does not end the list', async () => {
  const got = await collect(chunks([Buffer.from(EXAMPLE)]));
  // (V8's JSON messages differ between versions: compare their start)
  const json = got[8] as { error: string };
  assert.match(json.error, /^list:13: invalid JSON record: /);
  json.error = (EXAMPLE_ITEMS[8] as { error: string }).error;
  assert.deepEqual(got, EXAMPLE_ITEMS);
});

test('torrent list: 1-byte and random chunking give what one chunk gives', async () => {
  const long = 'x'.repeat(100);
  const bytes = Buffer.concat([
    Buffer.from([EXAMPLE, long, 'after.torrent', long + '\r', 'é.torrent', ''].join('\n'), 'utf8'),
    Buffer.from([0xff, 0x41, 0x0a]), // not UTF-8
    Buffer.from('tail', 'utf8'),
  ]);
  const whole = await collect(chunks([bytes]), 'list', 64);
  assert.deepEqual(whole.slice(-6).map((i) => ('error' in i ? i.error : i.input)), [
    'list:16: line longer than 64 bytes (skipped to the next newline)',
    'after.torrent',
    'list:18: line longer than 64 bytes (skipped to the next newline)',
    'é.torrent',
    'list:20: not valid UTF-8 (names in a list are read as UTF-8)',
    'tail',
  ]);
  assert.deepEqual(await collect(chunks(oneByte(bytes)), 'list', 64), whole);
  const seed = seedFromEnv();
  const r = rng(seed);
  for (let i = 0; i < 50; i++) {
    assert.deepEqual(await collect(chunks(randomChunks(r, bytes, 1 + (i % 7) * 10)), 'list', 64), whole, `seed ${seed}, round ${i}`);
  }
});

test('torrent list: a record is given out when its newline arrives, before the input ends', async () => {
  const feed = new PassThrough();
  const it = readTorrentList(feed, 'stdin')[Symbol.asyncIterator]();
  feed.write('a.torrent\nb.tor');
  assert.deepEqual(plain((await it.next()).value as TorrentListItem), { input: 'a.torrent', where: 'stdin:1', line: 1 });
  const next = it.next();
  assert.equal(await within(next, 100), 'pending', 'a line is not given out before its newline');
  feed.write('rent\r');
  assert.equal(await within(next, 50), 'pending', 'nor at its \\r');
  feed.write('\n# a comment\n\n');
  assert.deepEqual(plain((await next).value as TorrentListItem), { input: 'b.torrent', where: 'stdin:2', line: 2 });
  const third = it.next();
  assert.equal(await within(third, 50), 'pending');
  feed.end('{"torrent":"c.torrent"}');
  assert.deepEqual(plain((await third).value as TorrentListItem), { input: 'c.torrent', where: 'stdin:5', line: 5 });
  assert.equal((await it.next()).done, true);
});

test('torrent list: a real pipe from a process that writes one line at a time', async () => {
  // The writer waits for a word from us after each line: each record must have arrived while
  // the writer is still running, with its stdout open.
  const script = `
    const lines = ['one.torrent', '${MAGNET}', '{"torrent":"${HASH}","output":"o"}'];
    let i = 0;
    process.stdout.write(lines[i++] + '\\n');
    process.stdin.on('data', () => {
      if (i < lines.length) process.stdout.write(lines[i++] + '\\n');
      else process.exit(0);
    });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  child.stdin.on('error', () => {}); // it may have gone when we answer its last line
  const got: Plain[] = [];
  let running = 0;
  for await (const item of readTorrentList(child.stdout, 'stdin')) {
    got.push(plain(item));
    if (child.exitCode === null) running++;
    child.stdin.write('next\n');
  }
  await exited;
  assert.equal(running, 3, 'every record arrived while its writer was still running');
  assert.deepEqual(got, [
    { input: 'one.torrent', where: 'stdin:1', line: 1 },
    { input: MAGNET, where: 'stdin:2', line: 2 },
    { input: HASH, where: 'stdin:3', line: 3, output: 'o' },
  ]);
});

test('torrent list: `torrent-tools magnet x.torrent` output is a list of one', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tt-list-'));
  const t = makeTorrent('x', [{ path: ['a.txt'], data: Buffer.alloc(40000, 7) }], 16384);
  const file = join(dir, 'x.torrent');
  await writeFile(file, t.bytes);
  const child = spawn(process.execPath, [CLI, 'magnet', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const got = await collect(child.stdout, 'stdin');
  assert.equal(got.length, 1);
  assert.match((got[0] as TorrentRequest).input, new RegExp(`^magnet:\\?xt=urn:btih:${t.torrent.infoHash.toString('hex')}&`));
});

test('torrent list: a long line is refused as soon as it is too long, and the list goes on', async () => {
  const feed = new PassThrough();
  const it = readTorrentList(feed, 'list.txt', { maxLine: 16 })[Symbol.asyncIterator]();
  feed.write('x'.repeat(10));
  const first = it.next();
  assert.equal(await within(first, 50), 'pending');
  feed.write('x'.repeat(7));
  // 17 bytes could still be 16 and a \r: the 18th tells
  assert.equal(await within(first, 50), 'pending');
  feed.write('x');
  // no newline yet: the error does not wait for one (nor holds the line until it comes)
  assert.deepEqual(plain((await first).value as TorrentListItem), { error: 'list.txt:1: line longer than 16 bytes (skipped to the next newline)', where: 'list.txt:1', line: 1 });
  const second = it.next();
  for (let i = 0; i < 100; i++) feed.write('{"torrent":"y"}'.repeat(100));
  assert.equal(await within(second, 50), 'pending');
  feed.write('still the long line\n' + 'x'.repeat(16) + '\n' + 'y'.repeat(16) + '\r\n' + 'z'.repeat(16) + '\r\r\n');
  assert.deepEqual(plain((await second).value as TorrentListItem), { input: 'x'.repeat(16), where: 'list.txt:2', line: 2 });
  assert.deepEqual(plain((await it.next()).value as TorrentListItem), { input: 'y'.repeat(16), where: 'list.txt:3', line: 3 });
  assert.deepEqual(plain((await it.next()).value as TorrentListItem), { error: 'list.txt:4: line longer than 16 bytes (skipped to the next newline)', where: 'list.txt:4', line: 4 });
  feed.end('w'.repeat(17));
  assert.deepEqual(plain((await it.next()).value as TorrentListItem), { error: 'list.txt:5: line longer than 16 bytes (skipped to the next newline)', where: 'list.txt:5', line: 5 });
  assert.equal((await it.next()).done, true);
});

test('torrent list: a 1 MiB line at the default limit, in 4 KiB chunks', async () => {
  const big = Buffer.concat([Buffer.from('a.torrent\n'), Buffer.alloc(1 << 20, 0x61), Buffer.from('\nb.torrent\n'), Buffer.alloc(64 * 1024, 0x62), Buffer.from('\n')]);
  const parts: Buffer[] = [];
  for (let o = 0; o < big.length; o += 4096) parts.push(big.subarray(o, o + 4096));
  const got = await collect(chunks(parts));
  assert.deepEqual(got.map((i) => ('error' in i ? i.error : i.input)), ['a.torrent', 'list:2: line longer than 65536 bytes (skipped to the next newline)', 'b.torrent', 'b'.repeat(64 * 1024)]);
});

test('torrent list: malformed lines, each with its message', async () => {
  const cases: Array<[string, string]> = [
    ['{', 'invalid JSON record: '],
    ['{"torrent": 12}', '"torrent": expected a string (a .torrent path, a magnet URI or an info hash), got a number'],
    ['{"output":"o"}', 'no "torrent" (a .torrent path, a magnet URI or an info hash)'],
    ['{"torrent":""}', '"torrent": empty: expected a .torrent path, a magnet URI or an info hash'],
    ['{"torrent":"  "}', '"torrent": empty: expected a .torrent path, a magnet URI or an info hash'],
    ['{"torrent":"-"}', '"torrent": "-" (stdin) cannot be a torrent of a list'],
    ['{"torrent":"a\\u0000b"}', '"torrent": a NUL character: not a path, a magnet URI or an info hash'],
    ['{"torrent":"a","output":["o"]}', '"output": expected a string (a directory), got an array'],
    ['{"torrent":"a","output":""}', '"output": empty: not a directory name'],
    ['{"torrent":"a","select":"x"}', '"select": expected an array of file paths and indexes, got a string'],
    ['{"torrent":"a","select":[]}', '"select": empty: it would select no file (leave it out for all files)'],
    ['{"torrent":"a","select":["x",-1]}', '"select"[1]: expected a file path or a file index (a whole number ≥ 0), got -1'],
    ['{"torrent":"a","select":[1.5]}', '"select"[0]: expected a file path or a file index (a whole number ≥ 0), got 1.5'],
    ['{"torrent":"a","select":[null]}', '"select"[0]: expected a file path or a file index (a whole number ≥ 0), got null'],
    ['{"torrent":"a","select":[""]}', '"select"[0]: expected a file path or a file index (a whole number ≥ 0), got ""'],
    ['{"torrent":"a","maxDownloadRate":"fast"}', '"maxDownloadRate": expected a rate in bytes per second like 65536, 500K or 1.5M/s (0: unlimited), got "fast"'],
    ['{"torrent":"a","maxUploadRate":-1}', '"maxUploadRate": expected a rate in bytes per second like 65536, 500K or 1.5M/s (0: unlimited), got -1'],
    ['{"torrent":"a","maxUploadRate":true}', '"maxUploadRate": expected bytes per second as a number or a text like "500K", got true'],
    ['{"torrent":"a","maxUploadRate":"1Mb/s"}', '"maxUploadRate": expected a rate in bytes per second like 65536, 500K or 1.5M/s (0: unlimited), got "1Mb/s" (a lowercase b means bits: write B or nothing for bytes)'],
    ['{"torrent":"a","__proto__":{}}', 'unknown key "__proto__" (known: torrent, output, select, maxDownloadRate, maxUploadRate)'],
    [`{"torrent":"a","${'k'.repeat(100)}":1}`, `unknown key "${'k'.repeat(60)}…" (known: torrent, output, select, maxDownloadRate, maxUploadRate)`],
    ['{"torrent":"a"} trailing', 'invalid JSON record: '],
    ['{"infoHash":"c12fe1c06bba254a9dc9f519b335aa7c1367a88a","trackers":[]}', 'unknown key "infoHash" (known: torrent, output, select, maxDownloadRate, maxUploadRate)'],
    ['"unterminated', `a line starting with '"' is a JSON string: `],
    ['"a" "b"', `a line starting with '"' is a JSON string: `],
    ['"-"', '"-" (stdin) cannot be a torrent of a list'],
    ['a\u0000b', 'a NUL character: not a path, a magnet URI or an info hash'],
  ];
  for (const [line, reason] of cases) {
    const item = parseListLine(line, 'l:7', 7);
    assert.ok(item instanceof TorrentListError, `${line}: expected an error, got ${JSON.stringify(item)}`);
    assert.equal(item.where, 'l:7');
    assert.equal(item.line, 7);
    assert.equal(item.exitCode, 1);
    assert.ok(!/[\n\r]/.test(item.message), `one line: ${item.message}`);
    if (reason.endsWith(': ')) assert.ok(item.message.startsWith(`l:7: ${reason}`), `${line}: ${item.message}`);
    else assert.equal(item.message, `l:7: ${reason}`, line);
  }
  const lone = parseListLine('{', 'l:1', 1) as TorrentListError;
  assert.match(lone.message, /\(a record is one JSON object on one line: jq -c\)$/);
  // a control character V8 quotes in its message is escaped
  const ctl = parseListLine('{"torrent":\u0007}', 'l:1', 1) as TorrentListError;
  assert.ok(!ctl.message.includes('\u0007') && ctl.message.includes('\\x07'), ctl.message);
});

test('torrent list: an error of the stream itself is thrown', async () => {
  const failing = new Readable({
    read(): void {
      this.push('a.torrent\n');
      this.destroy(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }));
    },
  });
  const got: Plain[] = [];
  await assert.rejects(async () => {
    for await (const item of readTorrentList(failing, 'list')) got.push(plain(item));
  }, /EIO/);
  assert.throws(() => readTorrentList(chunks([]), 'l', { maxLine: 0 }), RangeError);
});

test('torrent list: a read waiting on an idle pipe ends when the stream is aborted', async () => {
  const feed = new PassThrough();
  const ac = new AbortController();
  addAbortSignal(ac.signal, feed);
  const it = readTorrentList(feed, 'stdin')[Symbol.asyncIterator]();
  feed.write('a.torrent\n');
  assert.equal(((await it.next()).value as TorrentRequest).input, 'a.torrent');
  const waiting = it.next();
  assert.equal(await within(waiting, 50), 'pending');
  ac.abort();
  await assert.rejects(waiting, { name: 'AbortError' });
});

test('torrent list: a file read with createReadStream, names in messages', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tt-list-'));
  const file = join(dir, 'list.txt');
  await writeFile(file, 'a.torrent\r\n{"torrent":1}\r\n');
  assert.deepEqual(await collect(createReadStream(file), 'list.txt'), [
    { input: 'a.torrent', where: 'list.txt:1', line: 1 },
    { error: 'list.txt:2: "torrent": expected a string (a .torrent path, a magnet URI or an info hash), got a number', where: 'list.txt:2', line: 2 },
  ]);
  // a stream with an encoding gives strings: the same
  const s = createReadStream(file);
  s.setEncoding('utf8');
  assert.equal((await collect(s, 'list.txt')).length, 2);
});

// ---- the property: any list of requests, written out, reads back the same

const text = (min: number): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ unit: 'binary', minLength: min, maxLength: 30 }),
    fc.constantFrom('a.torrent', ' x ', '#x', '{', '"q"', '-x', 'dir/é 日本.torrent', MAGNET, HASH, '\r', 'a\nb', '\ufeffbom', '\u2028'),
  );
const inputArb = text(1).filter((s) => s.trim() !== '' && s !== '-' && !s.includes('\0'));
const nameArb = text(1).filter((s) => !s.includes('\0'));
const rateArb = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: MAX_RATE }));
type Written = Omit<TorrentRequest, 'where' | 'line'>;
const optional = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });
// (a bare input as often as a record: fc.record's optional keys are nearly always there)
const requestArb: fc.Arbitrary<Written> = fc.oneof(
  inputArb.map((input) => ({ input })),
  fc
    .record({
      input: inputArb,
      output: optional(nameArb),
      select: optional(fc.array(fc.oneof(nameArb, fc.nat().map(String)), { minLength: 1, maxLength: 4 })),
      maxDownloadRate: optional(rateArb),
      maxUploadRate: optional(rateArb),
    })
    .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as Written),
);
const fillerArb = fc.constantFrom('', '# comment', '   ', '\t# indented comment', '#{"torrent":"x"}');

test('torrent list property: requests written out read back equal, in any chunking', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fillerArb, requestArb, fc.boolean()), { maxLength: 12 }),
      fc.boolean(),
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
      async (entries, finalNewline, sizes) => {
        const lines: string[] = [];
        const want: Plain[] = [];
        for (const [filler, req, crlf] of entries) {
          if (filler !== '') lines.push(filler);
          lines.push(formatListLine(req) + (crlf ? '\r' : ''));
          want.push({ ...req, where: `p:${lines.length}`, line: lines.length });
        }
        const bytes = Buffer.from(lines.join('\n') + (finalNewline && lines.length > 0 ? '\n' : ''), 'utf8');
        const parts: Buffer[] = [];
        for (let o = 0, i = 0; o < bytes.length; i++) {
          const n = sizes[i % sizes.length]!;
          parts.push(bytes.subarray(o, o + n));
          o += n;
        }
        const got = await collect(chunks(parts), 'p');
        assert.deepEqual(got, want);
      },
    ),
    { numRuns: 300 },
  );
});

test('torrent list property: any bytes give one item or none per line, never a throw', async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), fc.integer({ min: 1, max: 50 }), async (data, size) => {
      const bytes = Buffer.from(data);
      const parts: Buffer[] = [];
      for (let o = 0; o < bytes.length; o += size) parts.push(bytes.subarray(o, o + size));
      const got = await collect(chunks(parts), 'p', 32);
      const whole = await collect(chunks([bytes]), 'p', 32);
      assert.deepEqual(got, whole);
      const lines = bytes.length === 0 ? 0 : bytes.toString('latin1').split('\n').length;
      let last = 0;
      for (const item of got) {
        assert.ok(item.line > last && item.line <= lines, `line ${item.line} of ${lines}`);
        last = item.line;
        if ('error' in item) assert.ok(!/[\n\r]/.test(item.error));
      }
    }),
    { numRuns: 500 },
  );
});

// ---- rates

test('parseRate: units, suffixes, limits', () => {
  const ok: Array<[string | number, number]> = [
    ['0', 0], [0, 0], ['65536', 65536], [512000, 512000], ['500K', 512000], ['500k', 512000], ['4M', 4 << 20],
    ['1.5M', 1572864], ['1G', 1 << 30], ['1T', MAX_RATE], ['500K/s', 512000], ['500KB/s', 512000], ['500KiB/s', 512000],
    ['500KIB', 512000], ['65536B/s', 65536], ['65536/s', 65536], ['65536B', 65536], ['0.5K', 512], ['1.1K', 1126], ['0K', 0],
  ];
  for (const [text, n] of ok) assert.equal(parseRate(text, '--rate'), n, String(text));
  const bad: Array<[string | number, string]> = [
    ['', 'expected a rate'], ['fast', 'expected a rate'], ['-1', 'expected a rate'], ['1e6', 'expected a rate'], ['0012', 'expected a rate'],
    ['500 K', 'expected a rate'], ['.5M', 'expected a rate'], ['5X', 'expected a rate'], ['500K/h', 'expected a rate'],
    ['1Mb/s', 'a lowercase b means bits'], ['8Mbps', 'a lowercase b means bits'], ['1.5', 'a fraction of a byte'],
    ['0.0001K', 'less than 1 byte per second'], ['2T', 'is more than 1T'], [MAX_RATE + 1, 'is more than 1T'],
    [-1, 'expected a rate'], [1.5, 'expected a rate'], [Number.NaN, 'expected a rate'], [Infinity, 'expected a rate'], ['9'.repeat(400), 'is more than 1T'],
  ];
  for (const [text, want] of bad) {
    assert.throws(() => parseRate(text, '--max-download-rate'), (e: unknown) => {
      assert.ok(e instanceof UsageError, String(text));
      assert.ok(e.message.startsWith('--max-download-rate: ') && e.message.includes(want), `${String(text)}: ${e.message}`);
      assert.ok(e.message.length < 300, e.message);
      return true;
    });
  }
});

test('Args.rate and Args.size share their units', () => {
  const a = parseArgs(['--max-download-rate', '1.5M/s', '--max-upload-rate', '0', '--max-memory', '16KiB'], { string: ['max-download-rate', 'max-upload-rate', 'max-memory', 'other'] });
  assert.equal(a.rate('max-download-rate'), 1572864);
  assert.equal(a.rate('max-upload-rate'), 0);
  assert.equal(a.rate('other'), undefined);
  assert.equal(a.size('max-memory', 1, 1 << 30), 16384);
  assert.throws(() => parseArgs(['--r', '1Mbit'], { string: ['r'] }).rate('r'), /^UsageError: --r: expected a rate/);
  assert.equal(parseArgs(['--s', '2t'], { string: ['s'] }).size('s', 0, Number.MAX_SAFE_INTEGER), 2 * 1024 ** 4);
});
