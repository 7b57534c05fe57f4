/**
 * Verified pieces in (any order), the torrent's content out, in order: for `assemble --stdout`
 * (`… | assemble --stdout | mpv -`). Out-of-order pieces wait in memory up to a bound. Past the
 * bound they go to a temporary spill file rather than stopping the input: the piece the output
 * waits for may be behind them in the pipe, so refusing input could never end. Output
 * backpressure (a slow reader) still reaches upstream through the write callback.
 */
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pieceSize, pieceSpans } from '../metainfo/pieces.js';
import type { Torrent } from '../metainfo/torrent.js';
import { hashMatches } from '../storage/verify.js';
import type { PieceFrame } from './piece-frames.js';

export interface InOrderOptions {
  /** bytes of out-of-order pieces held at most (default 64 MiB) */
  maxBuffer?: number;
  /** write only this file's bytes (default: every non-pad file, concatenated in torrent order) */
  file?: number;
  trust?: boolean;
}

export class InOrderContentStream extends Transform {
  private readonly torrent: Torrent;
  private readonly maxBuffer: number;
  private readonly file: number | undefined;
  private readonly trust: boolean;
  private readonly held = new Map<number, Buffer>();
  private heldBytes = 0;
  /** pieces parked in the spill file: index → [offset, length] */
  private readonly spilled = new Map<number, [number, number]>();
  private spill: { dir: string; fh: FileHandle; end: number } | null = null;
  private next: number;
  private readonly last: number;

  constructor(torrent: Torrent, options: InOrderOptions = {}) {
    super({ writableObjectMode: true, readableObjectMode: false, writableHighWaterMark: 1, readableHighWaterMark: 4 * 1024 * 1024 });
    this.torrent = torrent;
    this.maxBuffer = options.maxBuffer ?? 64 * 1024 * 1024;
    this.file = options.file;
    this.trust = options.trust ?? false;
    if (this.file === undefined) {
      this.next = 0;
      this.last = torrent.pieceCount - 1;
    } else {
      const f = torrent.files[this.file]!;
      this.next = Math.floor(f.offset / torrent.pieceLength);
      this.last = f.length === 0 ? this.next - 1 : Math.floor((f.offset + f.length - 1) / torrent.pieceLength);
    }
  }

  /** The next piece index the output is waiting for (past `last` when done). */
  get waitingFor(): number {
    return this.next;
  }

  get done(): boolean {
    return this.next > this.last;
  }

  override _transform(f: PieceFrame, _enc: BufferEncoding, cb: TransformCallback): void {
    this.accept(f).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.cleanup().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.cleanup().then(() => cb(err), () => cb(err));
  }

  private async accept(f: PieceFrame): Promise<void> {
    if (f.index < this.next || f.index > this.last || this.held.has(f.index) || this.spilled.has(f.index)) return; // not needed, or a duplicate
    if (f.piece.length !== pieceSize(this.torrent, f.index) || (!this.trust && !hashMatches(this.torrent, f.index, f.piece))) {
      throw new Error(`piece ${f.index} does not match the torrent's hash`);
    }
    if (f.index !== this.next && this.heldBytes + f.piece.length > this.maxBuffer) {
      await this.park(f);
      return;
    }
    this.held.set(f.index, f.piece);
    this.heldBytes += f.piece.length;
    await this.drainHeld();
  }

  private async park(f: PieceFrame): Promise<void> {
    if (this.spill === null) {
      const dir = await mkdtemp(join(tmpdir(), 'torrent-tools-'));
      this.spill = { dir, fh: await open(join(dir, 'spill'), 'w+'), end: 0 };
    }
    const at = this.spill.end;
    this.spill.end += f.piece.length;
    await this.spill.fh.write(f.piece, 0, f.piece.length, at);
    this.spilled.set(f.index, [at, f.piece.length]);
  }

  private async drainHeld(): Promise<void> {
    for (;;) {
      let p = this.held.get(this.next);
      if (p !== undefined) {
        this.held.delete(this.next);
        this.heldBytes -= p.length;
      } else {
        const loc = this.spilled.get(this.next);
        if (loc === undefined || this.spill === null) return;
        this.spilled.delete(this.next);
        p = Buffer.allocUnsafe(loc[1]);
        await this.spill.fh.read(p, 0, loc[1], loc[0]);
      }
      this.emitPiece(this.next, p);
      this.next++;
    }
  }

  private async cleanup(): Promise<void> {
    const s = this.spill;
    this.spill = null;
    if (s === null) return;
    await s.fh.close().catch(() => {});
    await rm(s.dir, { recursive: true, force: true });
  }

  private emitPiece(index: number, piece: Buffer): void {
    for (const s of pieceSpans(this.torrent, index)) {
      const f = this.torrent.files[s.file]!;
      if (f.pad || (this.file !== undefined && s.file !== this.file)) continue;
      this.push(piece.subarray(s.pieceOffset, s.pieceOffset + s.length));
    }
  }
}
