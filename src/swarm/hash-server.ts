/**
 * Answering BEP 52 hash requests for the files of a torrent we serve. Nodes at or above the
 * piece layer come from the torrent's `piece layers` (one tree per file, built on first use);
 * nodes below it (leaf hashes, for a peer pinning a bad block, or any node of a file of one
 * piece or less) are hashed from the file's bytes on disk, only for pieces we have verified.
 * A request is bounded: its leaves lie in one aligned block of at most 512 leaves (8 MiB read),
 * at most two such reads run at once for the whole torrent and eight wait for a turn; anything
 * else is rejected, so no queue grows with what peers ask.
 */
import { LayerTree, MERKLE_BLOCK, fileLeafCount, hashesAnswer, leafHashes, log2 } from '../metainfo/merkle.js';
import type { Torrent, TorrentFile } from '../metainfo/torrent.js';
import type { HashRange } from '../wire/protocol.js';

/** The most nodes one answer gives, and so the most leaves one request reads (BEP 52's SHOULD). */
export const MAX_SERVED_HASHES = 512;
/** Requests reading leaves from disk at once, for the whole torrent, and waiting for a turn. */
const MAX_READS = 2;
const MAX_WAITING = 8;

export interface HashSource {
  torrent: Torrent;
  /** `length` bytes at `begin` of piece `index`, handed to `use` while valid; false when not readable */
  read(index: number, begin: number, length: number, use: (bytes: Buffer) => void): Promise<boolean>;
  /** pieces whose bytes are verified on disk */
  has(index: number): boolean;
}

interface FileEntry {
  file: TorrentFile;
  /** its first piece (v2 files start on a piece boundary) */
  first: number;
}

export class HashServer {
  private readonly src: HashSource;
  private files: Map<string, FileEntry> | null = null;
  private readonly upper = new Map<string, LayerTree>();
  private reads = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(src: HashSource) {
    this.src = src;
  }

  /** The hashes answering `r` (base nodes, then uncles), or why it is rejected. */
  async answer(r: HashRange): Promise<Buffer | string> {
    const t = this.src.torrent;
    const key = r.root.toString('hex');
    const entry = this.fileOf(key);
    if (entry === undefined) return 'no file of the torrent has this pieces root';
    if (r.length < 2 || r.length > MAX_SERVED_HASHES) return `${r.length} hashes asked (we answer 2 to ${MAX_SERVED_HASHES})`;
    const f = entry.file;
    const width = fileLeafCount(f.length);
    const top = log2(width);
    if (r.base >= top) return `base layer ${r.base} is not below the root (${top} layers)`;
    if (r.index + r.length > width / 2 ** r.base) return `nodes ${r.index}..${r.index + r.length} are past the layer's ${width / 2 ** r.base}`;
    if (r.base + r.proofLayers >= top) return `${r.proofLayers} proof layers reach past the root`;
    const pieceHeight = log2(t.pieceLength / MERKLE_BLOCK);
    const big = f.length > t.pieceLength;
    let upper: LayerTree | undefined;
    if (big) {
      upper = this.upperTree(key, width, pieceHeight);
      if (upper === undefined) return 'we do not know the piece layer of this file yet';
    }
    // heights below `from` come from the file's bytes: below the piece layer, or all of a small file
    const from = big ? pieceHeight : top + 1;
    let low: { tree: LayerTree; start: number; height: number } | null = null;
    if (r.base < from) {
      let height = r.base + log2(r.length);
      // the uncles below `from` lie in the aligned block around the base nodes' ancestor
      if (r.proofLayers >= log2(r.length)) height = Math.max(height, Math.min(r.base + r.proofLayers, from - 1) + 1);
      if (2 ** height > MAX_SERVED_HASHES) return `the proof needs ${2 ** height} leaves hashed (we hash up to ${MAX_SERVED_HASHES})`;
      const start = Math.floor((r.index * 2 ** r.base) / 2 ** height) * 2 ** height;
      if (this.reads >= MAX_READS) {
        if (this.waiting.length >= MAX_WAITING) return 'busy hashing other requests';
        // the slot is handed over by the read that ends (`reads` stays counted)
        await new Promise<void>((resolve) => this.waiting.push(resolve));
      } else {
        this.reads++;
      }
      try {
        const leaves = await this.leavesOf(entry, start, 2 ** height);
        if (typeof leaves === 'string') return leaves;
        low = { tree: new LayerTree(leaves, 2 ** height, 0), start, height };
      } finally {
        const next = this.waiting.shift();
        if (next !== undefined) next();
        else this.reads--;
      }
    }
    const node = (h: number, j: number): Buffer | null => {
      if (low !== null && h <= low.height && Math.floor((j * 2 ** h) / 2 ** low.height) * 2 ** low.height === low.start) return low.tree.node(h, j - low.start / 2 ** h);
      return h >= from && upper !== undefined ? upper.node(h, j) : null;
    };
    return hashesAnswer(r, node) ?? 'a node of the proof is not known';
  }

  private fileOf(key: string): FileEntry | undefined {
    if (this.files === null) {
      const t = this.src.torrent;
      this.files = new Map();
      for (const f of t.files) if (!f.pad && f.piecesRoot !== undefined && f.length > 0) this.files.set(f.piecesRoot.toString('hex'), { file: f, first: Math.floor(f.offset / t.pieceLength) });
    }
    return this.files.get(key);
  }

  /** The tree from a file's piece layer up, or undefined while the layer is unknown (a magnet's). */
  private upperTree(key: string, width: number, pieceHeight: number): LayerTree | undefined {
    let tree = this.upper.get(key);
    if (tree === undefined) {
      const layer = this.src.torrent.pieceLayers?.get(key);
      if (layer === undefined) return undefined;
      tree = new LayerTree(layer, width / 2 ** pieceHeight, pieceHeight);
      this.upper.set(key, tree);
    }
    return tree;
  }

  /** Leaf hashes of leaves [start, start + count) of a file, from disk; past its end they are padding. */
  private async leavesOf(e: FileEntry, start: number, count: number): Promise<Buffer | string> {
    const pl = this.src.torrent.pieceLength;
    const from = start * MERKLE_BLOCK;
    const to = Math.min(e.file.length, (start + count) * MERKLE_BLOCK);
    const parts: Buffer[] = [];
    // pieces are whole numbers of leaves, so each piece's part starts on a leaf
    for (let a = from; a < to; a = (Math.floor(a / pl) + 1) * pl) {
      const piece = e.first + Math.floor(a / pl);
      if (!this.src.has(piece)) return `we do not have piece ${piece}`;
      const n = Math.min(to, (Math.floor(a / pl) + 1) * pl) - a;
      const ok = await this.src.read(piece, a % pl, n, (bytes) => parts.push(leafHashes(bytes)));
      if (!ok) return `piece ${piece} is not readable on disk`;
    }
    return Buffer.concat(parts);
  }
}
