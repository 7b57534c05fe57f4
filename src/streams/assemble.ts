/**
 * The assemble stage: verified-piece frames in, each written to disk, one event out per piece
 * once its bytes are on disk. Events are a have-set (design.md §2), so the stage's output is
 * also the resume journal.
 *
 * Pieces are re-verified on a hashing thread while the ones before them are written (two at a
 * time), so SHA-1 and the disk overlap instead of taking turns; events still come in input order.
 *
 * Given a directory, the stage opens the torrent's files there itself (before the first piece)
 * and closes them at its end; given a FileStore, the caller keeps it.
 *
 * An input that ends with a DeferredError (a malformed frame after good ones, from the piece
 * stream decoders) is passed on as the last object, once every piece before it is on disk and
 * its event out: the sink raises it (deferred-error.ts), so the journal keeps those pieces.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { Torrent } from '../metainfo/torrent.js';
import { FileStore } from '../storage/file-store.js';
import type { OpenFiles } from '../storage/open-files.js';
import { HashPool } from '../storage/hash-pool.js';
import { PieceLease } from '../storage/piece-lease.js';
import { Turns } from '../turns.js';
import { DeferredError } from './deferred-error.js';
import { checkPiece, type PieceFrame } from './piece-frames.js';

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
  /** given a directory: only these files (indexes) are written (pieces still span the others) */
  select?: ReadonlySet<number>;
  /** given a directory: write through the page cache rather than around it (FileStore) */
  osCache?: boolean;
  /** given a directory: what the store did that the user should know of (FileStore) */
  onNotice?: (message: string) => void;
  /** given a directory: a limit on open files shared with other stores of the process (FileStore, open-files.ts) */
  openFiles?: OpenFiles;
  /** writes in flight shared with the other torrents of a process (default: WRITES of its own) */
  writeTurns?: Turns;
}

/** Pieces accepted and not yet on disk, at most: some being written while the next hash. */
const DEPTH = 4;
/**
 * Pieces written at once. Direct writes wait for the device, and two in flight keep it busier
 * than one (dd of 1 GiB with O_DIRECT here: 0.50–0.54 s one at a time, 0.40–0.43 s two).
 */
const WRITES = 2;

export class AssembleStream extends Transform {
  private readonly torrent: Torrent;
  private store: FileStore | null;
  /** where to open the store (given a directory), or null when the caller gave one */
  private readonly dir: string | null;
  private readonly options: AssembleOptions;
  private readonly hasher: HashPool | null;
  private readonly wanted: ReadonlySet<number> | null;
  /** wanted pieces not yet on disk */
  private readonly missing = new Set<number>();
  private readonly started = Date.now();
  private bytes = 0;
  private completed = false;
  /** settles when every accepted piece's event is out, in input order */
  private tail: Promise<void> = Promise.resolve();
  private inFlight = 0;
  /** the input's callback, held while DEPTH pieces are in flight */
  private blocked: TransformCallback | null = null;
  /** a failed write: no write starts after it */
  private failure: Error | null = null;
  /** writes in flight at once: this stream's own, or a process's (options.writeTurns) */
  private readonly writeTurns: Turns;
  /** the input ended with an error (deferred-error.ts): passed on after the pieces before it */
  private deferred: DeferredError | null = null;

  /** `target`: the output directory (opened and closed by the stage), or an open FileStore. */
  constructor(torrent: Torrent, target: FileStore | string, options: AssembleOptions = {}) {
    super({ objectMode: true, writableHighWaterMark: 1, readableHighWaterMark: 64 });
    this.torrent = torrent;
    this.store = typeof target === 'string' ? null : target;
    this.dir = typeof target === 'string' ? target : null;
    this.options = options;
    this.writeTurns = options.writeTurns ?? new Turns(WRITES);
    this.hasher = options.trust === true ? null : new HashPool();
    this.wanted = options.wanted ?? null;
    for (let i = 0; i < torrent.pieceCount; i++) {
      if ((this.wanted === null || this.wanted.has(i)) && !options.have?.has(i)) this.missing.add(i);
    }
  }

