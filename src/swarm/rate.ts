/** A transfer rate over a sliding window of one-second buckets. */
export class RateMeter {
  private readonly buckets: Float64Array;
  private readonly window: number;
  private lastSecond: number;
  private readonly created: number;

  constructor(windowSeconds = 5, now = Date.now()) {
    this.window = windowSeconds;
    this.buckets = new Float64Array(windowSeconds);
    this.lastSecond = Math.floor(now / 1000);
    this.created = now;
  }

  private roll(now: number): void {
    const s = Math.floor(now / 1000);
    const gap = Math.min(s - this.lastSecond, this.window);
    for (let k = 1; k <= gap; k++) this.buckets[(this.lastSecond + k) % this.window] = 0;
    if (s > this.lastSecond) this.lastSecond = s;
  }

  add(bytes: number, now = Date.now()): void {
    this.roll(now);
    this.buckets[this.lastSecond % this.window] += bytes;
  }

  /** bytes per second */
  rate(now = Date.now()): number {
    this.roll(now);
    let sum = 0;
    for (const b of this.buckets) sum += b;
    // a young meter averages over its age, not the whole window
    const span = Math.min(this.window, Math.max(1, (now - this.created) / 1000));
    return sum / span;
  }
}
