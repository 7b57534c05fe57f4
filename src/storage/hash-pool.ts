/**
 * SHA-1 of pieces on another core: a worker thread that piece buffers are handed to and
 * handed back from with the digest. The download engine and `assemble` keep reading their
 * input on their own thread meanwhile instead of spending a second per GiB hashing there.
 *
 * Buffers from `allocShared` are read by the worker in place: shared memory is neither copied
 * nor moved, so the caller's buffer stays valid (it must not change it until the digest is
 * back). Any other buffer that owns its memory moves to the worker and back (the caller's
 * object is detached: use the `data` returned); a slice of memory shared with other buffers
 * (Node's small-buffer pool, a read chunk) is copied first.
 */
import { Worker } from 'node:worker_threads';

interface Job {
  resolve: (r: { digest: Buffer; data: Buffer }) => void;
  reject: (e: Error) => void;
  /** shared memory: `data` is the caller's buffer itself */
  shared: Buffer | null;
}

/** A buffer whose memory the hashing thread reads without a copy or a move. */
export function allocShared(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}

export class HashPool {
  private worker: Worker | null = null;
  private readonly jobs = new Map<number, Job>();
  private nextId = 0;
  private failure: Error | null = null;

  private start(): Worker {
    const w = new Worker(new URL('./hash-worker.js', import.meta.url));
    w.on('message', (m: { id: number; digest: Uint8Array; buf?: ArrayBuffer; offset?: number; length?: number }) => {
      const job = this.jobs.get(m.id);
      if (!job) return;
      this.jobs.delete(m.id);
      // an idle worker must not keep the process alive; a busy one must
      if (this.jobs.size === 0) w.unref();
      job.resolve({ digest: Buffer.from(m.digest), data: job.shared ?? Buffer.from(m.buf!, m.offset, m.length) });
    });
    w.on('error', (e) => {
      this.failure = e;
      for (const j of this.jobs.values()) j.reject(e);
      this.jobs.clear();
    });
    w.unref();
    return w;
  }

  /** The SHA-1 of `data`, and `data` back (see above for when it is another object). */
  sha1(data: Buffer): Promise<{ digest: Buffer; data: Buffer }> {
    if (this.failure) return Promise.reject(this.failure);
    this.worker ??= this.start();
    const id = this.nextId++;
    const shared = data.buffer instanceof SharedArrayBuffer;
    let sent = data;
    if (!shared && (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength)) {
      sent = Buffer.from(new ArrayBuffer(data.length));
      data.copy(sent);
    }
    return new Promise((resolve, reject) => {
      if (this.jobs.size === 0) this.worker!.ref();
      this.jobs.set(id, { resolve, reject, shared: shared ? data : null });
      const msg = { id, buf: sent.buffer, offset: sent.byteOffset, length: sent.byteLength };
      if (shared) this.worker!.postMessage(msg);
      else this.worker!.postMessage(msg, [sent.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}
