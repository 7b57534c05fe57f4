/**
 * `fetch-pieces --serve-from DIR`: fetch-pieces hands its pieces to another process (assemble)
 * and cannot know when they reach the disk. So a piece is offered to peers only once it has been
 * read back from DIR and matches its hash: we never advertise what we could not serve.
 * Each piece is retried with back-off for a bounded time, then forgotten.
 */
import { pieceMatches } from '../metainfo/piece-check.js';
import type { Torrent } from '../metainfo/torrent.js';
import type { FileStore } from '../storage/file-store.js';

export interface DiskWatchOptions {
  /** first check after this long (default 250 ms), doubling up to 8 s between checks */
  firstDelayMs?: number;
  /** give a piece up after this long (default 120 s) */
  giveUpMs?: number;
}

interface Pending {
  index: number;
  since: number;
  next: number;
  delay: number;
}

export class DiskWatch {
  private readonly torrent: Torrent;
  private readonly store: FileStore;
  private readonly onDisk: (index: number) => void;
  private readonly o: Required<DiskWatchOptions>;
  private readonly pending = new Map<number, Pending>();
  private readonly timer: NodeJS.Timeout;
  private busy = false;

  constructor(torrent: Torrent, store: FileStore, onDisk: (index: number) => void, options: DiskWatchOptions = {}) {
    this.torrent = torrent;
    this.store = store;
    this.onDisk = onDisk;
    this.o = { firstDelayMs: 250, giveUpMs: 120_000, ...options };
    this.timer = setInterval(() => void this.check(), 100);
    this.timer.unref();
  }

  /** Piece `index` was handed downstream; offer it once it is on disk. */
  add(index: number): void {
    const now = Date.now();
    this.pending.set(index, { index, since: now, next: now + this.o.firstDelayMs, delay: this.o.firstDelayMs });
  }

  stop(): void {
    clearInterval(this.timer);
    this.pending.clear();
  }

  private async check(): Promise<void> {
    if (this.busy) return; // one pass at a time: reads are not piled up behind a slow disk
    this.busy = true;
    try {
      const now = Date.now();
      for (const p of [...this.pending.values()]) {
        if (p.next > now) continue;
        const buf = await this.store.readPiece(p.index).catch(() => null);
        if (buf !== null && pieceMatches(this.torrent, p.index, buf)) {
          this.pending.delete(p.index);
          this.onDisk(p.index);
        } else if (now - p.since > this.o.giveUpMs) {
          this.pending.delete(p.index);
        } else {
          p.delay = Math.min(p.delay * 2, 8000);
          p.next = Date.now() + p.delay;
        }
      }
    } finally {
      this.busy = false;
    }
  }
}
