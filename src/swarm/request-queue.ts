/**
 * How many block requests to keep outstanding with one peer (libtorrent's rule): about
 * `seconds` of its measured rate, clamped to [2, 500]. A new connection starts in slow start, as
 * TCP does: one more request per block received, so the queue doubles every round trip until the
 * rate stops growing. Sizing from the rate alone left every peer at the starting 16 requests
 * (256 KiB in flight) until the first rate tick a second later: from 4 libtorrent seeders on
 * loopback, the first 0.25 s ran at a third of the steady rate.
 */
import { BLOCK } from './picker.js';

export const MIN_QUEUE = 2;
export const MAX_QUEUE = 500;
const START = 16;
/** slow start ends when a tick's rate is less than this much above the previous tick's */
const GROWTH = 1.1;

export class RequestQueue {
  /** requests to keep outstanding */
  size = START;
  private slowStart = true;
  private lastRate = 0;
  private readonly seconds: number;

  constructor(seconds = 3) {
    this.seconds = seconds;
  }

  get inSlowStart(): boolean {
    return this.slowStart;
  }

  /** A requested block arrived. */
  onBlock(): void {
    if (this.slowStart && this.size < MAX_QUEUE) this.size++;
  }

  /** The periodic tick, with the peer's rate in bytes/s (0: nothing received yet). */
  onTick(rate: number): void {
    if (rate <= 0) return; // until a peer has sent something, keep the starting queue
    const byRate = Math.max(MIN_QUEUE, Math.min(MAX_QUEUE, Math.ceil((rate * this.seconds) / BLOCK)));
    if (this.slowStart) {
      if (rate < this.lastRate * GROWTH) this.slowStart = false;
      this.lastRate = rate;
      // still growing: never below what the rate asks for, never cut back
      this.size = this.slowStart ? Math.max(this.size, byRate) : byRate;
      return;
    }
    this.size = byRate;
  }
}
