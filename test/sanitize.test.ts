import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { encode, type BValue } from '../src/bencode/index.js';
import { mapComponent, PathMappings, resolveDuplicates } from '../src/metainfo/sanitize.js';
import { componentProblem, MetainfoError, parseTorrent } from '../src/metainfo/torrent.js';
import { safeJoin } from '../src/storage/safe-path.js';
import { runCli } from './helpers/cli.js';
import { encodeFrames } from './helpers/frames.js';
import { FIXTURES, hasLibtorrent, skipUnless, startLtSeeds, SYSTEM_PYTHON } from './helpers/interop.js';
import { int, rng, seedFromEnv } from './helpers/random.js';
import { startSeed } from './helpers/swarm.js';
import { makeTorrentBytes, tmpDir, tree } from './helpers/torrent.js';

const B = (s: string): Buffer => Buffer.from(s);
const hex = (h: string): Buffer => Buffer.from(h, 'hex');
const LT_PATHS = fileURLToPath(new URL('lt-paths.py', FIXTURES));

/** [raw component, its safe form (null: dropped)]: libtorrent 2.0.8's own outputs, but for CON. */
const COMPONENTS: Array<[string | Buffer, string | null]> = [
  ['a', 'a'],
  ['.', null],
  ['..', null],
  ['...', '...'],
  ['', '_'],
  ['/', null],
  ['\\..', null],
  ['/etc/passwd', 'etcpasswd'],
  ['a\\..\\b', 'a..b'],
  ['nul\0x', 'nulx'],
  ['ctl\x01\x1f\x7f', 'ctl__\x7f'],
  [hex('61ff62'), 'a_b'],
  [hex('63c34164'), 'c_d'], // a bad continuation byte takes the byte after it along
  [hex('65e282'), 'e_'],
  [hex('eda08073'), '_s'], // an encoded surrogate
  [hex('f861626364656667'), '_efg'], // a 5-byte lead takes 5 bytes
  ['x\u202egpj.exe', 'xgpj.exe'],
  ['\u200eleft\u200f', 'left'],
  ['a'.repeat(300) + '.txt', 'a'.repeat(240) + '.txt'],
  ['b'.repeat(250), 'b'.repeat(240)],
  ['c'.repeat(241), 'c'.repeat(240)],
  ['e'.repeat(240), 'e'.repeat(240)],
  ['f'.repeat(236) + '.mkv', 'f'.repeat(236) + '.mkv'],
  ['g'.repeat(238) + '.mkv', 'g'.repeat(238) + '.m'],
  ['h'.repeat(300) + '.toolongext', 'h'.repeat(240)],
  ['é'.repeat(200), 'é'.repeat(120)],
  ['a' + 'é'.repeat(150) + '.x', 'a' + 'é'.repeat(120) + '.x'],
  ['naïve 日本.txt', 'naïve 日本.txt'],
  // ours: libtorrent on Linux keeps these
  ['CON', '_CON'],
  ['aux.txt', '_aux.txt'],
  ['lpt9', '_lpt9'],
  ['console', 'console'],
];

test('path components: a table of raw names and their safe forms', () => {
  for (const [raw, want] of COMPONENTS) {
    const m = mapComponent(raw);
    assert.equal(m.text, want, JSON.stringify(raw.toString()));
    assert.equal(m.kinds.size === 0, raw.toString() === want, `${JSON.stringify(raw.toString())}: kinds ${[...m.kinds].join(',')}`);
  }
  assert.deepEqual([...mapComponent('/..\0').kinds].sort(), ['dot', 'nul', 'separator']);
  assert.deepEqual([...mapComponent('x'.repeat(300)).kinds], ['long']);
  assert.deepEqual([...mapComponent(hex('ff')).kinds], ['encoding']);
});

