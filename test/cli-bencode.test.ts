import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { encode } from '../src/bencode/index.js';
import { CLI, runCli, runShell } from './helpers/cli.js';
import { randomValue, rng, seedFromEnv } from './helpers/random.js';

const torrentLike = encode(new Map<string, unknown>([
  ['announce', Buffer.from('http://127.0.0.1:6969/announce')],
  ['info', new Map<string, unknown>([
    ['length', 1234567],
    ['name', Buffer.from('ubuntu.iso')],
    ['piece length', 262144],
    ['pieces', Buffer.alloc(100, 0xab)],
  ])],
]) as never);

test('bdecode prints one JSON line per value; bencode gives the bytes back', async () => {
  const r = await runCli(['bdecode'], { input: torrentLike });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.toString().split('\n');
  assert.equal(lines.length, 2);
  assert.equal(lines[1], '');
  const j = JSON.parse(lines[0]!) as { info: { name: string; pieces: { $hex: string } } };
  assert.equal(j.info.name, 'ubuntu.iso');
  assert.equal(j.info.pieces.$hex, 'ab'.repeat(100));
  const back = await runCli(['bencode'], { input: r.stdout });
  assert.equal(back.code, 0, back.stderr);
  assert.deepEqual(back.stdout, torrentLike);
});

test('property through the real CLI: bdecode | bencode is byte-identical for canonical input', async () => {
  const seed = seedFromEnv();
  const rnd = rng(seed);
  const input = Buffer.concat(Array.from({ length: 200 }, () => encode(randomValue(rnd))));
  const r = await runShell('$TT bdecode < "$IN" | $TT bencode', { env: { IN: await tmpFile(input) } });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.equals(input), `seed ${seed}`);
});

test('a FILE argument, and --pretty', async () => {
  const f = await tmpFile(torrentLike);
  const r = await runCli(['bdecode', '--pretty', f]);
  assert.equal(r.code, 0);
  assert.match(r.stdout.toString(), /^\{\n  "announce": "http:\/\/127\.0\.0\.1:6969\/announce",\n  "info": \{\n    "length": 1234567,/);
  const missing = await runCli(['bdecode', '/nonexistent/x.torrent']);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'torrent-tools bdecode: /nonexistent/x.torrent: no such file or directory\n');
});

test('bad input: exit 1, one line naming the source and byte offset, no partial output of that value', async () => {
  const r = await runCli(['bdecode'], { input: 'i1ed3:abc' });
  assert.equal(r.code, 1);
  assert.equal(r.stdout.toString(), '1\n');
  assert.equal(r.stderr, "torrent-tools bdecode: stdin: byte 9: unexpected end of input: expected a dict value\n");
  const s = await runCli(['bdecode'], { input: 'd1:bi1e1:ai2ee' });
  assert.equal(s.stderr, 'torrent-tools bdecode: stdin: byte 7: dict key "a" is out of order (keys must be sorted)\n');
  const deep = await runCli(['bdecode'], { input: 'l'.repeat(100000) });
  assert.equal(deep.code, 1);
  assert.equal(deep.stderr, 'torrent-tools bdecode: stdin: byte 512: nesting deeper than 512 levels\n');
});

test('--max-depth 5000, the most the option allows, works both ways; one level more is a one-line error', async () => {
  const depth = 5000;
  // lists; dicts (JSON objects); dicts with a non-UTF-8 key, whose JSON ({"$dict":[[{"$hex":…},…]]})
  // nests 3 levels per dict and a $hex leaf: 15,001 JSON levels
  for (const open of ['l', 'd1:a', 'd1:\xff']) {
    const input = Buffer.from(open.repeat(depth) + '1:\xfe' + 'e'.repeat(depth), 'latin1');
    const j = await runCli(['bdecode', '--max-depth', String(depth)], { input });
    assert.equal(j.code, 0, j.stderr.slice(0, 300));
    assert.equal(j.stderr, '');
    const back = await runCli(['bencode', '--max-depth', String(depth)], { input: j.stdout });
    assert.equal(back.code, 0, back.stderr.slice(0, 300));
    assert.ok(back.stdout.equals(input), open);
    // --pretty walks the same levels
    const pretty = await runCli(['bdecode', '--pretty', '--max-depth', String(depth)], { input });
    assert.equal(pretty.code, 0, pretty.stderr.slice(0, 300));

    const over = Buffer.from(open.repeat(depth + 1) + '1:\xfe' + 'e'.repeat(depth + 1), 'latin1');
    const e = await runCli(['bdecode', '--max-depth', String(depth)], { input: over });
    assert.equal(e.code, 1);
    assert.equal(e.stderr, `torrent-tools bdecode: stdin: byte ${open.length * depth}: nesting deeper than 5000 levels\n`);
    // (JSON.stringify would overflow the stack here: it recurses)
    const wide = j.stdout.toString().trimEnd();
    const e2 = await runCli(['bencode', '--max-depth', String(depth)], { input: `"x"\n${open === 'l' ? `[${wide}]` : `{"k":${wide}}`}\n` });
    assert.equal(e2.code, 1);
    assert.equal(e2.stdout.toString('latin1'), '1:x');
    assert.match(e2.stderr, /^torrent-tools bencode: stdin:2: (at \S+ more\)\S+: )?nesting deeper than 5000 levels( \(JSON nested more than 15001 deep at column \d+\))?\n$/);
  }
  for (const cmd of ['bdecode', 'bencode']) {
    const u = await runCli([cmd, '--max-depth', '5001']);
    assert.equal(u.code, 2);
    assert.match(u.stderr, new RegExp(`^torrent-tools ${cmd}: --max-depth: .*5000.*\n`));
  }
});

