/**
 * The piece check (metainfo/piece-check.ts) against torrents python-libtorrent 2.0 made: what
 * each piece of a v2-only torrent must hash to (a small file, a big one, its short last piece,
 * a file after an alignment gap, a file of exactly one piece), hybrids by both, the pending
 * state, and the hashing thread computing the same digests.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileLeafCount, leafHashes } from '../src/metainfo/merkle.js';
import { digestPiece, pieceCheck, pieceMatches, type PieceCheck, type PieceDigest } from '../src/metainfo/piece-check.js';
import { pieceSize } from '../src/metainfo/pieces.js';
import { parseTorrent, type Torrent } from '../src/metainfo/torrent.js';
import { HashPool } from '../src/storage/hash-pool.js';
import { PieceLease } from '../src/storage/piece-lease.js';
import { hasLibtorrent, skipUnless } from './helpers/interop.js';
import { contentImage, ltTorrent } from './helpers/lt-v2.js';
import { bytes, rng } from './helpers/random.js';
import { tmpDir, type TestFile } from './helpers/torrent.js';

const PL = 32 * 1024;
const r = rng(52);
// in file-tree order (keys in byte order), as the layout lists them
const files: TestFile[] = [
  { path: ['a.bin'], data: bytes(r, 40_000) }, // two pieces, the second short: a piece layer
  { path: ['c.txt'], data: bytes(r, 5000) }, // after a.bin's alignment gap; less than a piece
  { path: ['empty'], data: Buffer.alloc(0) },
  { path: ['sub', 'b.bin'], data: bytes(r, 100_000) }, // four pieces
  { path: ['z.bin'], data: bytes(r, PL) }, // exactly one piece: no layer, its root is the piece's
];
const skip = skipUnless(hasLibtorrent(), 'python3-libtorrent');
let v2: Torrent;
let hybrid: Torrent;
let single: Torrent;
const singleData = bytes(r, 3 * PL + 100);
const hasher = new HashPool();
after(() => hasher.close());

before(async () => {
  if (skip) return;
  const dir = await tmpDir('tt-piece-check-');
  v2 = parseTorrent(await ltTorrent(dir, 'd', files, 'v2', PL, join(dir, 'v2.torrent')));
  hybrid = parseTorrent(await ltTorrent(dir, 'd', files, 'hybrid', PL, join(dir, 'hybrid.torrent')));
  single = parseTorrent(await ltTorrent(dir, 's.bin', [{ path: ['s.bin'], data: singleData }], 'v2', PL, join(dir, 's.torrent'), true));
});

function piece(t: Torrent, img: Buffer, i: number): Buffer {
  return Buffer.from(img.subarray(i * t.pieceLength, i * t.pieceLength + pieceSize(t, i)));
}

function merkle(c: PieceCheck): Extract<PieceCheck, { kind: 'merkle' }> {
  assert.equal(c.kind, 'merkle');
  return c as Extract<PieceCheck, { kind: 'merkle' }>;
}

test('v2-only: every piece matches its file node; a changed data byte fails, alignment bytes are not data', { skip }, () => {
  assert.equal(v2.version, 2);
  const img = contentImage(v2, files);
  for (let i = 0; i < v2.pieceCount; i++) {
    const c = merkle(pieceCheck(v2, i));
    const p = piece(v2, img, i);
    assert.ok(pieceMatches(v2, i, p), `piece ${i}`);
    const bad = Buffer.from(p);
    bad[c.digest.dataLength - 1]! ^= 1;
    assert.ok(!pieceMatches(v2, i, bad), `piece ${i} with its last data byte changed`);
    if (c.digest.dataLength < p.length) {
      const gap = Buffer.from(p);
      gap[p.length - 1]! ^= 1;
      assert.ok(pieceMatches(v2, i, gap), `piece ${i}: the alignment after the data is not hashed`);
    }
    assert.ok(!pieceMatches(v2, (i + 1) % v2.pieceCount, p), `piece ${i} is not piece ${(i + 1) % v2.pieceCount}`);
  }
});

test('v2-only: the rule per piece (big file, its short last piece, small file after a gap, one-piece file)', { skip }, () => {
  const at = (name: string): number => v2.files.findIndex((f) => f.path.join('/') === name);
  const a = v2.files[at('a.bin')]!;
  const layerA = v2.pieceLayers!.get(a.piecesRoot!.toString('hex'))!;
  const a1 = merkle(pieceCheck(v2, 1));
  assert.deepEqual([a1.file, a1.digest.dataLength, a1.digest.leaves], [at('a.bin'), 40_000 - PL, PL / 16384]);
  assert.deepEqual(a1.want, layerA.subarray(32, 64), 'the second node of a.bin\'s piece layer');
  const c = v2.files[at('c.txt')]!;
  assert.equal(c.offset, 2 * PL, 'c.txt starts on the piece boundary after a.bin');
  const c2 = merkle(pieceCheck(v2, 2));
  assert.deepEqual([c2.file, c2.digest.dataLength, c2.digest.leaves], [at('c.txt'), 5000, fileLeafCount(5000)]);
  assert.deepEqual(c2.want, c.piecesRoot, 'a file of less than a piece: its pieces root');
  const b = v2.files[at('sub/b.bin')]!;
  const lastB = b.offset / PL + 3;
  const bl = merkle(pieceCheck(v2, lastB));
  assert.deepEqual([bl.digest.dataLength, bl.digest.leaves], [100_000 - 3 * PL, PL / 16384]);
  const z = v2.files[at('z.bin')]!;
  const zc = merkle(pieceCheck(v2, z.offset / PL));
  assert.deepEqual([zc.digest.dataLength, zc.digest.leaves], [PL, 2]);
  assert.deepEqual(zc.want, z.piecesRoot);
  assert.equal(v2.pieceCount, z.offset / PL + 1);
});

test('v2-only single file: the last piece is whole on the wire (tail pad), its data short', { skip }, () => {
  assert.equal(single.length, 4 * PL, 'libtorrent pads the last file to the piece boundary');
  const img = contentImage(single, [{ path: ['s.bin'], data: singleData }], true);
  for (let i = 0; i < single.pieceCount; i++) assert.ok(pieceMatches(single, i, piece(single, img, i)), `piece ${i}`);
  assert.equal(merkle(pieceCheck(single, 3)).digest.dataLength, 100);
});

test('v2-only without its piece layers: big files\' pieces are pending, small files\' still checked', { skip }, () => {
  const bare: Torrent = { ...v2, pieceLayers: new Map() };
  const img = contentImage(v2, files);
  const c = pieceCheck(bare, 0);
  assert.equal(c.kind, 'pending');
  assert.match((c as { why: string }).why, /a\.bin/);
  assert.ok(!pieceMatches(bare, 0, piece(v2, img, 0)), 'a pending piece is never accepted');
  assert.ok(pieceMatches(bare, 2, piece(v2, img, 2)), 'c.txt needs no layer');
});

test('hybrid: both views checked, the SHA-1 of the whole piece and the merkle digest of its file bytes', { skip }, async () => {
  assert.equal(hybrid.version, 'hybrid');
  const img = contentImage(hybrid, files);
  for (let i = 0; i < hybrid.pieceCount; i++) {
    const c = pieceCheck(hybrid, i);
    assert.equal(c.kind, 'both');
    const p = piece(hybrid, img, i);
    const v2Want = pieceCheck(v2, i);
    assert.deepEqual((c as { want: Buffer }).want, Buffer.concat([createHash('sha1').update(p).digest(), (v2Want as { want: Buffer }).want]));
    assert.ok(pieceMatches(hybrid, i, p));
    const r = await hasher.digest(Buffer.from(p), (c as { digest: PieceDigest }).digest);
    assert.deepEqual(r.digest, (c as { want: Buffer }).want, 'the hashing thread computes both');
  }
  // the SHA-1 right, the v2 view wrong (a hybrid whose views disagree): refused
  const a = hybrid.files.findIndex((f) => f.path.join('/') === 'sub/b.bin');
  const bad = Buffer.from(hybrid.pieceLayers!.get(hybrid.files[a]!.piecesRoot!.toString('hex'))!);
  bad[0]! ^= 1;
  const lying: Torrent = { ...hybrid, pieceLayers: new Map([...hybrid.pieceLayers!, [hybrid.files[a]!.piecesRoot!.toString('hex'), bad]]) };
  const first = hybrid.files[a]!.offset / PL;
  assert.ok(!pieceMatches(lying, first, piece(hybrid, img, first)), 'a SHA-1 match alone is not enough');
  assert.ok(pieceMatches(lying, first + 1, piece(hybrid, img, first + 1)));
  // without its layers (a hybrid magnet before they are fetched): the SHA-1 alone
  const bare: Torrent = { ...hybrid, pieceLayers: new Map() };
  assert.equal(pieceCheck(bare, first).kind, 'sha1');
  assert.ok(pieceMatches(bare, first, piece(hybrid, img, first)));
});

test('the hashing thread: the same merkle digest and leaves, the bytes moved back; SHA-1 unchanged', { skip }, async () => {
  const img = contentImage(v2, files);
  for (const i of [1, 2, v2.pieceCount - 1]) {
    const c = merkle(pieceCheck(v2, i));
    const p = piece(v2, img, i);
    const moved = Buffer.from(new ArrayBuffer(p.length));
    p.copy(moved);
    const r = await hasher.digest(moved, c.digest, true);
    assert.equal(moved.length, 0, 'the memory moved to the thread');
    assert.deepEqual(r.data, p);
    assert.deepEqual(r.digest, c.want);
    assert.deepEqual(r.leaves, leafHashes(p.subarray(0, c.digest.dataLength)));
    assert.deepEqual(digestPiece(c.digest, p, true).leaves, r.leaves);
    const lease = new PieceLease(Buffer.from(p));
    assert.deepEqual((await lease.digest(hasher, c.digest)).digest, c.want);
    assert.deepEqual(lease.bytes, p);
  }
  const plain = Buffer.from('abc');
  const s = await hasher.sha1(plain);
  assert.deepEqual(s.digest, createHash('sha1').update('abc').digest());
  assert.equal(s.leaves, undefined);
});