test('path components, random bytes: a safe form passes safeJoin, fits 255 bytes, maps to itself', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const alphabet = [0x2e, 0x2e, 0x2f, 0x5c, 0, 1, 0x7f, 0xff, 0xc3, 0xa9, 0xe2, 0x80, 0xae, 0xf0, 0xf8, 0x61, 0x62, 0x20];
  for (let n = 0; n < 20_000; n++) {
    const len = r() < 0.2 ? int(r, 0, 4) : int(r, 0, 320);
    const raw = Buffer.from(Array.from({ length: len }, () => (r() < 0.5 ? alphabet[int(r, 0, alphabet.length - 1)]! : int(r, 0, 255))));
    const m = mapComponent(raw);
    if (m.text === null) continue;
    const what = `seed ${seed}: ${raw.toString('hex')} → ${JSON.stringify(m.text)}`;
    assert.equal(componentProblem(m.text), null, what);
    assert.ok(Buffer.byteLength(m.text) <= 255, what);
    assert.doesNotThrow(() => safeJoin('/tmp/x', [m.text!]), what);
    assert.equal(mapComponent(m.text).text, m.text, what);
  }
});

const files = (name: string, list: BValue[], pieceLength = 16384): Buffer => {
  const total = list.reduce<number>((a, f) => a + ((f as Map<string, BValue>).get('length') as number), 0);
  const info = new Map<string, BValue>([['files', list], ['name', B(name)], ['piece length', pieceLength], ['pieces', Buffer.alloc(20 * Math.ceil(total / pieceLength), 1)]]);
  return encode(new Map([['info', info]]));
};
const f = (path: Array<string | Buffer> | null, length = 1, attr?: string): BValue => {
  const m = new Map<string, BValue>();
  if (attr !== undefined) m.set('attr', B(attr));
  m.set('length', length);
  if (path !== null) m.set('path', path.map((c) => (typeof c === 'string' ? B(c) : c)));
  return m;
};

test('a torrent with odd names loads: safe paths, raw ones beside, one warning per kind; strict refuses it', () => {
  const buf = files('..', [f(['..', 'x']), f(['a', '..', '..', 'b']), f(['a', 'b']), f(['A', 'B']), f(['/etc/passwd']), f(['CON']), f(['a']), f(['ok']), f(null, 16383, 'p'), f(['..', '.'])]);
  const warnings: string[] = [];
  const t = parseTorrent(buf, { onWarning: (m) => warnings.push(m) });
  assert.equal(t.name, t.infoHashHex, 'a name that maps to nothing is the info hash');
  assert.equal(t.rawName, '..');
  assert.deepEqual(
    t.files.map((x) => [x.path.join('/'), x.rawPath?.join('/')]),
    [['x', '../x'], ['a/b', 'a/../../b'], ['a/b.1', 'a/b'], ['A/B.2', 'A/B'], ['etcpasswd', '/etc/passwd'], ['_CON', 'CON'], ['a.1', 'a'], ['ok', undefined], ['.pad/16383', undefined], ['_', '../.']],
  );
  assert.deepEqual(warnings, [
    `info.name ".." is used as "${t.infoHashHex}"`,
    'a path component "." or ".." was dropped (3 paths; torrent-tools info --json shows rawPath)',
    'a "/" or "\\" inside a path component was removed (1 path; torrent-tools info --json shows rawPath)',
    'a Windows device name (CON, NUL, COM1, …) got a "_" in front (1 path; torrent-tools info --json shows rawPath)',
    'a path with no component left was named "_" (1 path; torrent-tools info --json shows rawPath)',
    'a path used twice (ignoring ASCII case, or also as a directory) got a ".N" before its extension (3 paths; torrent-tools info --json shows rawPath)',
    'a pad file without a path was named ".pad/LENGTH" (1 path; torrent-tools info --json shows rawPath)',
  ]);
  assert.throws(() => parseTorrent(buf, { strict: true }), (e: unknown) => e instanceof MetainfoError && e.message === 'info.name: ".." is ".."');
  // the first problem in file order, once the name is fine
  const named = files('d', [f(['ok']), f(['ok', '..'])]);
  assert.throws(() => parseTorrent(named, { strict: true }), /^MetainfoError: info\.files\[1\]\.path\[1\]: path component "\.\." is "\.\."$/);
});

