/**
 * BEP 52 merkle trees, pure: SHA-256 over 16 KiB blocks, branching factor 2. A file's tree has
 * as many leaves as the next power of two above its block count; leaves past the end of the
 * file are zero (32 zero bytes, not the hash of a zero block), so a subtree lying wholly past
 * the end has a fixed hash per height (`padHash`). Nodes travel as concatenated 32-byte hashes
 * in one Buffer: a layer of n nodes is n × 32 bytes.
 */
import { createHash } from 'node:crypto';

/** Bytes a leaf covers. */
export const MERKLE_BLOCK = 16 * 1024;
/** Bytes of one node. */
export const HASH_BYTES = 32;

export function nextPow2(n: number): number {
  if (n <= 1) return 1;
  return 2 ** Math.ceil(Math.log2(n));
}

/** log2 of a power of two. */
export function log2(n: number): number {
  return Math.round(Math.log2(n));
}

const pads: Buffer[] = [Buffer.alloc(HASH_BYTES)];

/** The root of a subtree of 2^height zero leaves. */
export function padHash(height: number): Buffer {
  while (pads.length <= height) {
    const below = pads[pads.length - 1]!;
    pads.push(createHash('sha256').update(below).update(below).digest());
  }
  return pads[height]!;
}

/** The leaf hashes of `data`: SHA-256 of each 16 KiB block, the last one as short as it is. */
export function leafHashes(data: Uint8Array): Buffer {
  const n = Math.ceil(data.length / MERKLE_BLOCK);
  const out = Buffer.allocUnsafe(n * HASH_BYTES);
  for (let i = 0; i < n; i++) {
    createHash('sha256').update(data.subarray(i * MERKLE_BLOCK, (i + 1) * MERKLE_BLOCK)).digest().copy(out, i * HASH_BYTES);
  }
  return out;
}

/**
 * The layer above `nodes` (nodes at `height` above the leaves; missing right siblings are
 * `padHash(height)`).
 */
export function layerAbove(nodes: Buffer, height: number): Buffer {
  const n = nodes.length / HASH_BYTES;
  const up = Math.ceil(n / 2);
  const out = Buffer.allocUnsafe(up * HASH_BYTES);
  for (let i = 0; i < up; i++) {
    const left = nodes.subarray(2 * i * HASH_BYTES, (2 * i + 1) * HASH_BYTES);
    const right = 2 * i + 1 < n ? nodes.subarray((2 * i + 1) * HASH_BYTES, (2 * i + 2) * HASH_BYTES) : padHash(height);
    createHash('sha256').update(left).update(right).digest().copy(out, i * HASH_BYTES);
  }
  return out;
}

/**
 * The root of a tree whose layer at `height` is `nodes`, padded to `width` nodes (a power of
 * two, at least the node count) with `padHash(height)`.
 */
export function merkleRoot(nodes: Buffer, width: number, height = 0): Buffer {
  if (nodes.length === 0) return padHash(height + log2(width));
  let layer = nodes;
  let h = height;
  for (let w = width; w > 1; w /= 2) layer = layerAbove(layer, h++);
  return Buffer.from(layer.subarray(0, HASH_BYTES));
}

/** Every layer from `nodes` (at `height`, padded to `width`) up to the root; [0] is `nodes`. */
export function merkleLayers(nodes: Buffer, width: number, height = 0): Buffer[] {
  const out = [nodes];
  let h = height;
  for (let w = width; w > 1; w /= 2) out.push(layerAbove(out[out.length - 1]!, h++));
  return out;
}

/** Leaves of a file's tree: the next power of two above its block count. */
export function fileLeafCount(length: number): number {
  return nextPow2(Math.ceil(length / MERKLE_BLOCK));
}

/** The pieces root of a file of `length` bytes from its leaf hashes. */
export function fileRoot(leaves: Buffer, length: number): Buffer {
  return merkleRoot(leaves, fileLeafCount(length));
}

/**
 * A file's piece layer (the `piece layers` value): one node per piece, each the root of the
 * piece's `pieceLength / 16 KiB` leaves; nodes wholly past the end of the file are left out.
 * Only files longer than one piece have one.
 */
export function pieceLayerOf(leaves: Buffer, pieceLength: number): Buffer {
  const perPiece = pieceLength / MERKLE_BLOCK;
  const pieces = Math.ceil(leaves.length / HASH_BYTES / perPiece);
  const out = Buffer.allocUnsafe(pieces * HASH_BYTES);
  for (let p = 0; p < pieces; p++) {
    merkleRoot(leaves.subarray(p * perPiece * HASH_BYTES, (p + 1) * perPiece * HASH_BYTES), perPiece).copy(out, p * HASH_BYTES);
  }
  return out;
}

/** The pieces root from a file's piece layer (for checking `piece layers` against the roots). */
export function rootOfPieceLayer(layer: Buffer, pieceLength: number): Buffer {
  return merkleRoot(layer, nextPow2(layer.length / HASH_BYTES), log2(pieceLength / MERKLE_BLOCK));
}

