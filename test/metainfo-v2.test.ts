/**
 * BEP 52 metainfo against python-libtorrent 2: its v2-only and hybrid torrents parse to the
 * files, roots and info hashes it reports; ours have its info hashes for the same files and
 * options and load in it; broken ones fail with one line saying where.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decode, encode, keyOf, type BDict, type BValue } from '../src/bencode/index.js';
import { fileLeafCount, pieceRoot } from '../src/metainfo/merkle.js';
import { MetainfoError, parseTorrent, type Torrent } from '../src/metainfo/torrent.js';
import { runCli } from './helpers/cli.js';
import { FIXTURES, hasLibtorrent, skipUnless, SYSTEM_PYTHON } from './helpers/interop.js';
import { bytes, rng, seedFromEnv } from './helpers/random.js';
import { tmpDir } from './helpers/torrent.js';

const LT = fileURLToPath(new URL('lt-v2.py', FIXTURES));
const skip = skipUnless(hasLibtorrent(), 'python3-libtorrent');

interface LtFile {
  path: string;
  length: number;
  offset: number;
  pad: boolean;
  root: string | null;
}
interface LtView {
  v1: string | null;
  v2: string;
  best: string;
  name: string;
  pieces: number;
  files: LtFile[];
}

function lt(args: string[]): LtView {
  const r = spawnSync(SYSTEM_PYTHON, [LT, ...args], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `lt-v2.py ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as LtView;
}

/** Shapes: name → files (relative path → length); a single file when the map has one entry named as the shape. */
const SHAPES: Record<string, Record<string, number>> = {
  tiny: { tiny: 5 },
  long: { long: 100_000 },
  exact: { exact: 65_536 },
  mixed: { 'Z big': 70_000, 'a.bin': 100_000, 'b/c/deep.txt': 40_000, 'b/empty': 0, 'x/é ü.txt': 5, 'x/one-piece': 32_768, 'zz-last-empty': 0 },
  empties: { '0-empty': 0, 'a/mid': 20_000, 'b-empty': 0, 'c': 1 },
};

const seed = seedFromEnv();
let dir = '';