test('duplicates after mapping get distinct names, libtorrent\'s way; pad files of one length may share a path', () => {
  const cases: Array<[string[][], string[]]> = [
    [[['a'], ['a'], ['A'], ['a.txt'], ['a.txt'], ['A.TXT'], ['a.1.txt'], ['.hidden'], ['.hidden']], ['a', 'a.1', 'A.2', 'a.txt', 'a.1.txt', 'A.2.TXT', 'a.1.1.txt', '.hidden', '.1.hidden']],
    [[['a'], ['a', 'b'], ['c', 'd'], ['c']], ['a.1', 'a/b', 'c/d', 'c.1']],
    [[['x', 'y'], ['x', 'y'], ['d', 'e.tar.gz'], ['d', 'e.tar.gz']], ['x/y', 'x/y.1', 'd/e.tar.gz', 'd/e.tar.1.gz']],
  ];
  for (const [paths, want] of cases) {
    const laid = paths.map((path) => ({ path, pad: false, length: 1 }));
    const renamed = resolveDuplicates(laid, (i) => `f${i}`, new PathMappings(false));
    assert.deepEqual(laid.map((x, i) => (renamed.get(i) ?? x.path).join('/')), want);
  }
  const pads = [{ path: ['.pad', '5'], pad: true, length: 5 }, { path: ['.pad', '5'], pad: true, length: 5 }, { path: ['.pad', '5'], pad: true, length: 6 }];
  assert.deepEqual([...resolveDuplicates(pads, String, new PathMappings(false))], [[2, ['.pad', '5.1']]]);
  // a million-file torrent of one name stays linear: each probe starts where the last stopped
  const many = Array.from({ length: 200_000 }, () => ({ path: ['same.bin'], pad: false, length: 1 }));
  const started = performance.now();
  const out = resolveDuplicates(many, String, new PathMappings(false));
  const ms = performance.now() - started;
  assert.equal(out.size, many.length - 1);
  assert.deepEqual(out.get(many.length - 1), [`same.${many.length - 1}.bin`]);
  assert.ok(ms < 5000, `${ms} ms for 200,000 duplicates`);
});

test('piece lengths follow libtorrent: up to 2^30-1, over 128 MiB with a warning; a pad file needs no path', () => {
  const info = (pl: number): Buffer => encode(new Map([['info', new Map<string, BValue>([['length', 5], ['name', B('x')], ['piece length', pl], ['pieces', Buffer.alloc(20)]])]]));
  const warnings: string[] = [];
  assert.equal(parseTorrent(info(512 * 1024 * 1024), { onWarning: (m) => warnings.push(m) }).pieceLength, 512 * 1024 * 1024);
  assert.match(warnings.join('\n'), /^info\.piece length: 536870912 bytes \(over 134217728\)/);
  assert.equal(parseTorrent(info(2 ** 30 - 1)).pieceLength, 2 ** 30 - 1);
  assert.throws(() => parseTorrent(info(2 ** 30)), /^MetainfoError: info\.piece length: 1073741824 is out of range \[1, 1073741823\]$/);
  const pad = parseTorrent(files('d', [f(['a'], 3), f([], 16381, 'p'), f(['b'], 2)]));
  assert.deepEqual(pad.files.map((x) => [x.path.join('/'), x.pad]), [['a', false], ['.pad/16381', true], ['b', false]]);
  assert.throws(() => parseTorrent(files('d', [f(['a'], 3), f(null, 2)])), /^MetainfoError: info\.files\[1\]\.path: expected a list of path components$/, 'only a pad file may lack its path');
});