  override _construct(cb: (error?: Error | null) => void): void {
    if (this.dir === null) return cb();
    FileStore.open(this.torrent, this.dir, {
      mode: 'write',
      select: this.options.select,
      osCache: this.options.osCache,
      onNotice: this.options.onNotice,
      openFiles: this.options.openFiles,
    }).then((s) => {
      this.store = s;
      cb();
    }, cb);
  }

  /** Wanted pieces still missing. */
  get remaining(): number {
    return this.missing.size;
  }

  override _transform(f: PieceFrame | DeferredError, _enc: BufferEncoding, cb: TransformCallback): void {
    // a library caller's frame of the old shape ({ piece: Buffer }) is a clear error, not a crash later
    if (!(f instanceof DeferredError) && !(f?.piece instanceof PieceLease)) {
      cb(new TypeError('assemble: a piece frame is { index, piece: PieceLease } (pieceFrame(index, bytes) makes one)'));
      return;
    }
    if (this.failure !== null || this.deferred !== null) {
      // the stage failed, or the input is over at its deferred error: nothing after counts
      if (!(f instanceof DeferredError)) f.piece.release();
      cb(this.failure);
      return;
    }
    if (f instanceof DeferredError) {
      // after every piece before it is on disk and announced, as the input's last word
      this.deferred = f;
      this.tail = this.tail.then(() => {
        if (this.failure === null) this.push(f);
      });
      cb();
      return;
    }
    const outcome = this.land(f); // hashing and writing start now, beside the pieces before it
    this.inFlight++;
    this.tail = this.tail.then(async () => {
      const ev = await outcome;
      if (ev !== null && this.failure === null) this.announce(ev);
      this.inFlight--;
      this.unblock();
    });
    if (this.inFlight < DEPTH) cb();
    else this.blocked = cb;
  }

  /** Checks and writes one piece, then releases it; its event, or null once something failed. Never rejects. */
  private async land(f: PieceFrame): Promise<AssembleEvent | null> {
    try {
      const refused = await checkPiece(this.torrent, this.hasher, f);
      if (refused !== null) return { event: 'bad-piece', index: f.index, reason: refused };
      const done = (await this.writeTurns.acquire())!;
      const bytes = f.piece.bytes;
      try {
        if (this.failure !== null) return null;
        // a piece outside --select still spans selected files at its edges: write what it covers
        await this.store!.writePiece(f.index, bytes);
      } finally {
        done();
      }
      return { event: 'piece', index: f.index, bytes: bytes.length };
    } catch (e) {
      this.failure ??= e as Error;
      return null;
    } finally {
      // on disk, refused or failed: the bytes are no longer needed (a hashing thread that died
      // has given the lease back, without its bytes)
      f.piece.release();
    }
  }

  /** A piece's event goes out once it and every piece before it are settled. */
  private announce(ev: AssembleEvent): void {
    if (ev.event === 'piece') {
      this.missing.delete(ev.index);
      this.bytes += ev.bytes;
    }
    this.push(ev);
    if (this.missing.size === 0 && !this.completed) this.complete();
  }

  private unblock(): void {
    const cb = this.blocked;
    if (cb === null || (this.inFlight >= DEPTH && this.failure === null)) return;
    this.blocked = null;
    cb(this.failure);
  }

  override _flush(cb: TransformCallback): void {
    void this.tail.then(async () => {
      void this.hasher?.close();
      // a store of our own is closed before the end is told: every byte is in its file then
      const closed = await this.closeOwnStore().then(() => null, (e: Error) => e);
      const failure = this.failure ?? closed;
      if (failure) {
        cb(failure);
        return;
      }
      if (this.missing.size === 0 && !this.completed && this.deferred === null) this.complete();
      cb();
    });
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    void this.hasher?.close();
    this.closeOwnStore().then(() => cb(err), (e: Error) => cb(err ?? e));
  }

  private async closeOwnStore(): Promise<void> {
    if (this.dir === null || this.store === null) return;
    const s = this.store;
    this.store = null;
    await s.close();
  }

  private complete(): void {
    this.completed = true;
    const seconds = (Date.now() - this.started) / 1000;
    this.push({ event: 'complete', pieces: this.torrent.pieceCount, bytes: this.bytes, seconds } satisfies AssembleEvent);
  }
}