/**
 * What one piece of a v2 file must hash to: the data (`dataLength` bytes of the file, the rest
 * of the piece being alignment) hashed as `leaves` leaves. For a file longer than one piece,
 * `leaves` is pieceLength / 16 KiB and the digest is its piece-layer node; for a file of one
 * piece or less, `leaves` is `fileLeafCount(length)` and the digest is the pieces root.
 */
export function pieceRoot(data: Uint8Array, leaves: number): Buffer {
  return merkleRoot(leafHashes(data), leaves);
}

/*
 * BEP 52 hash requests ask for `length` nodes of the layer `base` above the leaves from node
 * `index`, with `proofLayers` layers of proof above them. The proof of a layer is the sibling
 * of the ancestor there; the first log2(length) - 1 layers are ancestors whose siblings are
 * among the nodes sent (inside their own subtree), so they are left out but still counted.
 * libtorrent (merkle_tree::get_hashes, hash_picker::add_hashes) counts it so: for proof layer
 * k = 0, 1, … the ancestor is at height base + k + 1, and its sibling is sent once
 * k >= log2(length) - 1.
 */

/** Uncle hashes a `hashes` answer carries for `length` nodes and `proofLayers` proof layers. */
export function unclesFor(length: number, proofLayers: number): number {
  return Math.max(0, proofLayers - log2(length) + 1);
}

export interface HashRangeFields {
  base: number;
  index: number;
  length: number;
  proofLayers: number;
}

/**
 * The hashes of the answer to `r`: the base nodes, then the uncles from the lowest up.
 * `node(height, index)` gives a node of the file's tree (null when it cannot: then so does this).
 */
export function hashesAnswer(r: HashRangeFields, node: (height: number, index: number) => Buffer | null): Buffer | null {
  // a single node has no subtree of its own, and libtorrent's two sides count its uncles
  // differently: such requests are refused before they get here
  if (r.length < 2) throw new RangeError('a hash request for fewer than 2 nodes');
  const out = Buffer.allocUnsafe(HASH_BYTES * (r.length + unclesFor(r.length, r.proofLayers)));
  let at = 0;
  for (let j = r.index; j < r.index + r.length; j++) {
    const n = node(r.base, j);
    if (n === null) return null;
    n.copy(out, at);
    at += HASH_BYTES;
  }
  for (let k = log2(r.length) - 1; k < r.proofLayers; k++) {
    const n = node(r.base + k + 1, (r.index >>> (k + 1)) ^ 1);
    if (n === null) return null;
    n.copy(out, at);
    at += HASH_BYTES;
  }
  return out;
}

/**
 * The node a `hashes` answer proves: the root of its base nodes, hashed up with each uncle.
 * The caller compares it with one it trusts (a piece-layer node, a pieces root) at `height`,
 * `index`; only then are the base nodes to be believed.
 */
export function provenNode(r: HashRangeFields, hashes: Buffer): { height: number; index: number; node: Buffer } {
  const uncles = unclesFor(r.length, r.proofLayers);
  if (hashes.length !== HASH_BYTES * (r.length + uncles)) throw new RangeError(`${hashes.length / HASH_BYTES} hashes for ${r.length} nodes and ${uncles} uncles`);
  const span = log2(r.length);
  let node = merkleRoot(hashes.subarray(0, r.length * HASH_BYTES), r.length, r.base);
  let index = r.index >>> span;
  for (let u = 0; u < uncles; u++) {
    const uncle = hashes.subarray((r.length + u) * HASH_BYTES, (r.length + u + 1) * HASH_BYTES);
    const h = createHash('sha256');
    if (index % 2 === 0) h.update(node).update(uncle);
    else h.update(uncle).update(node);
    node = h.digest();
    index >>>= 1;
  }
  return { height: r.base + span + uncles, index, node };
}

/**
 * A file tree known from one layer up: `nodes` at `height`, padded to `width` nodes, and every
 * layer above (a piece layer and the root above it; or the leaves of a block and its subtree).
 */
export class LayerTree {
  readonly height: number;
  readonly width: number;
  private readonly layers: Buffer[];
  constructor(nodes: Buffer, width: number, height: number) {
    this.height = height;
    this.width = width;
    this.layers = merkleLayers(nodes, width, height);
  }

  /** Height of the top node above the leaves. */
  get top(): number {
    return this.height + log2(this.width);
  }

  /** Node `index` of the layer at `height`, counted in this tree; null outside it. */
  node(height: number, index: number): Buffer | null {
    if (height < this.height || height > this.top || index < 0 || index >= this.width >>> (height - this.height)) return null;
    const layer = this.layers[height - this.height]!;
    if ((index + 1) * HASH_BYTES > layer.length) return padHash(height);
    return layer.subarray(index * HASH_BYTES, (index + 1) * HASH_BYTES);
  }
}