test('bencode refuses repeated JSON object keys, naming the line and the key', async () => {
  const r = await runCli(['bencode'], { input: '{"a":1}\n{"info":{"length":1,"name":"x","length":2}}\n' });
  assert.equal(r.code, 1);
  assert.equal(r.stdout.toString(), 'd1:ai1ee');
  assert.equal(r.stderr, 'torrent-tools bencode: stdin:2: at .info: duplicate key "length"\n');
  const top = await runCli(['bencode'], { input: '{"a":1,"b":2,"a":1}' });
  assert.equal(top.stderr, 'torrent-tools bencode: stdin:1: duplicate key "a"\n');
  const pairs = await runCli(['bencode'], { input: '{"$dict":[[{"$hex":"ff"},1],["b",2],[{"$hex":"FF"},3]]}\n' });
  assert.equal(pairs.stderr, 'torrent-tools bencode: stdin:1: at .$dict[2][0]: duplicate dict key {"$hex":"ff"}\n');
  const hex = await runCli(['bencode'], { input: '[{"$hex":"00","$hex":"01"}]\n' });
  assert.equal(hex.stderr, 'torrent-tools bencode: stdin:1: at [0]: duplicate key "$hex"\n');
  // what bdecode refuses the same way
  const d = await runCli(['bdecode'], { input: 'd1:ai1e1:ai2ee' });
  assert.equal(d.stderr, 'torrent-tools bdecode: stdin: byte 7: duplicate dict key "a"\n');
});

test('--lenient accepts unsorted keys and warns once', async () => {
  const r = await runCli(['bdecode', '--lenient'], { input: 'd1:bi1e1:ai2eed1:bi1e1:ai2ee' });
  assert.equal(r.code, 0);
  assert.equal(r.stdout.toString(), '{"b":1,"a":2}\n{"b":1,"a":2}\n');
  assert.equal(r.stderr, 'torrent-tools bdecode: warning: stdin: byte 7: accepted dict keys out of order (--lenient)\n');
});