/** Hand-crafted torrents for the comparison with libtorrent (Windows device names left out: they are ours). */
function handCrafted(): Array<[string, Buffer]> {
  return [
    ['dotdot', files('d', [f(['..', 'x']), f(['a', '..', '..', 'b'])])],
    ['all gone', files('d', [f(['..', '.']), f(['/'])])],
    ['empty', files('d', [f(['']), f(['a', '', 'b'])])],
    ['separators', files('d', [f(['/etc/passwd']), f(['a\\..\\b'])])],
    ['controls', files('d', [f(['nul\0x']), f(['ctl\x01\x1f\x7f'])])],
    ['utf8', files('d', [f([hex('61ff62')]), f([hex('63c34164')]), f([hex('65e282')]), f([hex('eda08073')]), f([hex('f861626364656667')])])],
    ['bidi', files('d', [f(['x\u202egpj.exe'])])],
    ['long', files('d', [f(['a'.repeat(300) + '.txt']), f(['b'.repeat(250)]), f(['g'.repeat(238) + '.mkv']), f(['é'.repeat(200)]), f(['a' + 'é'.repeat(150) + '.x'])])],
    ['duplicates', files('d', [f(['a']), f(['a']), f(['A']), f(['a.txt']), f(['a.txt']), f(['A.TXT']), f(['a.1.txt']), f(['.hidden']), f(['.hidden'])])],
    ['file and dir', files('d', [f(['a']), f(['a', 'b']), f(['c', 'd']), f(['c'])])],
    ['duplicate after mapping', files('d', [f(['x', '..', 'y']), f(['x', 'y']), f(['x/y'])])],
    ['pad without path', files('d', [f(['a'], 3), f(null, 16381, 'p'), f(['b'], 2), f([], 16382, 'p'), f(['c'], 1)])],
    ['name ..', files('..', [f(['a'])])],
    ['name empty', files('', [f(['a'])])],
    ['name a/b', files('a/b', [f(['a'])])],
    ['single /etc/passwd', encode(new Map([['info', new Map<string, BValue>([['length', 5], ['name', B('/etc/passwd')], ['piece length', 4], ['pieces', Buffer.alloc(40, 1)]])]]))],
    ['piece length 512 MiB', encode(new Map([['info', new Map<string, BValue>([['length', 5], ['name', B('x')], ['piece length', 2 ** 29], ['pieces', Buffer.alloc(20, 1)]])]]))],
  ];
}

/** Made by python-libtorrent's create_torrent: it keeps these names as they are. */
const LT_MADE: Array<[string, Array<[string, number]>]> = [
  ['backslash', [['d/a\\b.txt', 3], ['d/ok', 2]]],
  ['long', [['d/' + 'x'.repeat(300) + '.bin', 3], ['d/y', 1]]],
  ['control and bidi', [['d/ctl\x01.txt', 3], ['d/e\u202egpj.exe', 2]]],
  ['case duplicates', [['d/A', 3], ['d/a', 3], ['d/a.1', 1]]],
  ['dotdot', [['d/sub/../up', 3], ['d/up', 2]]],
];

