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
