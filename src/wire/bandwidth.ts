/**
 * Rate limits: token buckets that peer connections draw on (issue #24).
 *
 * A `TokenBucket` fills at `rate` bytes/s up to `burst` bytes. A bucket may have a parent: a
 * connection's bytes are drawn from its bucket and from every bucket above it (e.g. its
 * torrent's, then the global one), so each limit holds for the sum of what is below it.
 *
 * Connections do not take tokens byte by byte: each direction of a connection has an
 * `Allowance`, a credit of bytes it may move before it asks again, granted a quantum (16 KiB)
 * at a time. It moves bytes while its credit is positive (a read or a write may overshoot it:
 * the overshoot is a debt that the next grants repay first, so every byte is paid for and the
 * long-run rate holds). When the buckets have no tokens, the allowance waits in the queue of
 * the bucket that is empty, and that bucket's one timer (never one per connection) serves its
 * queue in order when tokens return: one quantum per waiter and turn, as far as the tokens go;
 * a waiter still in debt after its turn goes to the back. This is deficit round robin: with
 * 1,000 connections waiting, a refill wakes the few its tokens pay for, in turn, and over a
 * round every connection gets the same bytes whatever the size of its reads; never all of them
 * at once (which would read 1,000 buffers, sink the bucket deep into debt and then let nobody
 * move for seconds).
 */

/** Time and timers, injectable so that tests run on a fake clock. */
export interface Clock {
  /** milliseconds, monotonic */
  now(): number;
  /** runs `fn` once after `ms`; the returned function cancels it. Must not keep the process alive. */
  setTimer(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    // a bucket never keeps a program alive: the sockets waiting on it do, as long as they are open
    t.unref();
    return () => clearTimeout(t);
  },
};

/**
 * The burst, in seconds of the rate: what a full bucket lets through at once. A full bucket adds
 * at most this much (and the quantum its last grant borrows) to any window: 2.5% over 10 s. A
 * much smaller one loses tokens whenever the event loop is late by more than it holds (a busy
 * shared machine is late by tens of ms).
 */
export const BURST_SECONDS = 0.25;
/**
 * What one grant, one waiter's turn, gives: one 16 KiB block (or the burst, if smaller). Larger
 * quanta make the round robin coarser; smaller ones make more grants per block sent or read.
 */
export const QUANTUM = 16 * 1024;
/**
 * The shortest wait of a refill timer: at most 100 wake-ups a second per bucket, whatever the
 * rate, while something waits on it (and none while nothing does).
 */
export const MIN_TICK_MS = 10;

export interface TokenBucketOptions {
  /** a bucket whose limit also applies to every byte drawn from this one */
  parent?: TokenBucket | null;
  /** bytes a full bucket holds (default: BURST_SECONDS of the rate, at least 1 byte) */
  burst?: number;
  clock?: Clock;
}

/** A waiter's place in a bucket's queue; stale once its allowance was served or closed. */
export interface Ticket {
  readonly allowance: Allowance;
}

export class TokenBucket {
  readonly parent: TokenBucket | null;
  readonly clock: Clock;
  private rateValue = 0;
  private burstValue = 0;
  private readonly fixedBurst: number | undefined;
  /** negative while in debt (a quantum borrowed, or control messages charged) */
  private level = 0;
  private last: number;
  /** waiters, served from `head`; a served or cancelled ticket is skipped */
  private queue: Ticket[] = [];
  private head = 0;
  private cancelTimer: (() => void) | null = null;

  /** `rate` in bytes/s; 0 or Infinity: unlimited (the bucket only passes on to its parent). */
  constructor(rate: number, options: TokenBucketOptions = {}) {
    this.parent = options.parent ?? null;
    this.clock = options.clock ?? systemClock;
    this.fixedBurst = options.burst;
    this.last = this.clock.now();
    this.setRate(rate);
    this.level = this.burstValue;
  }

  get rate(): number {
    return this.rateValue;
  }

  set rate(rate: number) {
    this.setRate(rate);
  }

  get burst(): number {
    return this.burstValue;
  }

  /** A finite, positive rate. */
  get limited(): boolean {
    return this.rateValue > 0 && this.rateValue < Infinity;
  }

