/**
 * Digests of pieces on another core (SHA-1, or a BEP 52 merkle root: piece-check.ts): a worker thread that piece buffers are handed to
 * (transferred, not copied, when the buffer owns its memory) and handed back with the digest.
 * The download engine and `assemble` keep reading their input on their own thread meanwhile
 * instead of spending a second per GiB hashing there. Shared memory is hashed where it is:
 * assemble's reader has the kernel read pieces into aligned shared memory (direct-io.ts). The
 * download engine's pieces are moved instead: its blocks are copied in by JavaScript, and
 * copies into shared memory were slower (download from 4 libtorrent seeders: 3.3 s against
 * 2.8 s, measured).
 */
import { Worker } from 'node:worker_threads';
import type { PieceDigest } from '../metainfo/piece-check.js';

export interface Hashed {
  digest: Buffer;
  /** where the bytes are now */
  data: Buffer;
  /** a merkle digest's leaf hashes, when asked for */
  leaves?: Buffer;
}

interface Job {
  resolve: (r: Hashed) => void;
  reject: (e: Error) => void;
}

export class HashPool {
  private worker: Worker | null = null;
  private readonly jobs = new Map<number, Job>();
  private nextId = 0;
  private failure: Error | null = null;

  private start(): Worker {
    const w = new Worker(new URL('./hash-worker.js', import.meta.url));
    w.on('message', (m: { id: number; digest: Uint8Array; buf: ArrayBuffer; offset: number; length: number; leaves?: Uint8Array }) => {
      const job = this.jobs.get(m.id);
      if (!job) return;
      this.jobs.delete(m.id);
      // an idle worker must not keep the process alive; a busy one must
      if (this.jobs.size === 0) w.unref();
      const r: Hashed = { digest: Buffer.from(m.digest), data: Buffer.from(m.buf, m.offset, m.length) };
      if (m.leaves) r.leaves = Buffer.from(m.leaves.buffer, m.leaves.byteOffset, m.leaves.byteLength);
      job.resolve(r);
    });
    w.on('error', (e) => {
      this.failure = e;
      for (const j of this.jobs.values()) j.reject(e);
      this.jobs.clear();
    });
    w.unref();
    return w;
  }

  /**
   * The SHA-1 of `data`. `data` is given up (its memory moves) and comes back as `data`. A
   * piece under a lease is hashed through PieceLease.sha1, which follows the move.
   */
  sha1(data: Buffer): Promise<Hashed> {
    return this.digest(data, null);
  }

  /**
   * The digest of `data` as `how` says (null: SHA-1), moved as for sha1(). `withLeaves`: a
   * merkle digest brings the leaf hashes back too (for pinning a bad block to its sender).
   */
  digest(data: Buffer, how: PieceDigest | null, withLeaves = false): Promise<Hashed> {
    if (this.failure) return Promise.reject(this.failure);
    this.worker ??= this.start();
    const id = this.nextId++;
    // shared memory is hashed where it is (the caller gave it up until the digest is back); a
    // buffer that is the whole of its memory moves; a slice of a bigger one (Node's small buffer
    // pool, a read chunk) is copied first, so the rest of that memory stays usable here
    const shared = data.buffer instanceof SharedArrayBuffer;
    let moved = data;
    if (!shared && (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength)) {
      moved = Buffer.from(new ArrayBuffer(data.length));
      data.copy(moved);
    }
    return new Promise((resolve, reject) => {
      if (this.jobs.size === 0) this.worker!.ref();
      this.jobs.set(id, { resolve: shared ? (r) => resolve({ digest: r.digest, data }) : resolve, reject });
      const m = { id, buf: moved.buffer, offset: moved.byteOffset, length: moved.byteLength, how: how === null || how.kind === 'sha1' ? undefined : how, withLeaves };
      this.worker!.postMessage(m, shared ? [] : [moved.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}
