/**
 * At most `n` holders at once, the others waiting in the order they asked: the queue of
 * torrents beyond --max-active, and the writes of every torrent of a process (one disk
 * writer: pieces waiting to be written hold their buffers, so the bound is on memory too).
 */
export class Turns {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(n: number) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`Turns: ${n} is not a count of at least 1`);
    this.free = n;
  }

  /** A turn: resolves with its release (idempotent) once free; null if `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<(() => void) | null> {
    if (signal?.aborted) return Promise.resolve(null);
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => {
      const go = (): void => {
        signal?.removeEventListener('abort', stop);
        resolve(this.releaser());
      };
      const stop = (): void => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(null);
      };
      this.waiting.push(go);
      signal?.addEventListener('abort', stop, { once: true });
    });
  }

  /** The release of one turn: the next waiter gets it, or it is free again. Once only. */
  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
}
