/**
 * A cap shared by every torrent of a session: connections at most, whoever opens them (dialled
 * by a torrent's connector, or accepted on the session's port). A torrent that finds the cap
 * reached waits; a slot given back wakes the waiters, so a busy torrent cannot keep the others
 * from ever dialling.
 */
export class ConnectionBudget {
  readonly max: number;
  private usedCount = 0;
  private readonly waiters = new Set<() => void>();
  private waking = false;

  constructor(max: number) {
    this.max = max;
  }

  get used(): number {
    return this.usedCount;
  }

  /** One connection slot, or false when the cap is reached. */
  take(): boolean {
    if (this.usedCount >= this.max) return false;
    this.usedCount++;
    return true;
  }

  give(): void {
    if (this.usedCount > 0) this.usedCount--;
    if (this.waiters.size === 0 || this.waking) return;
    // woken on the next turn, once, in the order they waited; whoever still finds no slot
    // asks again (a wake per slot given back would be one per closed connection per waiter)
    this.waking = true;
    setImmediate(() => {
      this.waking = false;
      const list = [...this.waiters];
      this.waiters.clear();
      for (const w of list) {
        if (this.usedCount >= this.max) {
          this.waiters.add(w);
          continue;
        }
        w();
      }
    });
  }

  /** Calls `wake` once a slot may be free (once per wait). */
  wait(wake: () => void): void {
    this.waiters.add(wake);
  }

  /** The waiter is gone (its torrent stopped). */
  forget(wake: () => void): void {
    this.waiters.delete(wake);
  }
}
