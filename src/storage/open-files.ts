/**
 * One limit on open descriptors for every torrent of a process.
 *
 * Each FileStore caps its own open files (`maxOpen`) and each ConfinedRoot its held
 * directories, but a process that hosts a hundred torrents adds those caps up to thousands of
 * descriptors, past a usual `ulimit -n` of 1024. The holders of descriptors that register with
 * one OpenFiles count what they open against its `max`: a holder reserves before it opens and
 * gives back once a close has finished, so the descriptors really open never exceed the count.
 * A reservation that finds the budget full first closes the least recently used idle entry of
 * any holder: uses are stamped from one clock per thread (lru.ts `nextUse`), so entries of
 * different holders compare. It goes over the limit only when every descriptor counted is in
 * use or about to be, none idle and none closing.
 *
 * Only opening and closing touch the budget: a read or a write through an open handle costs
 * what it did without one. The price is at the open: the victim search walks the entries of
 * every holder (about `max` of them, in memory), beside the several system calls of the open.
 *
 * A budget belongs to one thread (the hashing workers' stores keep their own caps).
 */
export interface Holder {
  /** The tick (lru.ts `nextUse`) of its least recently used entry nobody holds; Infinity when every entry is in use or there is none. */
  oldestIdle(): number;
  /**
   * Takes that entry out before returning (nobody can use or pick it after the call) and closes
   * it, telling the budget at once (`releaseAfter`); settles once its descriptors are closed and
   * given back. Never rejects.
   */
  closeOldestIdle(): Promise<void>;
}

export class OpenFiles {
  /** the most descriptors open at once, over every holder, unless every one of them is in use */
  readonly max: number;
  /** descriptors open, or reserved by an open under way */
  private used = 0;
  /** closes under way (`releaseAfter`): room that is coming */
  private closing = 0;
  /** reservations that found nothing idle to close, waiting for a close under way */
  private waiters: Array<() => void> = [];
  private readonly holders = new Set<Holder>();

  constructor(max: number) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`the limit on open files must be a positive integer, not ${max}`);
    this.max = max;
  }

  /** Descriptors open now or about to be, over every holder: above `max` only while all are in use. */
  get open(): number {
    return this.used;
  }

  /** Its idle entries may be closed to make room for any holder's open from now on. */
  register(holder: Holder): void {
    this.holders.add(holder);
  }

  /** A holder that closes leaves: its entries are no longer picked (it gives back what it closes itself). */
  unregister(holder: Holder): void {
    this.holders.delete(holder);
  }

  /**
   * Counts `n` descriptors about to be opened. While they do not fit, closes the least recently
   * used idle entry of any holder, waiting for each close: the descriptor must be gone before
   * its place is taken. With nothing idle, it waits for a close under way (one that another
   * reservation started took the idle entry it would have found). With nothing closing either,
   * every entry is in use: it counts them anyway, over the limit, as a store over its own
   * `maxOpen` does. Waiting for a user to let go would put a check of the waiters on every
   * release of a handle, that is on every read and write.
   */
  async reserve(n: number): Promise<void> {
    while (this.used + n > this.max) {
      const victim = this.oldestIdleHolder();
      if (victim !== null) await victim.closeOldestIdle();
      else if (this.closing > 0) await new Promise<void>((wake) => this.waiters.push(wake));
      else break;
    }
    this.used += n;
  }

  /** Gives back `n` descriptors reserved and never opened (a missing file). */
  release(n: number): void {
    this.used -= n;
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Gives back the descriptors of a close under way once it is done: `closing` resolves to
   * how many it closed and never rejects. Call it when the close starts: until then a
   * reservation that finds nothing idle would go over the limit instead of waiting for it.
   */
  async releaseAfter(closing: Promise<number>): Promise<void> {
    this.closing++;
    let n = 0;
    try {
      n = await closing;
    } finally {
      this.closing--;
      this.release(n);
    }
  }

  private oldestIdleHolder(): Holder | null {
    let victim: Holder | null = null;
    let oldest = Infinity;
    for (const h of this.holders) {
      const t = h.oldestIdle();
      if (t < oldest) {
        oldest = t;
        victim = h;
      }
    }
    return victim;
  }
}