before(async () => {
  dir = await tmpDir('tt-v2-');
  const r = rng(seed);
  for (const [shape, files] of Object.entries(SHAPES)) {
    const single = Object.keys(files).length === 1;
    for (const [rel, n] of Object.entries(files)) {
      const p = single ? join(dir, 'src', shape) : join(dir, 'src', shape, rel);
      await mkdir(join(p, '..'), { recursive: true });
      await writeFile(p, bytes(r, n));
    }
  }
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Our model's files as libtorrent lists them (multi-file paths and pads start with the name). */
function ours(t: Torrent): LtFile[] {
  return t.files.map((f) => ({
    // (a single file's tail pad too: libtorrent names it NAME/.pad/N)
    path: t.multiFile || f.pad ? [t.name, ...f.path].join('/') : f.path.join('/'),
    length: f.length,
    offset: f.offset,
    pad: f.pad,
    root: f.piecesRoot ? f.piecesRoot.toString('hex') : null,
  }));
}

for (const mode of ['v2', 'hybrid'] as const) {
  for (const [shape, pl] of [['tiny', 16384], ['long', 16384], ['exact', 32768], ['mixed', 32768], ['empties', 16384]] as const) {
    test(`libtorrent ${mode} torrent "${shape}" (piece ${pl}): same files, roots and hashes; ours is byte-identical`, { skip }, async () => {
      const src = join(dir, 'src', shape);
      const ltFile = join(dir, `lt-${shape}-${mode}.torrent`);
      const view = lt(['make', src, ltFile, mode, String(pl)]);
      const buf = await readFile(ltFile);
      const t = parseTorrent(buf);
      assert.equal(t.version, mode === 'v2' ? 2 : 'hybrid');
      assert.equal(t.infoHashV2!.toString('hex'), view.v2);
      assert.equal(t.infoHashHex, mode === 'v2' ? view.best : view.v1);
      assert.equal(t.name, view.name);
      assert.equal(t.pieceCount, view.pieces);
      // libtorrent pads a v2-only torrent's last file too, and so do we (its last piece is whole)
      assert.deepEqual(ours(t), view.files);
      if (mode === 'v2') assert.equal(t.pieceHashes.length, 0);
      // every file longer than a piece has its layer
      for (const f of t.files) if (f.length > pl) assert.ok(t.pieceLayers!.has(f.piecesRoot!.toString('hex')), f.path.join('/'));

      const ourFile = join(dir, `our-${shape}-${mode}.torrent`);
      const r = await runCli(['create', mode === 'v2' ? '--v2' : '--hybrid', '--no-date', '--quiet', '--piece-length', String(pl), src, '-o', ourFile]);
      assert.equal(r.code, 0, r.stderr);
      const mine = parseTorrent(await readFile(ourFile));
      assert.equal(mine.infoRaw.toString('hex'), t.infoRaw.toString('hex'), 'the info dicts are byte-identical');
      const back = lt(['describe', ourFile]);
      assert.equal(back.v2, view.v2, 'libtorrent loads ours with the same v2 hash');
      assert.equal(back.v1, view.v1);
      const top = decode(await readFile(ourFile)) as BDict;
      const theirTop = decode(buf) as BDict;
      assert.deepEqual(top.get('piece layers'), theirTop.get('piece layers'), 'the same piece layers');
    });
  }
}

test('create --hybrid with private, source, trackers, web seeds and a comment: libtorrent\'s info hashes', { skip }, async () => {
  const src = join(dir, 'src', 'mixed');
  const options = { private: true, source: 'SITE', comment: 'hi', trackers: ['http://127.0.0.1:1/announce'], webSeeds: ['http://127.0.0.1:2/'] };
  for (const mode of ['v2', 'hybrid'] as const) {
    const view = lt(['make', src, join(dir, `opt-${mode}.torrent`), mode, '65536', JSON.stringify(options)]);
    const r = await runCli(['create', `--${mode}`, '--no-date', '--quiet', '--piece-length', '64K', '--private', '--source', 'SITE', '--comment', 'hi', '--announce', options.trackers[0]!, '--web-seed', options.webSeeds[0]!, src]);
    assert.equal(r.code, 0, r.stderr);
    const t = parseTorrent(r.stdout);
    assert.equal(t.infoHashV2!.toString('hex'), view.v2, mode);
    assert.equal(t.infoHashHex, mode === 'v2' ? view.best : view.v1, mode);
    assert.ok(t.private);
    assert.equal(t.source, 'SITE');
  }
});

// ---- hand-crafted broken torrents, from a good one of our own ----

const B = (s: string): Buffer => Buffer.from(s);

/** A good multi-file torrent (v2 or hybrid) made by our create, decoded for editing. */
async function good(mode: 'v2' | 'hybrid'): Promise<BDict> {
  const r = await runCli(['create', `--${mode}`, '--no-date', '--quiet', '--piece-length', '32K', join(dir, 'src', 'mixed')]);
  assert.equal(r.code, 0, r.stderr);
  return decode(r.stdout) as BDict;
}

function node(d: BDict, ...path: string[]): BDict {
  let n = d;
  for (const k of path) n = n.get(keyOf(k)) as BDict;
  return n;
}

function failsWith(top: BDict, re: RegExp, strict = false): void {
  const buf = encode(top);
  let message = 'no error';
  try {
    parseTorrent(buf, { strict });
  } catch (e) {
    assert.ok(e instanceof MetainfoError, String(e));
    message = e.message;
  }
  assert.match(message, re);
  assert.ok(!message.includes('\n'), 'one line');
}

test('broken v2 torrents fail with one line saying where', async () => {
  type Edit = [string, (top: BDict) => void, RegExp];
  const entry = (top: BDict, ...p: string[]): BDict => node(top, 'info', 'file tree', ...p, '');
  const aRoot = (top: BDict): Buffer => entry(top, 'a.bin').get('pieces root') as Buffer;
  const edits: Edit[] = [
    ['layer of the wrong length', (top) => {
      const layers = top.get('piece layers') as BDict;
      const k = aRoot(top).toString('latin1');
      layers.set(k, (layers.get(k) as Buffer).subarray(32));
    }, /^info\.file tree\/a\.bin: piece layer is 96 bytes, not 128 \(4 pieces of 32768\)$/],
    ['layer that does not hash to the root', (top) => {
      const layers = top.get('piece layers') as BDict;
      const k = aRoot(top).toString('latin1');
      const l = Buffer.from(layers.get(k) as Buffer);
      l[0]! ^= 1;
      layers.set(k, l);
    }, /^info\.file tree\/a\.bin: piece layer does not hash to the pieces root$/],
    ['missing layer', (top) => (top.get('piece layers') as BDict).delete(aRoot(top).toString('latin1')), /^info\.file tree\/a\.bin: no entry in piece layers for its pieces root [0-9a-f]{64}$/],
    ['no piece layers at all', (top) => top.delete('piece layers'), /^info\.file tree\/Z big: no entry in piece layers/],
    // a one-piece file's root is checked against its data only; a longer file's against its layer
    ['wrong root', (top) => entry(top, 'a.bin').set('pieces root', Buffer.alloc(32, 7)), /^info\.file tree\/a\.bin: no entry in piece layers for its pieces root (07){32}$/],
    ['missing root', (top) => entry(top, 'b', 'c', 'deep.txt').delete('pieces root'), /^info\.file tree\/b\/c\/deep\.txt: pieces root is missing$/],
    ['root of 31 bytes', (top) => entry(top, 'b', 'c', 'deep.txt').set('pieces root', Buffer.alloc(31)), /^info\.file tree\/b\/c\/deep\.txt: pieces root is 31 bytes, not 32$/],
    ['piece length not a power of two', (top) => node(top, 'info').set('piece length', 49152), /^info\.piece length: 49152 is not a power of two of at least 16384/],
    ['piece length below 16 KiB', (top) => node(top, 'info').set('piece length', 8192), /^info\.piece length: 8192 is not a power of two of at least 16384/],
    ['file entry with siblings', (top) => node(top, 'info', 'file tree', 'a.bin').set('zz', new Map([['', new Map([['length', 0]])]])), /^info\.file tree\/a\.bin: a file entry \(key ""\) has other keys beside it$/],
    ['root of the tree is a file', (top) => node(top, 'info', 'file tree').set('', new Map([['length', 1]])), /^info\.file tree: the root of the tree is a file entry/],
    ['negative length', (top) => entry(top, 'b', 'empty').set('length', -1), /^info\.file tree\/b\/empty: length -1 is out of range$/],
    ['not a dict', (top) => node(top, 'info', 'file tree').set('q', 5), /^info\.file tree\/q: expected a dict$/],
    ['meta version 3', (top) => node(top, 'info').set('meta version', 3), /^info\.meta version: version 3 is newer than this program reads/],
  ];
  for (const [what, edit, re] of edits) {
    const top = await good('v2');
    edit(top);
    await test(what, () => failsWith(top, re));
  }
  // a name that needs mapping is refused only with --strict; otherwise sanitize.ts maps it
  await test('a path component ".." (strict)', async () => {
    const top = await good('v2');
    node(top, 'info', 'file tree').set('..', new Map([['dotdot.txt', new Map([['', new Map([['length', 0]])]])]]));
    failsWith(top, /^info\.file tree\/\.\.\/dotdot\.txt(\[0\])?: path component "\.\." is "\.\."$/, true);
    const t = parseTorrent(encode(top));
    const f = t.files.find((x) => x.rawPath?.[0] === '..');
    assert.deepEqual(f?.path, ['dotdot.txt']);
  });
});

test('broken hybrids: the v1 and v2 views must agree', async () => {
  type Edit = [string, (files: BDict[], top: BDict) => void, RegExp];
  const edits: Edit[] = [
    ['a length differs', (files) => files[0]!.set('length', 69_999), /^info\.files\[0\]: "Z big" is 69999 bytes in the v1 view, 70000 in the file tree$/],
    ['the order differs', (files) => {
      const [a, b] = [files[0]!.get('path'), files[2]!.get('path')];
      files[0]!.set('path', b!);
      files[2]!.set('path', a!);
    }, /^info\.files\[0\]: "a\.bin" where the file tree has "Z big" \(v1 and v2 views differ\)$/],
    ['a pad file missing', (files) => files.splice(1, 1), /^info\.files\[1\]: "a\.bin" starts at byte 70000, not on the piece boundary 98304/],
    ['a pad file too short', (files) => files[1]!.set('length', (files[1]!.get('length') as number) - 1), /^info\.files\[2\]: "a\.bin" starts at byte 98303, not on the piece boundary 98304/],
    ['a file only in the v1 view', (files) => files.push(new Map<string, BValue>([['length', 0], ['path', [B('extra')]]])), /^info\.files\[\d+\]: "extra" is not in the file tree/],
    ['a file only in the v2 view', (files) => files.splice(files.findIndex((f) => (f.get('path') as Buffer[])[0]!.toString() === 'zz-last-empty'), 1), /^info\.files: the file tree has "zz-last-empty", which the v1 view lacks$/],
  ];
  for (const [what, edit, re] of edits) {
    const top = await good('hybrid');
    const info = node(top, 'info');
    const files = info.get('files') as BDict[];
    edit(files, top);
    // the v1 piece count follows the edited lengths, so the message is the views' disagreement
    const length = files.reduce((n, f) => n + (f.get('length') as number), 0);
    info.set('pieces', Buffer.alloc(Math.ceil(length / 32768) * 20));
    await test(what, () => failsWith(top, re));
  }
});

test('piece layers: unknown keys warn, a magnet\'s metadata may lack layers', async () => {
  const top = await good('v2');
  (top.get('piece layers') as BDict).set('x'.repeat(32), Buffer.alloc(32));
  const warnings: string[] = [];
  parseTorrent(encode(top), { onWarning: (m) => warnings.push(m) });
  assert.deepEqual(warnings, ['piece layers: 1 entries that no file longer than a piece uses were ignored']);
  top.delete('piece layers');
  const t = parseTorrent(encode(top), { allowMissingLayers: true });
  assert.equal(t.pieceLayers!.size, 0);
  assert.equal(t.version, 2);
});

test('a v2-only single file is named by its file-tree key; files keep tree order with implicit pads', async () => {
  const file = (length: number, root: number): BValue => new Map([['', new Map<string, BValue>(length > 0 ? [['length', length], ['pieces root', Buffer.alloc(32, root)]] : [['length', 0]])]]);
  const tree = new Map<string, BValue>([['a', file(0, 0)], ['b', file(20_000, 1)], ['c', new Map([['d', file(5, 2)]])], ['e', file(3, 3)]]);
  const info = new Map<string, BValue>([['file tree', tree], ['meta version', 2], ['name', B('n')], ['piece length', 16384]]);
  const t = parseTorrent(encode(new Map([['info', info]])), { allowMissingLayers: true });
  assert.deepEqual(t.files.map((f) => [f.path.join('/'), f.offset, f.pad]), [['a', 0, false], ['b', 0, false], ['.pad/12768', 20000, true], ['c/d', 32768, false], ['.pad/16379', 32773, true], ['e', 49152, false], ['.pad/16381', 49155, true]]);
  assert.equal(t.length, 65536);
  assert.equal(t.pieceCount, 4);
  assert.equal(t.infoHashHex, t.infoHashV2!.subarray(0, 20).toString('hex'));
  const single = encode(new Map([['info', new Map<string, BValue>([['file tree', new Map([['real', file(5, 2)]])], ['meta version', 2], ['name', B('other')], ['piece length', 16384]])]]));
  const s = parseTorrent(single);
  assert.equal(s.multiFile, false);
  assert.equal(s.name, 'real');
  assert.deepEqual(s.files.map((f) => f.path), [['real'], ['.pad', '16379']]);
});

test(`seed ${seed}: random file trees parse to the layout their lengths give, or fail with a MetainfoError`, () => {
  const r = rng(seed);
  for (let n = 0; n < 300; n++) {
    const pl = 16384 * 2 ** Math.floor(r() * 3);
    const count = 1 + Math.floor(r() * 6);
    const tree = new Map<string, BValue>();
    const lengths: number[] = [];
    for (let i = 0; i < count; i++) {
      const len = r() < 0.2 ? 0 : Math.floor(r() * pl * 1.5);
      lengths.push(len);
      const e = new Map<string, BValue>([['length', len]]);
      if (len > 0) e.set('pieces root', Buffer.alloc(r() < 0.05 ? 31 : 32, i));
      tree.set(`f${i}`, new Map([['', e]]));
    }
    const info = new Map<string, BValue>([['file tree', tree], ['meta version', 2], ['name', B('n')], ['piece length', pl]]);
    try {
      const t = parseTorrent(encode(new Map([['info', info]])), { allowMissingLayers: true });
      const real = t.files.filter((f) => !f.pad);
      assert.deepEqual(real.map((f) => f.length), lengths, `seed ${seed}`);
      for (const f of real) if (f.length > 0) assert.equal(f.offset % pl, 0, `seed ${seed}: every file starts on a piece boundary`);
      assert.equal(t.pieceCount, Math.ceil(t.length / pl));
    } catch (e) {
      assert.ok(e instanceof MetainfoError, `seed ${seed}: ${String(e)}`);
      assert.ok(!e.message.includes('\n'));
    }
  }
});

test('info: metaVersion, piecesRoot, pieceLayers; --pieces gives the v2 digests the data hashes to', async () => {
  const src = join(dir, 'src', 'mixed');
  for (const mode of ['v2', 'hybrid'] as const) {
    const file = join(dir, `info-${mode}.torrent`);
    const c = await runCli(['create', `--${mode}`, '--no-date', '--quiet', '--piece-length', '32K', src, '-o', file]);
    assert.equal(c.code, 0, c.stderr);
    const r = await runCli(['info', '--pieces', file]);
    assert.equal(r.code, 0, r.stderr);
    const o = JSON.parse(r.stdout.toString()) as { metaVersion: unknown; pieceLayers: number; files: Array<{ path: string[]; length: number; offset: number; pad?: true; piecesRoot?: string }>; pieces: string[]; piecesV2?: string[] };
    assert.equal(o.metaVersion, mode === 'v2' ? 2 : 'hybrid');
    assert.equal(o.pieceLayers, 3, 'Z big, a.bin, b/c/deep.txt are longer than a piece');
    const v2 = mode === 'v2' ? o.pieces : o.piecesV2!;
    if (mode === 'hybrid') assert.ok(o.pieces.every((h) => h.length === 40));
    // each piece's digest from the file bytes alone, as a v2 peer checks it
    for (const f of o.files) {
      if (f.pad || f.length === 0) continue;
      assert.match(f.piecesRoot!, /^[0-9a-f]{64}$/);
      const data = await readFile(join(src, ...f.path));
      const perPiece = f.length > 32768 ? 2 : fileLeafCount(f.length);
      for (let k = 0; k * 32768 < f.length; k++) {
        const want = pieceRoot(data.subarray(k * 32768, (k + 1) * 32768), perPiece).toString('hex');
        assert.equal(v2[f.offset / 32768 + k], want, `${mode} ${f.path.join('/')} piece ${k}`);
      }
      if (f.length <= 32768) assert.equal(f.piecesRoot, v2[f.offset / 32768]);
    }
  }
});
