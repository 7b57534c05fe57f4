/**
 * Piece arithmetic, pure: sizes, hashes, block ranges, and which byte ranges of which files a
 * piece covers. No I/O here, so it can be tested exhaustively.
 */
import { fileLeafCount, HASH_BYTES, MERKLE_BLOCK } from './merkle.js';
import type { Torrent, TorrentFile } from './torrent.js';

export interface FileSpan {
  /** index into torrent.files */
  file: number;
  /** where the span starts in that file */
  fileOffset: number;
  /** where the span starts in the piece */
  pieceOffset: number;
  length: number;
}

export function pieceCount(t: { length: number; pieceLength: number }): number {
  return Math.ceil(t.length / t.pieceLength);
}

/** Bytes in piece `index`: pieceLength, except for a shorter last piece. */
export function pieceSize(t: { length: number; pieceLength: number }, index: number): number {
  const start = index * t.pieceLength;
  if (index < 0 || start >= t.length) throw new RangeError(`piece ${index} is outside the torrent`);
  return Math.min(t.pieceLength, t.length - start);
}

export function pieceHash(t: Pick<Torrent, 'pieceHashes'>, index: number): Buffer {
  return t.pieceHashes.subarray(index * 20, index * 20 + 20);
}

/** The blocks of a piece of `size` bytes: `blockSize` each, the last one shorter. */
export function blockRanges(size: number, blockSize = 16 * 1024): Array<{ begin: number; length: number }> {
  const out: Array<{ begin: number; length: number }> = [];
  for (let begin = 0; begin < size; begin += blockSize) out.push({ begin, length: Math.min(blockSize, size - begin) });
  return out;
}

/** Index of the first file whose range ends after `offset` (binary search; files are in offset order). */
function fileAt(files: readonly TorrentFile[], offset: number): number {
  let lo = 0;
  let hi = files.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const f = files[mid]!;
    if (f.offset + f.length <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The file ranges piece `index` covers, in order. Pad files are included (callers skip them);
 * zero-length files cover nothing and are left out.
 */
export function pieceSpans(t: Pick<Torrent, 'files' | 'pieceLength' | 'length'>, index: number): FileSpan[] {
  const start = index * t.pieceLength;
  const end = start + pieceSize(t, index);
  const out: FileSpan[] = [];
  for (let i = fileAt(t.files, start); i < t.files.length; i++) {
    const f = t.files[i]!;
    if (f.offset >= end) break;
    if (f.length === 0) continue;
    const a = Math.max(start, f.offset);
    const b = Math.min(end, f.offset + f.length);
    if (a < b) out.push({ file: i, fileOffset: a - f.offset, pieceOffset: a - start, length: b - a });
  }
  return out;
}

/** Pieces holding any byte of the given files, ascending. */
export function piecesForFiles(t: Pick<Torrent, 'files' | 'pieceLength'>, fileIndexes: readonly number[]): number[] {
  const set = new Set<number>();
  for (const i of fileIndexes) {
    const f = t.files[i]!;
    if (f.length === 0) continue;
    const first = Math.floor(f.offset / t.pieceLength);
    const last = Math.floor((f.offset + f.length - 1) / t.pieceLength);
    for (let p = first; p <= last; p++) set.add(p);
  }
  return [...set].sort((a, b) => a - b);
}

/**
 * BEP 52's view of piece `index` (v2 and hybrid layouts, where every file starts on a piece
 * boundary): the one real file it holds bytes of, how many (the rest is alignment, not data),
 * and how many leaves its digest has: a piece-layer node (pieceLength / 16 KiB leaves) for a
 * file longer than a piece, the file's pieces root (its own leaf count) otherwise. Null when
 * the piece holds no file's bytes (only pads: never in a well-formed v2 layout).
 */
export function v2PieceShape(t: Pick<Torrent, 'files' | 'pieceLength' | 'length'>, index: number): { file: number; bytes: number; leaves: number } | null {
  const span = pieceSpans(t, index).find((s) => !t.files[s.file]!.pad);
  if (span === undefined) return null;
  const f = t.files[span.file]!;
  const leaves = f.length > t.pieceLength ? t.pieceLength / MERKLE_BLOCK : fileLeafCount(f.length);
  return { file: span.file, bytes: span.length, leaves };
}

/**
 * The BEP 52 digest piece `index` must have (see v2PieceShape): its node in its file's piece
 * layer, or the file's pieces root for a one-piece file. Null when the layer is not known yet
 * (a magnet's metadata) or the piece holds no file's bytes.
 */
export function v2PieceHash(t: Pick<Torrent, 'files' | 'pieceLength' | 'length' | 'pieceLayers'>, index: number): Buffer | null {
  const shape = v2PieceShape(t, index);
  if (shape === null) return null;
  const f = t.files[shape.file]!;
  if (f.length <= t.pieceLength) return f.piecesRoot ?? null;
  const layer = t.pieceLayers?.get(f.piecesRoot!.toString('hex'));
  if (layer === undefined) return null;
  const k = index - f.offset / t.pieceLength;
  return layer.subarray(k * HASH_BYTES, (k + 1) * HASH_BYTES);
}
