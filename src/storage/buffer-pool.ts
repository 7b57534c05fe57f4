/**
 * Reusing big buffers instead of leaving them to the garbage collector. At hundreds of MiB/s a
 * fresh external buffer per piece or per read-ahead stripe is tens of MiB of garbage between
 * collections, and glibc keeps the heap it grew for it: that garbage, not live data, was most
 * of the RSS of `seed` and `download` (measured). A taken buffer belongs to the taker until it
 * is given back; one that is never given back is only left to the collector, so a consumer
 * that cannot tell when it is done with the bytes (a stream handing them on) just keeps it.
 */
import { PieceLease } from './piece-lease.js';

export class BufferPool {
  readonly size: number;
  private readonly max: number;
  private readonly alloc: (size: number) => Buffer;
  private readonly free: Buffer[] = [];

  /** `max` free buffers are kept at most; `alloc` makes a new one (default: unpooled memory). */
  constructor(size: number, max: number, alloc: (size: number) => Buffer = (n) => Buffer.allocUnsafeSlow(n)) {
    this.size = size;
    this.max = max;
    this.alloc = alloc;
  }

  take(): Buffer {
    return this.free.pop() ?? this.alloc(this.size);
  }

  /** Gives `buf` back: its bytes may be overwritten from now on. Other sizes are not kept. */
  give(buf: Buffer): void {
    if (buf.length !== this.size || this.free.length >= this.max) return;
    // a double give would hand one buffer to two takers: refuse it loudly, it is a bug
    if (this.free.includes(buf)) throw new Error('BufferPool: buffer given back twice');
    this.free.push(buf);
  }

  /** A lease on `buf`, a buffer taken from here: its release gives it back (piece-lease.ts). */
  lease(buf: Buffer): PieceLease {
    return new PieceLease(buf, this);
  }
}
