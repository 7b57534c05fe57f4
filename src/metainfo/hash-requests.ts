/**
 * The asking side of BEP 52 hash requests: what to ask a peer for, and whether its `hashes`
 * answer is proved by what we trust (a file's pieces root from the info dict, or a node of a
 * piece layer we already hold). Pure: the swarm, `peer` and the magnet step send and receive.
 */
import { HASH_BYTES, MERKLE_BLOCK, fileLeafCount, log2, padHash, provenNode, type HashRangeFields } from './merkle.js';
import type { Torrent, TorrentFile } from './torrent.js';

export interface HashAsk extends HashRangeFields {
  root: Buffer;
}

/** Whether two hash requests (or a request and its answer or reject) name the same range. */
export function sameHashRange(a: HashAsk, b: HashAsk): boolean {
  return a.base === b.base && a.index === b.index && a.length === b.length && a.proofLayers === b.proofLayers && a.root.equals(b.root);
}

export interface LeafHashRequest {
  piece: number;
  request: HashAsk;
  /** leaves of the piece that hold data (the rest of the answer is padding) */
  dataLeaves: number;
  /** The piece's leaf hashes (32 bytes per data leaf) when `hashes` proves them, else null. */
  leaves(hashes: Buffer): Buffer | null;
  check(hashes: Buffer): boolean;
}

/** The real file piece `index` of a v2 or hybrid torrent lies in, and its first piece. */
export function fileOfPiece(t: Pick<Torrent, 'files' | 'pieceLength'>, index: number): { file: TorrentFile; first: number } | null {
  const start = index * t.pieceLength;
  for (const f of t.files) {
    if (f.pad || f.length === 0 || f.piecesRoot === undefined) continue;
    if (f.offset <= start && start < f.offset + f.length) return { file: f, first: Math.floor(f.offset / t.pieceLength) };
  }
  return null;
}

/**
 * A request for the leaf hashes of piece `index`, proved up to its piece-layer node (`to:
 * 'piece'`; for a file of one piece or less that is the root) or to the file's root (`to:
 * 'root'`, every uncle on the way). A string says why there is nothing to ask: a piece of one
 * leaf is its own hash, and a piece of more than 512 leaves is more than a peer need answer.
 */
export function leafHashRequest(t: Pick<Torrent, 'files' | 'pieceLength' | 'pieceLayers'>, index: number, to: 'piece' | 'root' = 'root'): LeafHashRequest | string {
  const at = fileOfPiece(t, index);
  if (at === null) return `piece ${index} starts in no file with a pieces root`;
  const { file: f, first } = at;
  const width = fileLeafCount(f.length);
  const top = log2(width);
  const big = f.length > t.pieceLength;
  const length = big ? t.pieceLength / MERKLE_BLOCK : width;
  if (length < 2) return `piece ${index} is a single 16 KiB leaf: its hash is the piece's`;
  if (length > 512) return `piece ${index} has ${length} leaves (a peer need answer only 512)`;
  const k = index - first;
  const root = f.piecesRoot!;
  const request: HashAsk = { root, base: 0, index: big ? k * length : 0, length, proofLayers: to === 'root' ? top - 1 : log2(length) - 1 };
  const layer = big ? t.pieceLayers?.get(root.toString('hex')) : undefined;
  const pieceNode = big ? layer?.subarray(k * HASH_BYTES, (k + 1) * HASH_BYTES) : root;
  const dataLeaves = Math.ceil(Math.min(t.pieceLength, f.length - k * t.pieceLength) / MERKLE_BLOCK);
  const leaves = (hashes: Buffer): Buffer | null => {
    if (hashes.length < length * HASH_BYTES) return null;
    let p: ReturnType<typeof provenNode>;
    try {
      p = provenNode(request, hashes);
    } catch {
      return null;
    }
    const trusted = p.height === top ? root : pieceNode;
    if (trusted === undefined || !p.node.equals(trusted)) return null;
    // proved to the root: the piece's own subtree must also be its piece-layer node, when known
    if (p.height === top && big && pieceNode !== undefined) {
      const sub = provenNode({ ...request, proofLayers: log2(length) - 1 }, hashes.subarray(0, length * HASH_BYTES));
      if (!sub.node.equals(pieceNode)) return null;
    }
    return Buffer.from(hashes.subarray(0, dataLeaves * HASH_BYTES));
  };
  return { piece: index, request, dataLeaves, leaves, check: (h) => leaves(h) !== null };
}

/**
 * The requests that fetch the piece layer of a file longer than one piece: 512 nodes each (the
 * last one the next power of two above what is left), proved up to the pieces root.
 */
export function pieceLayerRequests(t: Pick<Torrent, 'pieceLength'>, f: TorrentFile): HashAsk[] {
  const pieces = Math.ceil(f.length / t.pieceLength);
  const base = log2(t.pieceLength / MERKLE_BLOCK);
  const top = log2(fileLeafCount(f.length));
  const out: HashAsk[] = [];
  for (let i = 0; i < pieces; i += 512) {
    const length = Math.max(2, Math.min(512, 2 ** Math.ceil(Math.log2(pieces - i))));
    out.push({ root: f.piecesRoot!, base, index: i, length, proofLayers: top - base - 1 });
  }
  return out;
}

/**
 * The nodes of a file's piece layer a `hashes` answer to `r` proves (those inside the file:
 * the padding past its last piece must be the pad hash), or null when it does not.
 */
export function pieceLayerPart(t: Pick<Torrent, 'pieceLength'>, f: TorrentFile, r: HashAsk, hashes: Buffer): Buffer | null {
  const pieces = Math.ceil(f.length / t.pieceLength);
  const top = log2(fileLeafCount(f.length));
  let p: ReturnType<typeof provenNode>;
  try {
    p = provenNode(r, hashes);
  } catch {
    return null;
  }
  if (p.height !== top || !p.node.equals(f.piecesRoot!)) return null;
  const real = Math.max(0, Math.min(r.length, pieces - r.index));
  const pad = padHash(r.base);
  for (let j = real; j < r.length; j++) if (!hashes.subarray(j * HASH_BYTES, (j + 1) * HASH_BYTES).equals(pad)) return null;
  return Buffer.from(hashes.subarray(0, real * HASH_BYTES));
}
