/**
 * LEDBAT (BEP 29 "congestion control"): the send window grows while the one-way delay the
 * other end measures stays under the 100 ms target and shrinks as it passes it, so a
 * modem's queue never fills with our packets. The delay samples are the
 * timestamp_difference_microseconds the other end echoes; their minimum over two minutes is
 * the base delay (the wire without our queue), and what a sample has over it is our queue.
 */

export const TARGET_DELAY_US = 100_000;
/** bytes the window may grow per round trip at zero queueing delay (libtorrent's utp_gain_factor) */
export const GAIN_BYTES = 3000;
/** base delay history: one minimum per minute, two minutes kept (BEP 29) */
const HISTORY_SLOT_MS = 60_000;
const HISTORY_SLOTS = 2;

export interface LedbatOptions {
  /** the packet size: the window never goes under one packet */
  mss: number;
  /** the window's ceiling in bytes */
  maxWindow: number;
}

export class Ledbat {
  /** max_window of the BEP: bytes allowed in flight */
  cwnd: number;
  /** until the first loss or a delay past the target, the window doubles each round trip (libtorrent's slow start) */
  slowStart = true;
  private ssthresh = Infinity;
  private readonly history: number[] = [];
  private slotStarted = -Infinity;
  private readonly mss: number;
  private readonly maxWindow: number;
  private readonly recent = [Infinity, Infinity, Infinity];
  private recentAt = 0;
  /** the latest queueing delay, µs (for stats and tests) */
  ourDelay = 0;

  constructor(options: LedbatOptions) {
    this.mss = options.mss;
    this.maxWindow = options.maxWindow;
    this.cwnd = 2 * options.mss;
  }

  /** The minimum delay sample of the last two minutes (µs), or the sample itself at first. */
  get baseDelay(): number {
    let m = Infinity;
    for (const v of this.history) if (v < m) m = v;
    return m;
  }

  /**
   * An ack came: `ackedBytes` left flight, `delaySample` is the echoed one-way delay (µs; 0 =
   * the other end has none yet), `inFlight` the bytes still unacked before this ack.
   */
  onAck(ackedBytes: number, delaySample: number, nowMs: number): void {
    if (ackedBytes <= 0) return;
    let delayFactor = 1;
    if (delaySample > 0) {
      this.addSample(delaySample, nowMs);
      // the least of the last three samples: one late sample (a busy event loop at either end)
      // is noise, not a queue (libtorrent does the same)
      this.recent[this.recentAt] = delaySample;
      this.recentAt = (this.recentAt + 1) % 3;
      this.ourDelay = Math.min(this.recent[0]!, this.recent[1]!, this.recent[2]!) - this.baseDelay;
      delayFactor = (TARGET_DELAY_US - this.ourDelay) / TARGET_DELAY_US;
    }
    const windowFactor = ackedBytes / Math.max(this.cwnd, ackedBytes);
    const gain = GAIN_BYTES * delayFactor * windowFactor;
    if (this.slowStart) {
      if (delayFactor < 0.5 || this.cwnd >= this.ssthresh) this.slowStart = false;
      else {
        this.cwnd = Math.min(this.maxWindow, this.cwnd + Math.max(ackedBytes, gain));
        return;
      }
    }
    this.cwnd = Math.min(this.maxWindow, Math.max(this.mss, this.cwnd + gain));
  }

  /** A packet was lost (3 duplicate acks or a SACK hole): halve, as TCP does (BEP 29, since 2012). */
  onLoss(): void {
    this.cwnd = Math.max(this.mss, Math.floor(this.cwnd / 2));
    this.ssthresh = this.cwnd;
    this.slowStart = false;
  }

  /** The retransmission timer went off: one packet in flight, then slow start to half the old window. */
  onTimeout(): void {
    this.ssthresh = Math.max(this.mss, Math.floor(this.cwnd / 2));
    this.cwnd = this.mss;
    this.slowStart = true;
  }

  private addSample(us: number, nowMs: number): void {
    if (nowMs - this.slotStarted >= HISTORY_SLOT_MS || this.history.length === 0) {
      this.history.push(us);
      if (this.history.length > HISTORY_SLOTS) this.history.shift();
      this.slotStarted = nowMs;
    } else if (us < this.history[this.history.length - 1]!) {
      this.history[this.history.length - 1] = us;
    }
  }
}