function ltShow(paths: string[]): Array<{ name?: string; files?: Array<{ path: string; pad: boolean }>; error?: string }> {
  const r = spawnSync(SYSTEM_PYTHON, [LT_PATHS, 'show', ...paths], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
}

test('our safe paths are python-libtorrent 2.0\'s, for hand-crafted torrents and ones it makes', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent') }, async () => {
  const dir = await tmpDir();
  const all: Array<[string, string]> = [];
  for (const [label, buf] of handCrafted()) {
    const p = join(dir, `${all.length}.torrent`);
    await writeFile(p, buf);
    all.push([label, p]);
  }
  for (const [label, spec] of LT_MADE) {
    const p = join(dir, `${all.length}.torrent`);
    const r = spawnSync(SYSTEM_PYTHON, [LT_PATHS, 'make', p, '16384', JSON.stringify(spec)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    all.push([`made: ${label}`, p]);
  }
  const theirs = ltShow(all.map(([, p]) => p));
  let compared = 0;
  for (let k = 0; k < all.length; k++) {
    const [label, p] = all[k]!;
    const lt = theirs[k]!;
    assert.equal(lt.error, undefined, `${label}: libtorrent refused it`);
    const t = parseTorrent(await readFile(p), { onWarning: () => {} });
    assert.equal(t.name, lt.name, label);
    const ours = t.files.map((x) => ({ path: t.multiFile ? [t.name, ...x.path].join('/') : t.name, pad: x.pad }));
    // libtorrent puts a pad file without a path at ".pad/N" beside the torrent's folder: never written
    const theirsFiles = lt.files!.map((x) => ({ path: x.path.startsWith('.pad/') ? `${t.name}/${x.path}` : x.path, pad: x.pad }));
    assert.deepEqual(ours, theirsFiles, label);
    compared += ours.length;
  }
  assert.ok(compared > 50, `${compared} paths compared`);
  // where we differ on purpose: Windows device names, and a single file named ".." (libtorrent refuses it)
  const con = join(dir, 'con.torrent');
  await writeFile(con, files('d', [f(['CON'])]));
  const dotdot = join(dir, 'dotdot.torrent');
  await writeFile(dotdot, encode(new Map([['info', new Map<string, BValue>([['length', 5], ['name', B('..')], ['piece length', 4], ['pieces', Buffer.alloc(40, 1)]])]])));
  const [c, d] = ltShow([con, dotdot]);
  assert.deepEqual(c!.files!.map((x) => x.path), ['d/CON']);
  assert.deepEqual(parseTorrent(await readFile(con), { onWarning: () => {} }).files[0]!.path, ['_CON']);
  assert.match(d!.error!, /missing name/);
});

/** A torrent whose names try to leave DIR, with each file's bytes and the path it must land at. */
function hostileTorrent(deviceName = true): { bytes: Buffer; content: Buffer; expected: Array<[string, Buffer]>; pieceLength: number } {
  const r = rng(7);
  const data = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(r, 0, 255)));
  const all: Array<[string[], string, number]> = [
    [['..', '..', 'escape.txt'], 'odd/escape.txt', 20_000],
    [['/tmp', 'abs.txt'], 'odd/tmp/abs.txt', 5_000],
    [['a', '..', '..', 'b.bin'], 'odd/a/b.bin', 40_000],
    [['dup.txt'], 'odd/dup.txt', 3_000],
    [['dup.txt'], 'odd/dup.1.txt', 7_000],
    [['DUP.TXT'], 'odd/DUP.2.TXT', 1],
    [['x\\..\\y'], 'odd/x..y', 16_384],
    [['CON'], 'odd/_CON', 100],
    [[''], 'odd/_', 33_000],
  ];
  const list = all.filter(([path]) => deviceName || path[0] !== 'CON');
  const files = list.map(([path, , n]) => ({ path, data: data(n) }));
  const pieceLength = 16384;
  return {
    bytes: makeTorrentBytes('odd', files, pieceLength),
    content: Buffer.concat(files.map((x) => x.data)),
    expected: list.map(([, at], i) => [at, files[i]!.data]),
    pieceLength,
  };
}

/** The output's parent holds the output only, and the output exactly the expected files. */
async function assertConfined(parent: string, expected: Array<[string, Buffer]>, what: string): Promise<void> {
  const dirs = new Set<string>();
  for (const [at] of expected) for (let d = dirname(at); d !== '.'; d = dirname(d)) dirs.add(`out/${d}`);
  assert.deepEqual(await tree(parent), ['out', ...dirs, ...expected.map(([at]) => `out/${at}`)].sort(), what);
  for (const [at, data] of expected) assert.ok((await readFile(join(parent, 'out', at))).equals(data), `${what}: ${at}`);
}

