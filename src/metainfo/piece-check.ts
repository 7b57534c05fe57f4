/**
 * What a piece must hash to, one rule for every verifier (the swarm, assemble, verify, the
 * resume check, `peer`): the SHA-1 of the piece (v1), for a v2-only torrent the merkle rule of
 * BEP 52, and for a hybrid both (BEP 52: "pieces [must] match both piece hash formats"; a piece
 * that satisfied one view only would make the two swarms disagree on the same index). A
 * hybrid piece whose layer is not known yet (a magnet) is checked by its SHA-1 alone. A v2 piece lies in exactly one real file (files start on
 * piece boundaries); only the file's own bytes in it are hashed, as `leaves` 16 KiB leaves,
 * and the result is compared with the file's piece-layer node (a file longer than one piece) or
 * with its pieces root (a file of one piece or less). A file longer than one piece whose layer
 * is not known yet (a magnet's torrent before the layers are fetched) makes its pieces
 * `pending`: they can be neither accepted nor refused.
 */
import { createHash } from 'node:crypto';
import { leafHashes, merkleRoot, pieceRoot } from './merkle.js';
import { pieceHash, pieceSize, v2PieceHash, v2PieceShape } from './pieces.js';
import type { Torrent } from './torrent.js';

/** How a piece's bytes are digested: structured-clone-able, so it can go to a hashing thread. */
export type PieceDigest =
  | { kind: 'sha1' }
  /** the first `dataLength` bytes as `leaves` leaves (a power of two), the rest being alignment */
  | { kind: 'merkle'; dataLength: number; leaves: number }
  /** a hybrid's piece: the SHA-1 of all its bytes followed by the merkle digest (52 bytes) */
  | { kind: 'both'; dataLength: number; leaves: number };

export type PieceCheck =
  | { kind: 'sha1'; digest: PieceDigest; want: Buffer }
  /** `file`: the index in torrent.files the piece lies in */
  | { kind: 'merkle'; digest: PieceDigest & { kind: 'merkle' }; want: Buffer; file: number }
  | { kind: 'both'; digest: PieceDigest & { kind: 'both' }; want: Buffer; file: number }
  /** a v2 piece whose file's piece layer is missing: not checkable yet */
  | { kind: 'pending'; file: number; why: string };

const SHA1: PieceDigest = { kind: 'sha1' };

export type CheckedTorrent = Pick<Torrent, 'version' | 'pieceHashes' | 'pieceLayers' | 'files' | 'pieceLength' | 'length'>;

/** What piece `index` of `t` must hash to. */
export function pieceCheck(t: CheckedTorrent, index: number): PieceCheck {
  if (t.version === 1) return { kind: 'sha1', digest: SHA1, want: pieceHash(t, index) };
  pieceSize(t, index); // throws for an index outside the torrent
  const shape = v2PieceShape(t, index);
  // the parser lays every piece over one real file's bytes: a bug if not
  if (shape === null) throw new RangeError(`piece ${index} holds no file's bytes`);
  const want = v2PieceHash(t, index);
  if (t.version === 'hybrid') {
    const sha1 = pieceHash(t, index);
    if (want === null) return { kind: 'sha1', digest: SHA1, want: sha1 };
    return { kind: 'both', digest: { kind: 'both', dataLength: shape.bytes, leaves: shape.leaves }, want: Buffer.concat([sha1, want]), file: shape.file };
  }
  if (want === null) return { kind: 'pending', file: shape.file, why: `the piece layer of ${t.files[shape.file]!.path.join('/')} is not known yet` };
  return { kind: 'merkle', digest: { kind: 'merkle', dataLength: shape.bytes, leaves: shape.leaves }, want, file: shape.file };
}

/**
 * The digest of a piece's bytes as `d` says, on this thread (the hashing thread runs the same
 * code). With `withLeaves`, a merkle digest also returns the leaf hashes (32 bytes per 16 KiB
 * block of data): which block of a failed piece differs from the tree a peer proves.
 */
export function digestPiece(d: PieceDigest, data: Uint8Array): Buffer;
export function digestPiece(d: PieceDigest, data: Uint8Array, withLeaves: true): { digest: Buffer; leaves: Buffer | null };
export function digestPiece(d: PieceDigest, data: Uint8Array, withLeaves = false): Buffer | { digest: Buffer; leaves: Buffer | null } {
  const sha1 = d.kind === 'merkle' ? null : createHash('sha1').update(data).digest();
  if (d.kind === 'sha1') return withLeaves ? { digest: sha1!, leaves: null } : sha1!;
  if (!withLeaves && sha1 === null) return pieceRoot(data.subarray(0, d.dataLength), d.leaves);
  const leaves = leafHashes(data.subarray(0, d.dataLength));
  const root = merkleRoot(leaves, d.leaves);
  const digest = sha1 === null ? root : Buffer.concat([sha1, root]);
  return withLeaves ? { digest, leaves } : digest;
}

/** Whether `data` is piece `index` of `t`: false when it is not, or cannot be known yet. */
export function pieceMatches(t: CheckedTorrent, index: number, data: Uint8Array): boolean {
  const c = pieceCheck(t, index);
  return c.kind !== 'pending' && digestPiece(c.digest, data).equals(c.want);
}

/** How a refused piece is named in messages. */
export function mismatchName(c: PieceCheck): string {
  return c.kind === 'sha1' ? 'SHA-1 mismatch' : c.kind === 'merkle' ? 'merkle root mismatch' : c.kind === 'both' ? 'SHA-1 or merkle root mismatch' : `not checkable yet: ${c.why}`;
}