test('bencode errors name stdin:LINE and the JSON path', async () => {
  const r = await runCli(['bencode'], { input: '1\n\n{"a":[null]}\n' });
  assert.equal(r.code, 1);
  assert.equal(r.stdout.toString(), 'i1e');
  assert.equal(r.stderr, 'torrent-tools bencode: stdin:3: at .a[0]: bencode has no null\n');
  const bad = await runCli(['bencode'], { input: '{"a":\n' });
  assert.match(bad.stderr, /^torrent-tools bencode: stdin:1: invalid JSON: /);
  const long = await runCli(['bencode', '--max-line', '10'], { input: '"0123456789abc"\n' });
  assert.equal(long.stderr, 'torrent-tools bencode: stdin:1: line longer than 10 bytes\n');
  const utf = await runCli(['bencode'], { input: Buffer.from([0x22, 0xff, 0x22, 0x0a]) });
  assert.equal(utf.stderr, 'torrent-tools bencode: stdin:1: not valid UTF-8\n');
});

test('usage errors exit 2 with one line and where to look; typos get a suggestion; --help and --version', async () => {
  const u = await runCli(['bdecode', '--max-depth', '1e5']);
  assert.equal(u.code, 2);
  assert.equal(u.stderr, `torrent-tools bdecode: --max-depth: expected a whole number, got "1e5"\ntry 'torrent-tools bdecode --help'\n`);
  const unknown = await runCli(['bdecode', '--nope']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option --nope\n/);
  const typo = await runCli(['download', 'x.torrent', '--outptu', 'out']);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /^torrent-tools download: unknown option --outptu \(did you mean --output\?\)\ntry 'torrent-tools download --help'\n$/);
  const cmd = await runCli(['downlaod', 'x.torrent']);
  assert.equal(cmd.code, 2);
  assert.equal(cmd.stderr, `torrent-tools: unknown command "downlaod" (did you mean download?)\ntry 'torrent-tools --help'\n`);
  const h = await runCli(['bdecode', '--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout.toString(), /^usage: torrent-tools bdecode/);
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  assert.match(top.stdout.toString(), /bdecode .*\n.*bencode /);
  const v = await runCli(['--version']);
  assert.match(v.stdout.toString(), /^\d+\.\d+\.\d+\n$/);
  const none = await runCli(['frobnicate']);
  assert.equal(none.code, 2);
  const noargs = await runCli([]);
  assert.equal(noargs.code, 2);
});

test('| head -1 is a normal end: exit 0, nothing on stderr', async () => {
  const r = await runShell('yes i1e | head -c 3000000 | tr -d "\\n" | $TT bdecode | head -1; echo "status=${PIPESTATUS[3]}" >&2');
  assert.equal(r.stdout.toString(), '1\n');
  assert.equal(r.stderr, 'status=0\n');
});

test('large output is never cut at exit', async () => {
  // 1,000,000 values → ~8 MB of JSON through a slow reader
  const r = await runShell('yes i1234567e | head -n 1000000 | tr -d "\\n" | $TT bdecode | (sleep 0.5; wc -l)');
  assert.equal(r.stdout.toString().trim(), '1000000');
});

test('SIGINT exits 130', async () => {
  const child = spawn(process.execPath, [CLI, 'bdecode'], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.write('i1e');
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  assert.equal(code, 130);
});

test('bencode refuses to write binary to a terminal', { skip: spawnSync('script', ['--version']).status !== 0 && 'script(1) not installed' }, async () => {
  const r = await runShell(`echo 1 | script -qec "${process.execPath} ${CLI} bencode" /dev/null`);
  assert.match(r.stdout.toString(), /refusing to write binary bencode to a terminal/);
  const f = await runShell(`echo 1 | script -qec "${process.execPath} ${CLI} bencode --force" /dev/null`);
  assert.match(f.stdout.toString(), /i1e/);
});

async function tmpFile(content: Buffer): Promise<string> {
  const { mkdtemp, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'tt-'));
  const f = join(dir, 'in.bin');
  await writeFile(f, content);
  return f;
}
