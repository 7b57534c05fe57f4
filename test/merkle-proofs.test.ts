import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HASH_BYTES, LayerTree, MERKLE_BLOCK, fileLeafCount, fileRoot, hashesAnswer, leafHashes, log2, pieceLayerOf, provenNode, unclesFor } from '../src/metainfo/merkle.js';
import { bytes, int, rng, seedFromEnv } from './helpers/random.js';

test('unclesFor: the first log2(length) - 1 proof layers are inside the base nodes\' subtree', () => {
  assert.equal(unclesFor(2, 0), 0);
  assert.equal(unclesFor(2, 3), 3);
  assert.equal(unclesFor(4, 1), 0);
  assert.equal(unclesFor(4, 2), 1);
  assert.equal(unclesFor(512, 8), 0);
  assert.equal(unclesFor(512, 12), 4);
});

test('hashes answers prove their base nodes up to the node they name; any changed hash breaks it', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  for (let round = 0; round < 40; round++) {
    const length = int(r, 1, 70) * int(r, 1, MERKLE_BLOCK) + (round === 0 ? 0 : int(r, 0, 3));
    const data = bytes(r, length);
    const width = fileLeafCount(length);
    const tree = new LayerTree(leafHashes(data), width, 0);
    const height = log2(width);
    assert.deepEqual(tree.node(height, 0), fileRoot(leafHashes(data), length), `seed ${seed}`);
    if (height === 0) continue;
    for (let q = 0; q < 20; q++) {
      const base = int(r, 0, height - 1);
      const span = int(r, 1, height - base);
      const len = 2 ** span;
      const index = len * int(r, 0, (width >>> base) / len - 1);
      const proofLayers = int(r, 0, height - base - 1);
      const req = { base, index, length: len, proofLayers };
      const hashes = hashesAnswer(req, (h, j) => tree.node(h, j));
      assert.ok(hashes !== null);
      assert.equal(hashes.length, HASH_BYTES * (len + unclesFor(len, proofLayers)));
      const p = provenNode(req, hashes);
      assert.equal(p.height, base + Math.max(proofLayers + 1, span), `seed ${seed} ${JSON.stringify(req)}`);
      assert.deepEqual(p.node, tree.node(p.height, p.index), `seed ${seed} ${JSON.stringify(req)}`);
      assert.equal(p.index, index >>> (p.height - base));
      const bad = Buffer.from(hashes);
      bad[int(r, 0, bad.length - 1)]! ^= 1 << int(r, 0, 7);
      assert.notDeepEqual(provenNode(req, bad).node, p.node, `seed ${seed}`);
    }
  }
});

test('a tree from the piece layer has the nodes of the full tree from the piece layer up', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  for (let round = 0; round < 20; round++) {
    const pieceLength = MERKLE_BLOCK * 2 ** int(r, 0, 3);
    const length = pieceLength + int(r, 1, 20 * pieceLength);
    const leaves = leafHashes(bytes(r, length));
    const width = fileLeafCount(length);
    const full = new LayerTree(leaves, width, 0);
    const ph = log2(pieceLength / MERKLE_BLOCK);
    const layer = pieceLayerOf(leaves, pieceLength);
    const fromPieces = new LayerTree(layer, width >>> ph, ph);
    assert.equal(fromPieces.top, log2(width));
    for (let h = ph; h <= log2(width); h++) {
      for (let j = 0; j < width >>> h; j++) assert.deepEqual(fromPieces.node(h, j), full.node(h, j), `seed ${seed} h ${h} j ${j}`);
    }
    assert.equal(fromPieces.node(ph - 1, 0), null);
    assert.equal(fromPieces.node(ph, width >>> ph), null);
  }
});

test('hashesAnswer refuses a single node and says null when a node is unknown', () => {
  assert.throws(() => hashesAnswer({ base: 0, index: 0, length: 1, proofLayers: 0 }, () => Buffer.alloc(32)), /fewer than 2/);
  assert.equal(hashesAnswer({ base: 0, index: 0, length: 2, proofLayers: 1 }, (h) => (h === 0 ? Buffer.alloc(32) : null)), null);
});
