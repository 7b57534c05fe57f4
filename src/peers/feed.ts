/**
 * Peers from every source (stdin, --peer, trackers, x.pe, PEX) handed to whichever stage
 * needs them now, remembered so the next stage gets them too: a magnet's peers serve the
 * metadata fetch first and then the download.
 */
import { peerKey, type PeerRecord } from './record.js';

/** distinct peers remembered at most: enough for any real swarm, bounded against floods */
const MAX_REMEMBERED = 10_000;

export class PeerFeed {
  private readonly seen = new Map<string, PeerRecord>();
  private target: ((rec: PeerRecord) => void) | null = null;
  ended = false;
  private readonly endWaiters: Array<() => void> = [];

  add(rec: PeerRecord): void {
    const key = peerKey(rec);
    if (!this.seen.has(key) && this.seen.size < MAX_REMEMBERED) this.seen.set(key, rec);
    this.target?.(rec);
  }

  /** From now on peers go to `target`; every peer seen so far is replayed to it first. */
  switchTo(target: ((rec: PeerRecord) => void) | null): void {
    this.target = target;
    if (target) for (const rec of this.seen.values()) target(rec);
  }

  /** No more peers will come from the inputs (stdin ended, no tracker). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const cb of this.endWaiters.splice(0)) cb();
  }

  /** Calls `cb` once the inputs have ended (at once if they have). */
  onEnd(cb: () => void): void {
    if (this.ended) cb();
    else this.endWaiters.push(cb);
  }
}
