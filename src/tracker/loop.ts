/**
 * Announcing for as long as a client runs (seed, download): started, then again at the
 * trackers' interval, then stopped on the way out. Peers found go to `onPeers`.
 */
import { randomBytes } from 'node:crypto';
import type { PeerRecord } from '../peers/record.js';
import type { SharedUdp } from '../net/udp-socket.js';
import { TrackerClient, type TrackerFailure } from './client.js';
import { nextAnnounceIn, type AnnounceParams, type AnnounceReply } from './reply.js';

export interface AnnounceLoopOptions {
  tiers: string[][];
  infoHash: Buffer;
  peerId: Buffer;
  port: number;
  /** current figures: called before every announce */
  stats: () => { uploaded: number; downloaded: number; left: number };
  onPeers?: (peers: PeerRecord[]) => void;
  /**
   * a tracker failed to answer; `repeated` when it had failed before (a dead tracker fails at
   * every interval: worth saying once, loudly)
   */
  onFailure?: (f: TrackerFailure, repeated: boolean) => void;
  /** a tracker's warning, or what of its reply was skipped (once per tracker and text) */
  onWarning?: (tracker: string, message: string) => void;
  timeoutMs?: number;
  /** the process's UDP socket: UDP announces leave from it (see udp.ts) */
  udp?: SharedUdp | null;
}

export class AnnounceLoop {
  private readonly o: AnnounceLoopOptions;
  private readonly client: TrackerClient;
  private readonly controller = new AbortController();
  private readonly key = randomBytes(4).readUInt32BE(0);
  private timer: NodeJS.Timeout | null = null;
  private answered = false;
  private stopped = false;
  private port: number;
  private readonly warned = new Set<string>();
  /** trackers that failed at least once */
  private readonly failed = new Set<string>();
  /** the announce on its way, if any */
  private inFlight: Promise<void> = Promise.resolve();

  constructor(options: AnnounceLoopOptions) {
    this.o = options;
    this.port = options.port;
    this.client = new TrackerClient(options.tiers, { timeoutMs: options.timeoutMs ?? 30_000, signal: this.controller.signal, udp: options.udp });
  }

  /** The port to announce from now on (once the listening socket is bound). */
  setPort(port: number): void {
    this.port = port;
  }

  start(): void {
    void this.round('started');
  }

  /** Tells the trackers we completed (download finished). */
  completed(): void {
    void this.round('completed', false);
  }

  private warnOnce(tracker: string, message: string): void {
    const k = `${tracker} ${message}`;
    if (this.warned.has(k) || this.warned.size > 100) return;
    this.warned.add(k);
    this.o.onWarning?.(tracker, message);
  }

  private params(event: AnnounceParams['event']): AnnounceParams {
    return { infoHash: this.o.infoHash, peerId: this.o.peerId, port: this.port, ...this.o.stats(), event, numwant: 50, key: this.key };
  }

  private round(event: AnnounceParams['event'], reschedule = true): Promise<void> {
    const r = this.announceOnce(event, reschedule);
    this.inFlight = r;
    return r;
  }

  private async announceOnce(event: AnnounceParams['event'], reschedule: boolean): Promise<void> {
    if (this.stopped) return;
    let replies: AnnounceReply[] = [];
    try {
      replies = await this.client.announce(this.params(event), false, (f) => {
        const repeated = this.failed.has(f.tracker);
        if (this.failed.size < 1000) this.failed.add(f.tracker);
        this.o.onFailure?.(f, repeated);
      });
      if (replies.length > 0) this.answered = true;
      for (const r of replies) {
        for (const w of [r.warning, r.skipped]) if (w !== undefined) this.warnOnce(r.tracker, w);
        this.o.onPeers?.(r.peers);
      }
    } catch {
      return; // aborted: stopping
    }
    if (reschedule && !this.stopped) {
      // the trackers' interval, clamped (reply.ts), or a minute when none answered; min
      // interval does not hold the schedule back: it only spaces out announces made early, and
      // the only early ones here are events (completed), which are sent when they happen (BEP 3)
      this.timer = setTimeout(() => void this.round('none'), nextAnnounceIn(replies) * 1000);
      this.timer.unref();
    }
  }

  /**
   * Stops announcing and says `stopped` to the trackers (bounded by a short deadline). An
   * announce on its way (a job failing right after it started) is given a moment to land
   * first: a tracker that heard `started` must hear `stopped` too.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([this.inFlight, new Promise<void>((r) => (grace = setTimeout(r, 3000)))]);
    clearTimeout(grace);
    this.controller.abort();
    if (!this.answered) return;
    const bye = new TrackerClient(this.client.tiers, { timeoutMs: 3000, udp: this.o.udp });
    await bye.announce(this.params('stopped'), false).catch(() => []);
  }
}
