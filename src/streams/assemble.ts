/**
 * The assemble stage: verified-piece frames in, each written to disk, one event out per piece
 * once its bytes are on disk. Events are a have-set (design.md §2), so the stage's output is
 * also the resume journal.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { pieceSize } from '../metainfo/pieces.js';
import type { Torrent } from '../metainfo/torrent.js';
import type { FileStore } from '../storage/file-store.js';
import { hashMatches } from '../storage/verify.js';
import type { PieceFrame } from './piece-frames.js';

export type AssembleEvent =
  | { event: 'piece'; index: number; bytes: number }
  | { event: 'bad-piece'; index: number; reason: string }
  | { event: 'complete'; pieces: number; bytes: number; seconds: number };

export interface AssembleOptions {
  /** skip the SHA-1 check (the stream was verified upstream) */
  trust?: boolean;
  /** the pieces this run must end with on disk (default: all) */
  wanted?: ReadonlySet<number>;
  /** pieces already on disk (from a have-set): they count as done */
  have?: ReadonlySet<number>;
}

export class AssembleStream extends Transform {
  private readonly torrent: Torrent;
  private readonly store: FileStore;
  private readonly trust: boolean;
  private readonly wanted: ReadonlySet<number> | null;
  /** wanted pieces not yet on disk */
  private readonly missing = new Set<number>();
  private readonly started = Date.now();
  private bytes = 0;
  private completed = false;

  constructor(torrent: Torrent, store: FileStore, options: AssembleOptions = {}) {
    super({ objectMode: true, writableHighWaterMark: 1, readableHighWaterMark: 64 });
    this.torrent = torrent;
    this.store = store;
    this.trust = options.trust ?? false;
    this.wanted = options.wanted ?? null;
    for (let i = 0; i < torrent.pieceCount; i++) {
      if ((this.wanted === null || this.wanted.has(i)) && !options.have?.has(i)) this.missing.add(i);
    }
  }

  /** Wanted pieces still missing. */
  get remaining(): number {
    return this.missing.size;
  }

  override _transform(f: PieceFrame, _enc: BufferEncoding, cb: TransformCallback): void {
    this.write1(f).then(
      () => {
        f.release?.();
        cb();
      },
      cb,
    );
  }

  private async write1(f: PieceFrame): Promise<void> {
    if (f.index >= this.torrent.pieceCount) {
      this.push({ event: 'bad-piece', index: f.index, reason: 'index beyond the torrent' } satisfies AssembleEvent);
      return;
    }
    if (f.piece.length !== pieceSize(this.torrent, f.index)) {
      this.push({ event: 'bad-piece', index: f.index, reason: `${f.piece.length} bytes, expected ${pieceSize(this.torrent, f.index)}` } satisfies AssembleEvent);
      return;
    }
    if (!this.trust && !hashMatches(this.torrent, f.index, f.piece)) {
      this.push({ event: 'bad-piece', index: f.index, reason: 'SHA-1 mismatch' } satisfies AssembleEvent);
      return;
    }
    // a piece outside --select still spans selected files at its edges: write what it covers
    await this.store.writePiece(f.index, f.piece);
    this.missing.delete(f.index);
    this.bytes += f.piece.length;
    this.push({ event: 'piece', index: f.index, bytes: f.piece.length } satisfies AssembleEvent);
    if (this.missing.size === 0 && !this.completed) this.complete();
  }

  override _flush(cb: TransformCallback): void {
    if (this.missing.size === 0 && !this.completed) this.complete();
    cb();
  }

  private complete(): void {
    this.completed = true;
    const seconds = (Date.now() - this.started) / 1000;
    this.push({ event: 'complete', pieces: this.torrent.pieceCount, bytes: this.bytes, seconds } satisfies AssembleEvent);
  }
}
