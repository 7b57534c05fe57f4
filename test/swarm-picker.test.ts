import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BLOCK, PiecePicker, type Block } from '../src/swarm/picker.js';
import { rng, seedFromEnv } from './helpers/random.js';

const torrent = (pieces: number, pieceLength = 4 * BLOCK, lastShort = 0) => ({
  pieceCount: pieces,
  pieceLength,
  length: pieces * pieceLength - lastShort,
});
const all = (n: number) => Array.from({ length: n }, (_, i) => i);
const none = () => false;

test('rarest first, ties broken at random, partial pieces first', () => {
  const seed = seedFromEnv();
  const t = torrent(10);
  const p = new PiecePicker(t, all(10), { random: rng(seed) });
  // availability: piece 7 has 1 peer, others 3
  for (let k = 0; k < 3; k++) p.addBitfield((i) => i !== 7 || k === 0, 1);
  const got = p.pick(() => true, 2, Infinity, none);
  assert.deepEqual(got.map((b) => [b.index, b.begin]), [[7, 0], [7, BLOCK]], `seed ${seed}`);
  // the started piece is finished before another starts
  const more = p.pick(() => true, 3, Infinity, none);
  assert.deepEqual(more.slice(0, 2).map((b) => [b.index, b.begin]), [[7, 2 * BLOCK], [7, 3 * BLOCK]]);
  assert.notEqual(more[2]!.index, 7);
  // ties: over many pickers, every equally rare piece gets chosen first sometimes
  const firsts = new Set<number>();
  const r = rng(seed);
  for (let k = 0; k < 200; k++) {
    const q = new PiecePicker(t, all(10), { random: r });
    firsts.add(q.pick(() => true, 1, Infinity, none)[0]!.index);
  }
  assert.equal(firsts.size, 10, `seed ${seed}`);
});

test('only pieces the peer has; sequential mode picks in order', () => {
  const t = torrent(6);
  const p = new PiecePicker(t, [1, 3, 5], { sequential: true });
  assert.deepEqual(p.pick((i) => i === 5 || i === 3, 5, Infinity, none).map((b) => b.index), [3, 3, 3, 3, 5]);
  assert.deepEqual(p.pick((i) => i === 0, 5, Infinity, none), []);
});

test('no new piece starts when the memory bound says so', () => {
  const p = new PiecePicker(torrent(4), all(4));
  assert.deepEqual(p.pick(() => true, 8, 0, none), []);
  assert.equal(p.pick(() => true, 2, Infinity, none).length, 2);
  // the started piece can still be continued
  assert.equal(p.pick(() => true, 8, 0, none).length, 2);
  // room for one more piece: one starts, however many blocks the peer could take
  const one = p.pick(() => true, 100, 1, none);
  assert.equal(one.length, 4);
  assert.equal(new Set(one.map((b) => b.index)).size, 1);
  assert.equal(p.partials.size, 2);
});

test('blocks complete a piece; a short last piece has a short last block', () => {
  const t = torrent(2, 2 * BLOCK, BLOCK / 2);
  const p = new PiecePicker(t, all(2), { sequential: true });
  const blocks = p.pick(() => true, 10, Infinity, none);
  assert.deepEqual(blocks.map((b) => [b.index, b.begin, b.length]), [[0, 0, BLOCK], [0, BLOCK, BLOCK], [1, 0, BLOCK], [1, BLOCK, BLOCK / 2]]);
  assert.equal(p.receive(1, BLOCK, Buffer.alloc(BLOCK), 'a'), 'unwanted', 'wrong length');
  assert.equal(p.receive(1, 0, Buffer.alloc(BLOCK, 1), 'a'), null);
  assert.equal(p.receive(1, 0, Buffer.alloc(BLOCK, 1), 'b'), 'dup');
  const done = p.receive(1, BLOCK, Buffer.alloc(BLOCK / 2, 2), 'b');
  assert.ok(done !== null && typeof done === 'object');
  assert.equal(done.buf.length, BLOCK * 1.5);
  assert.deepEqual(done.from, ['a', 'b']);
  p.finish(done);
  assert.equal(p.receive(7, 0, Buffer.alloc(1), 'x'), 'unwanted');
  assert.equal(p.finished, false);
});

test('released blocks are asked again; a failed piece starts over', () => {
  const p = new PiecePicker(torrent(1), [0]);
  const [a, b] = p.pick(() => true, 2, Infinity, none) as [Block, Block];
  p.release(a);
  assert.deepEqual(p.pick(() => true, 1, Infinity, none), [a]);
  void b;
  const rest = p.pick(() => true, 2, Infinity, none);
  assert.equal(rest.length, 2);
  assert.ok(rest.every((r) => r.begin !== a.begin && r.begin !== b.begin));
  let piece = null;
  for (const blk of [a, b, ...rest]) piece = p.receive(blk.index, blk.begin, Buffer.alloc(blk.length), 'x');
  assert.ok(piece && typeof piece === 'object');
  p.reset(piece);
  assert.equal(p.pending, 1);
  assert.equal(p.pick(() => true, 10, Infinity, none).length, 4);
});

