/**
 * What a piece must hash to, one rule for every verifier (the swarm, assemble, verify, the
 * resume check, `peer`): the SHA-1 of the piece (v1 and hybrid torrents), or for a v2-only
 * torrent the merkle rule of BEP 52. A v2 piece lies in exactly one real file (files start on
 * piece boundaries); only the file's own bytes in it are hashed, as `leaves` 16 KiB leaves,
 * and the result is compared with the file's piece-layer node (a file longer than one piece) or
 * with its pieces root (a file of one piece or less). A file longer than one piece whose layer
 * is not known yet (a magnet's torrent before the layers are fetched) makes its pieces
 * `pending`: they can be neither accepted nor refused.
 */
import { createHash } from 'node:crypto';
import { HASH_BYTES, MERKLE_BLOCK, fileLeafCount, leafHashes, merkleRoot } from './merkle.js';
import { pieceHash, pieceSize } from './pieces.js';
import type { Torrent } from './torrent.js';

/** How a piece's bytes are digested: structured-clone-able, so it can go to a hashing thread. */
export type PieceDigest =
  | { kind: 'sha1' }
  /** the first `dataLength` bytes as `leaves` leaves (a power of two), the rest being alignment */
  | { kind: 'merkle'; dataLength: number; leaves: number };

export type PieceCheck =
  | { kind: 'sha1'; digest: PieceDigest; want: Buffer }
  /** `file`: the index in torrent.files the piece lies in */
  | { kind: 'merkle'; digest: PieceDigest & { kind: 'merkle' }; want: Buffer; file: number }
  /** a v2 piece whose file's piece layer is missing: not checkable yet */
  | { kind: 'pending'; file: number; why: string };

const SHA1: PieceDigest = { kind: 'sha1' };

export type CheckedTorrent = Pick<Torrent, 'version' | 'pieceHashes' | 'pieceLayers' | 'files' | 'pieceLength' | 'length'>;

/** What piece `index` of `t` must hash to. */
export function pieceCheck(t: CheckedTorrent, index: number): PieceCheck {
  if (t.version !== 2) return { kind: 'sha1', digest: SHA1, want: pieceHash(t, index) };
  const start = index * t.pieceLength;
  const size = pieceSize(t, index); // throws for an index outside the torrent
  const fi = realFileAt(t, start);
  const f = t.files[fi]!;
  if (f.pad || f.offset % t.pieceLength !== 0 || f.piecesRoot === undefined) {
    // the parser lays every real file out on a piece boundary with its root: a bug if not
    throw new RangeError(`piece ${index} does not start in a v2 file of the torrent`);
  }
  const dataLength = Math.min(size, f.offset + f.length - start);
  if (f.length <= t.pieceLength) {
    return { kind: 'merkle', digest: { kind: 'merkle', dataLength, leaves: fileLeafCount(f.length) }, want: f.piecesRoot, file: fi };
  }
  const layer = t.pieceLayers?.get(f.piecesRoot.toString('hex'));
  if (layer === undefined) return { kind: 'pending', file: fi, why: `the piece layer of ${f.path.join('/')} is not known yet` };
  const k = (start - f.offset) / t.pieceLength;
  return {
    kind: 'merkle',
    digest: { kind: 'merkle', dataLength, leaves: t.pieceLength / MERKLE_BLOCK },
    want: layer.subarray(k * HASH_BYTES, (k + 1) * HASH_BYTES),
    file: fi,
  };
}

/** The first file whose range ends after `offset`: the real file a v2 piece starting there lies in. */
function realFileAt(t: Pick<Torrent, 'files'>, offset: number): number {
  let lo = 0;
  let hi = t.files.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const f = t.files[mid]!;
    if (f.offset + f.length <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The digest of a piece's bytes as `d` says, on this thread (the hashing thread runs the same
 * code). With `withLeaves`, a merkle digest also returns the leaf hashes (32 bytes per 16 KiB
 * block of data): which block of a failed piece differs from the tree a peer proves.
 */
export function digestPiece(d: PieceDigest, data: Uint8Array): Buffer;
export function digestPiece(d: PieceDigest, data: Uint8Array, withLeaves: true): { digest: Buffer; leaves: Buffer | null };
export function digestPiece(d: PieceDigest, data: Uint8Array, withLeaves = false): Buffer | { digest: Buffer; leaves: Buffer | null } {
  if (d.kind === 'sha1') {
    const digest = createHash('sha1').update(data).digest();
    return withLeaves ? { digest, leaves: null } : digest;
  }
  const leaves = leafHashes(data.subarray(0, d.dataLength));
  const digest = merkleRoot(leaves, d.leaves);
  return withLeaves ? { digest, leaves } : digest;
}

/** Whether `data` is piece `index` of `t`: false when it is not, or cannot be known yet. */
export function pieceMatches(t: CheckedTorrent, index: number, data: Uint8Array): boolean {
  const c = pieceCheck(t, index);
  return c.kind !== 'pending' && digestPiece(c.digest, data).equals(c.want);
}

/** How a refused piece is named in messages. */
export function mismatchName(c: PieceCheck): string {
  return c.kind === 'sha1' ? 'SHA-1 mismatch' : c.kind === 'merkle' ? 'merkle root mismatch' : `not checkable yet: ${c.why}`;
}