  /** Tokens now (negative: in debt); Infinity when unlimited. */
  get tokens(): number {
    if (!this.limited) return Infinity;
    this.refill();
    return this.level;
  }

  /** Allowances waiting for this bucket's tokens. */
  get waiting(): number {
    let n = 0;
    for (let i = this.head; i < this.queue.length; i++) if (this.queue[i]!.allowance.ticket === this.queue[i]) n++;
    return n;
  }

  /** Changes the rate (takes effect now: the tokens until now accrued at the old rate). */
  setRate(rate: number): void {
    if (!(rate >= 0)) throw new RangeError(`a rate is a number of bytes/s >= 0, not ${rate}`);
    if (this.limited) this.refill();
    else this.last = this.clock.now();
    const wasLimited = this.limited;
    this.rateValue = rate;
    if (!this.limited) {
      this.burstValue = Infinity;
      this.level = 0;
      this.stopTimer();
      // nothing waits on an unlimited bucket: its waiters go on (or wait on a parent)
      this.serve();
      return;
    }
    this.burstValue = this.fixedBurst ?? Math.max(1, Math.floor(rate * BURST_SECONDS));
    this.level = wasLimited ? Math.min(this.level, this.burstValue) : this.burstValue;
    // the pending refill was timed for the old rate
    this.stopTimer();
    this.arm();
  }

  /**
   * Charges bytes moved without waiting (control messages, handshakes) to this bucket and the
   * ones above it. The debt they make is floored at one burst, so traffic that cannot wait
   * never stalls the rest for longer than a burst takes to refill.
   */
  charge(n: number): void {
    for (let b: TokenBucket | null = this; b !== null; b = b.parent) {
      if (!b.limited) continue;
      b.refill();
      b.level = Math.max(b.level - n, -b.burstValue);
    }
  }

  /** Accrues tokens up to now. */
  private refill(): void {
    const now = this.clock.now();
    const dt = now - this.last;
    if (dt <= 0) return;
    this.last = now;
    this.level = Math.min(this.burstValue, this.level + (this.rateValue * dt) / 1000);
  }

  /** @internal takes `n` granted tokens (the caller saw a positive level: a grant may borrow) */
  take(n: number): void {
    this.level -= n;
  }

  /** @internal gives back what a closed allowance did not use */
  refund(n: number): void {
    if (!this.limited) return;
    this.refill();
    this.level = Math.min(this.burstValue, this.level + n);
  }

  /** @internal whether tokens are there for a newcomer (nobody waits before it) */
  hasQueue(): boolean {
    this.skipStale();
    return this.head < this.queue.length;
  }

  /** @internal the allowance waits here, at the back, until tokens return */
  enqueue(a: Allowance): void {
    const t: Ticket = { allowance: a };
    a.ticket = t;
    this.queue.push(t);
    this.arm();
  }

  /** Steps over the served and cancelled tickets at the front. */
  private skipStale(): void {
    while (this.head < this.queue.length && this.queue[this.head]!.allowance.ticket !== this.queue[this.head]) this.head++;
  }

  /** Sets the one refill timer for when a quantum's worth of tokens will be there. */
  private arm(): void {
    if (this.cancelTimer !== null || !this.limited || !this.hasQueue()) return;
    this.refill();
    const need = Math.min(QUANTUM, this.burstValue) - this.level;
    const ms = Math.max(MIN_TICK_MS, Math.ceil((need * 1000) / this.rateValue));
    this.cancelTimer = this.clock.setTimer(ms, () => {
      this.cancelTimer = null;
      this.serve();
      this.arm();
    });
  }

  private stopTimer(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
  }