test('a late answer to a released block is kept, and the block is no longer offered', () => {
  const p = new PiecePicker(torrent(1), [0]);
  const [a] = p.pick(() => true, 1, Infinity, none) as [Block];
  p.release(a);
  assert.equal(p.receive(a.index, a.begin, Buffer.alloc(a.length, 7), 'x'), null);
  const rest = p.pick(() => true, 10, Infinity, none);
  assert.equal(rest.length, 3, 'the block that came late is not asked again');
  assert.ok(rest.every((r) => r.begin !== a.begin));
  assert.equal(p.endgame, true);
});

test('a piece stays with the peer that started it while others can start their own', () => {
  const p = new PiecePicker(torrent(4), all(4), { random: () => 0 });
  const a = p.pick(() => true, 2, Infinity, none, 'a');
  assert.equal(new Set(a.map((b) => b.index)).size, 1, 'a starts one piece');
  const b = p.pick(() => true, 2, Infinity, none, 'b');
  assert.ok(b.every((x) => x.index !== a[0]!.index), 'b starts its own rather than joining a\'s');
  // with no room for new pieces, b helps with a's
  const help = p.pick(() => true, 8, 0, none, 'b');
  assert.ok(help.some((x) => x.index === a[0]!.index), 'b joins a\'s piece when it cannot start one');
  assert.deepEqual(p.pick(() => true, 8, 0, none, 'a'), [], 'every block of both pieces is requested');
});

test('end-game: outstanding blocks are requested from a second peer, never twice from one', () => {
  const p = new PiecePicker(torrent(1), [0]);
  const first = p.pick(() => true, 10, Infinity, none);
  assert.equal(first.length, 4);
  assert.ok(p.endgame);
  const mineA = (b: Block) => first.some((x) => x.begin === b.begin);
  assert.deepEqual(p.pick(() => true, 10, Infinity, mineA), [], 'peer A already has them all');
  const second = p.pick(() => true, 10, Infinity, none);
  assert.equal(second.length, 4, 'peer B duplicates them');
  assert.deepEqual(p.pick(() => true, 10, Infinity, none), [], 'at most two copies of a block');
});

test('priority: listed pieces start first, in order, before rarest first', () => {
  const t = torrent(20);
  const p = new PiecePicker(t, all(20));
  for (let k = 0; k < 3; k++) p.addBitfield((i) => i !== 2 || k === 0, 1); // piece 2 is rarest
  p.setPriority([15, 9]);
  assert.ok(p.prioritized);
  const got = p.pick(() => true, 10, Infinity, none);
  assert.deepEqual(got.map((b) => b.index), [15, 15, 15, 15, 9, 9, 9, 9, 2, 2]);
  // a priority piece the peer lacks is skipped, not waited for
  p.setPriority([16, 17]);
  assert.deepEqual(p.pick((i) => i !== 16, 4, Infinity, none).map((b) => b.index), [17, 17, 17, 17]);
  // off again: back to the peer's own started pieces, then rarest first
  p.setPriority([]);
  assert.equal(p.prioritized, false);
  assert.deepEqual(p.pick(() => true, 2, Infinity, none).map((b) => b.index), [2, 2]);
});

test('priority: may start past the memory bound by its own allowance, and takes others\' pieces', () => {
  const p = new PiecePicker(torrent(10), all(10));
  p.addBitfield(() => true, 1);
  p.pick(() => true, 2, Infinity, none, 'slow'); // 'slow' started a piece and holds half of it
  const slowPiece = [...p.partials.keys()][0]!;
  // the piece 'slow' started is a random one: the other priority piece must not be it
  const other = slowPiece === 7 ? 8 : 7;
  p.setPriority([slowPiece, other]);
  // no room under the bound (startNew 0), room for one priority piece
  const got = p.pick(() => true, 10, 0, none, 'fast', { startPriority: 1 });
  assert.deepEqual(got.map((b) => b.index), [slowPiece, slowPiece, other, other, other, other]);
  assert.deepEqual(p.pick(() => true, 10, 0, none, 'other', { startPriority: 0 }), []);
});

test('priority: urgent pieces are asked of a second peer, once per block', () => {
  const p = new PiecePicker(torrent(10), all(10));
  p.addBitfield(() => true, 1);
  p.setPriority([5], 1);
  const a = p.pick(() => true, 4, Infinity, none, 'a');
  assert.deepEqual(a.map((b) => b.index), [5, 5, 5, 5]);
  const mineA = (b: Block) => a.some((x) => x.index === b.index && x.begin === b.begin);
  assert.deepEqual(p.pick(() => true, 10, 0, mineA, 'a'), [], 'never the same peer twice');
  const b = p.pick(() => true, 10, 0, none, 'b');
  assert.deepEqual(b.map((x) => [x.index, x.begin]), [[5, 0], [5, BLOCK], [5, 2 * BLOCK], [5, 3 * BLOCK]]);
  assert.deepEqual(p.pick(() => true, 10, 0, none, 'c'), [], 'two copies at most');
  // not urgent: no second copy
  const q = new PiecePicker(torrent(10), all(10));
  q.setPriority([5], 0);
  q.pick(() => true, 4, Infinity, none, 'a');
  assert.deepEqual(q.pick(() => true, 10, 0, none, 'b'), []);
});