/** The torrent written beside its pieces assembled by the CLI into `assembled/out`. */
async function assembleHostile(h: ReturnType<typeof hostileTorrent>): Promise<{ dir: string; tf: string; frames: Buffer; assembled: string; stderr: string }> {
  const dir = await tmpDir();
  const tf = join(dir, 'odd.torrent');
  await writeFile(tf, h.bytes);
  const frames = await encodeFrames(Array.from({ length: Math.ceil(h.content.length / h.pieceLength) }, (_, i) => ({ index: i, piece: h.content.subarray(i * h.pieceLength, (i + 1) * h.pieceLength) })));
  const assembled = join(dir, 'assembled');
  await mkdir(assembled);
  const a = await runCli(['assemble', tf, '-o', join(assembled, 'out'), '--quiet'], { input: frames });
  assert.equal(a.code, 0, a.stderr);
  return { dir, tf, frames, assembled, stderr: a.stderr };
}

/** Downloads the torrent from a peer on loopback into `downloaded/out`; checks it stayed there. */
async function downloadConfined(dir: string, tf: string, port: number, expected: Array<[string, Buffer]>, what: string): Promise<void> {
  const downloaded = join(dir, 'downloaded');
  await mkdir(downloaded);
  const d = await runCli(['download', tf, '-o', join(downloaded, 'out'), '--port', '0', '--no-announce', '--quiet', '--peer', `127.0.0.1:${port}`], { timeoutMs: 60_000 });
  assert.equal(d.code, 0, d.stderr);
  await assertConfined(downloaded, expected, what);
}

test('a torrent with "..", absolute-looking and duplicate names: assemble, seed, download and verify keep to DIR', async () => {
  const h = hostileTorrent();
  const { dir, tf, frames, assembled, stderr } = await assembleHostile(h);
  assert.match(stderr, /a "\/" or "\\" inside a path component was removed/);
  await assertConfined(assembled, h.expected, 'assemble');

  const v = await runCli(['verify', tf, join(assembled, 'out'), '--summary']);
  assert.equal(v.code, 0, v.stderr);

  const seed = await startSeed(tf, join(assembled, 'out'));
  try {
    await downloadConfined(dir, tf, seed.port, h.expected, 'download');
  } finally {
    await seed.stop();
  }

  const strict = await runCli(['assemble', tf, '-o', join(dir, 'strict'), '--strict'], { input: frames });
  assert.equal(strict.code, 1);
  assert.equal(strict.stderr, `torrent-tools assemble: ${tf}: info.files[0].path[0]: path component ".." is ".."\n`);
});

test('the same torrent on disk is where python-libtorrent looks for it: it seeds our assembled files, we download from it', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent') }, async () => {
  const h = hostileTorrent(false); // libtorrent on Linux keeps "CON" as it is
  const { dir, tf, assembled } = await assembleHostile(h);
  // lt-seed.py only prints its port once libtorrent has checked every piece of its files there
  const lt = await startLtSeeds(tf, join(assembled, 'out'), 1);
  try {
    await downloadConfined(dir, tf, lt.ports[0]!, h.expected, 'download from libtorrent');
  } finally {
    lt.stop();
  }
});

test('info: safe path and rawPath in JSON, a warning on stderr; --strict refuses with one line', async () => {
  const dir = await tmpDir();
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, files('d', [f(['..', 'x']), f(['ok'])]));
  const r = await runCli(['info', tf]);
  assert.equal(r.code, 0, r.stderr);
  const o = JSON.parse(r.stdout.toString()) as { name: string; rawName?: string; files: Array<Record<string, unknown>> };
  assert.equal(o.rawName, undefined);
  assert.deepEqual(o.files.map((x) => Object.keys(x)), [['path', 'rawPath', 'length', 'offset'], ['path', 'length', 'offset']]);
  assert.deepEqual(o.files[0]!['path'], ['x']);
  assert.deepEqual(o.files[0]!['rawPath'], ['..', 'x']);
  assert.equal(r.stderr, `torrent-tools info: warning: ${tf}: a path component "." or ".." was dropped (1 path; torrent-tools info --json shows rawPath)\n`);
  const s = await runCli(['info', tf, '--strict']);
  assert.equal(s.code, 1);
  assert.equal(s.stdout.length, 0);
  assert.equal(s.stderr, `torrent-tools info: ${tf}: info.files[0].path[0]: path component ".." is ".."\n`);
});
