/**
 * Serving blocks read back from disk. Peers request 16 KiB blocks in piece order, so reading
 * each block alone costs one pread and one thread-pool round trip per 16 KiB; instead a block
 * request reads the aligned stripe around it (256 KiB) once and later blocks are slices of it,
 * handed out synchronously while the stripe is cached (`peek`), so the common case costs no
 * promise. The cache is bounded in bytes and shared by every connection, so memory does not
 * grow with the number of peers; concurrent requests for one stripe share a single read.
 *
 * Stripe buffers are reused (buffer-pool.ts): a block is a lease on its stripe, released once
 * the socket has taken the bytes, and a stripe that is both evicted and unleased goes back to
 * the pool. Fresh stripes cost the seed ~10% of its CPU besides the RSS. A lease that is never
 * released only means its stripe is left to the garbage collector.
 */
import { pieceSize } from '../metainfo/pieces.js';
import type { FileStore } from './file-store.js';
import { BufferPool } from './buffer-pool.js';
import { allocReadBuffer } from './io-buffer.js';

const STRIPE = 256 * 1024;
/** stripes per piece at most (a piece is at most 2 GiB): keys are index * this + stripe */
const KEY_STRIDE = 8192;

interface Stripe {
  buf: Buffer;
  leases: number;
  cached: boolean;
}

/** A block of a cached stripe: call `release` when its bytes are no longer needed. */
export interface Lease {
  block: Buffer;
  stripe: Stripe | null;
}

export class ReadCache {
  private readonly store: FileStore;
  private readonly maxStripes: number;
  /** Map order is recency order (oldest first): a hit is re-inserted. */
  private readonly ready = new Map<number, Stripe>();
  private readonly reading = new Map<number, Promise<Stripe | null>>();
  private readonly pool: BufferPool;

  constructor(store: FileStore, maxBytes = 4 * 1024 * 1024) {
    this.store = store;
    this.maxStripes = Math.max(1, Math.floor(maxBytes / STRIPE));
    this.pool = new BufferPool(STRIPE, this.maxStripes, allocReadBuffer);
  }

  /** The block when its stripe is cached, else undefined (then use `read`). */
  peek(index: number, begin: number, length: number): Lease | undefined {
    const start = begin - (begin % STRIPE);
    if (begin + length > start + STRIPE) return undefined;
    return this.hit(index * KEY_STRIDE + start / STRIPE, begin - start, length);
  }

  /** `length` bytes at `begin` of piece `index`, or null when the data is not on disk. */
  async read(index: number, begin: number, length: number): Promise<Lease | null> {
    const start = begin - (begin % STRIPE);
    // a block crossing a stripe boundary (odd block sizes) is read on its own
    if (begin + length > start + STRIPE) return this.direct(index, begin, length);
    const key = index * KEY_STRIDE + start / STRIPE;
    const hit = this.hit(key, begin - start, length);
    if (hit !== undefined) return hit;
    let p = this.reading.get(key);
    if (p === undefined) {
      p = this.load(key, index, start);
      this.reading.set(key, p);
    }
    const stripe = await p;
    if (stripe === null) return null;
    // waiters resume in the microtasks right after the load, before any other load can evict
    // it; should that ever change, a recycled buffer must not be handed out
    if (!stripe.cached && stripe.leases === 0) return this.direct(index, begin, length);
    return this.lease(stripe, begin - start, length);
  }

  release(lease: Lease): void {
    const s = lease.stripe;
    if (s === null) return;
    lease.stripe = null;
    s.leases--;
    if (s.leases === 0 && !s.cached) this.recycle(s);
  }

  /** A cached stripe's block, marking the stripe most recently used. */
  private hit(key: number, offset: number, length: number): Lease | undefined {
    const stripe = this.ready.get(key);
    if (stripe === undefined) return undefined;
    this.ready.delete(key);
    this.ready.set(key, stripe);
    return this.lease(stripe, offset, length);
  }

  /** A block read on its own, outside the cache. */
  private async direct(index: number, begin: number, length: number): Promise<Lease | null> {
    const block = await this.store.read(index, begin, length);
    return block === null ? null : { block, stripe: null };
  }

  private lease(stripe: Stripe, offset: number, length: number): Lease {
    stripe.leases++;
    return { block: stripe.buf.subarray(offset, offset + length), stripe };
  }

  private async load(key: number, index: number, start: number): Promise<Stripe | null> {
    const length = Math.min(STRIPE, pieceSize(this.store.torrent, index) - start);
    const buf = this.pool.take();
    try {
      // a failed or short read is not kept: the next request tries the disk again
      if ((await this.store.read(index, start, length, buf)) === null) return null;
    } finally {
      this.reading.delete(key);
    }
    const stripe: Stripe = { buf, leases: 0, cached: true };
    if (this.ready.size >= this.maxStripes) {
      const oldest = this.ready.keys().next().value!;
      const old = this.ready.get(oldest)!;
      this.ready.delete(oldest);
      old.cached = false;
      if (old.leases === 0) this.recycle(old);
    }
    this.ready.set(key, stripe);
    return stripe;
  }

  private recycle(s: Stripe): void {
    this.pool.give(s.buf);
  }
}