  /**
   * Serves the queue in order while tokens last (all of it when the bucket became unlimited).
   * Each waiter's turn is one quantum, which goes first to its debt: a connection that read
   * 64 KiB on a 16 KiB credit waits three more turns, so every one gets the same bytes whatever
   * the size of its reads. A waiter that must wait on another bucket (a parent out of tokens)
   * moves to that one's queue. One woken may send or read at once and queue again: it goes to
   * the back, and waits for the next round, behind the ones not yet served.
   */
  private serve(): void {
    const end = this.queue.length;
    while (this.head < end && this.tokens > 0) {
      const t = this.queue[this.head++]!;
      if (t.allowance.ticket !== t) continue;
      t.allowance.ticket = null;
      t.allowance.retry(this);
    }
    this.skipStale();
    // the served part of the array goes now and then (never during a round: it indexes it)
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * One direction of one connection: how many bytes it may still move (its credit), asking its
 * bucket chain for more when that runs out, and `onReady` once it may move bytes again.
 */
export class Allowance {
  readonly bucket: TokenBucket;
  private readonly onReady: () => void;
  /** bytes it may move before asking; negative: a debt the next grant repays first */
  private credit = 0;
  /** @internal its place in a queue while it waits */
  ticket: Ticket | null = null;
  private closed = false;

  constructor(bucket: TokenBucket, onReady: () => void) {
    this.bucket = bucket;
    this.onReady = onReady;
  }

  /** It waits for tokens (onReady will follow). */
  get waiting(): boolean {
    return this.ticket !== null;
  }

  /**
   * May it move bytes now? True with credit left (or no limit); otherwise it asks for tokens, and
   * false means it is queued for them: onReady follows. A writer asks before it writes, so that
   * a thousand connections starting at once do not each write a message on credit.
   */
  acquire(): boolean {
    if (this.closed || !chainLimited(this.bucket)) return true;
    if (this.ticket !== null) return false;
    if (this.credit > 0) return true;
    return this.ask(null);
  }

  /**
   * `n` bytes were moved under this allowance (a read cannot ask first: it is charged after).
   * True: it may go on; false: it must stop until onReady (it is queued for tokens).
   */
  spend(n: number): boolean {
    if (this.closed || !chainLimited(this.bucket)) return true;
    this.credit -= n;
    if (this.ticket !== null) return false;
    if (this.credit > 0) return true;
    return this.ask(null);
  }

  /** `n` bytes moved that do not wait for tokens: charged to the chain (see TokenBucket.charge). */
  charge(n: number): void {
    this.bucket.charge(n);
  }

  /** Leaves the queue; the unused credit goes back to the buckets and a debt is charged. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ticket = null;
    const c = this.credit;
    this.credit = 0;
    if (c > 0) for (let b: TokenBucket | null = this.bucket; b !== null; b = b.parent) b.refund(c);
    else if (c < 0) this.bucket.charge(-c);
  }

  /** @internal its turn in `from`'s queue came: asks again, and goes on if granted */
  retry(from: TokenBucket): void {
    if (this.closed) return;
    if (!chainLimited(this.bucket) || this.ask(from)) this.onReady();
  }

  /**
   * Asks the chain for tokens, a quantum at a time, until its credit is positive. Each bucket of
   * the chain must have tokens to give a quantum (it may go below zero by less than one: a
   * quantum borrowed from the next refill, so every turn is the same size). True when its credit
   * is positive now; false when it was queued on a bucket: one with no tokens or, for a newcomer
   * (`serving` null), one where others wait before it. A waiter served from a queue gets one
   * quantum, its turn, and goes to the back if that did not cover its debt (a waiter served has
   * waited its turn: it only needs tokens, or it could be sent from the back of one queue to the
   * back of another for ever).
   */
  private ask(serving: TokenBucket | null): boolean {
    for (;;) {
      let quantum = QUANTUM;
      let limited = false;
      for (let b: TokenBucket | null = this.bucket; b !== null; b = b.parent) {
        if (!b.limited) continue;
        if (b.tokens <= 0 || (serving === null && b.hasQueue())) {
          b.enqueue(this);
          return false;
        }
        limited = true;
        if (b.burst < quantum) quantum = b.burst;
      }
      if (!limited) return true;
      for (let b: TokenBucket | null = this.bucket; b !== null; b = b.parent) if (b.limited) b.take(quantum);
      this.credit += quantum;
      if (this.credit > 0) return true;
      if (serving !== null) {
        // its turn is over: the back of the queue
        serving.enqueue(this);
        return false;
      }
    }
  }
}

function chainLimited(b: TokenBucket | null): boolean {
  for (; b !== null; b = b.parent) if (b.limited) return true;
  return false;
}

/**
 * The limits one connection draws on: `down` is charged with every byte read, `up` with every
 * byte written. Each may have parents (torrent, global). Absent: unlimited, at no cost.
 */
export interface Bandwidth {
  down?: TokenBucket;
  up?: TokenBucket;
}
