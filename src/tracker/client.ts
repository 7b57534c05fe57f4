/**
 * BEP 12 tiers: trackers are shuffled within each tier once, tried tier by tier in order, and
 * the one that answers moves to the front of its tier. With `all`, every tracker is asked.
 */
import { httpAnnounce, httpScrape } from './http.js';
import { TrackerError, type AnnounceParams, type AnnounceReply, type ScrapeReply } from './reply.js';
import { udpAnnounce, udpScrape } from './udp.js';
import type { SharedUdp } from '../net/udp-socket.js';

export interface TrackerOptions {
  /** per tracker, total (default 30 s) */
  timeoutMs?: number;
  retransmitBaseMs?: number;
  signal?: AbortSignal;
  random?: () => number;
  /** the process's UDP socket, for UDP trackers (default: a socket per request) */
  udp?: SharedUdp | null;
}

export interface TrackerFailure {
  tracker: string;
  message: string;
}

function shuffle<T>(a: T[], random: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export class TrackerClient {
  readonly tiers: string[][];
  private readonly o: TrackerOptions;
  private readonly trackerIds = new Map<string, string>();

  constructor(tiers: string[][], options: TrackerOptions = {}) {
    const random = options.random ?? Math.random;
    this.tiers = tiers.map((t) => shuffle([...new Set(t)], random)).filter((t) => t.length > 0);
    this.o = options;
  }

  get urls(): string[] {
    return this.tiers.flat();
  }

  /** One tracker, by URL scheme. */
  async announceOne(url: string, p: AnnounceParams): Promise<AnnounceReply> {
    const timeoutMs = this.o.timeoutMs ?? 30_000;
    let r: AnnounceReply;
    if (/^udp:/i.test(url)) r = await udpAnnounce(url, p, { timeoutMs, retransmitBaseMs: this.o.retransmitBaseMs, signal: this.o.signal, udp: this.o.udp });
    else if (/^https?:/i.test(url)) r = await httpAnnounce(url, p, { timeoutMs, signal: this.o.signal, trackerId: this.trackerIds.get(url) });
    else throw new TrackerError('unsupported tracker scheme (http, https and udp are)');
    if (r.trackerId !== undefined) this.trackerIds.set(url, r.trackerId);
    return r;
  }

  /**
   * Announces per BEP 12 (first tracker that answers), or to every tracker with `all`. Failures
   * are collected, never thrown: the caller decides what no answer at all means.
   */
  async announce(p: AnnounceParams, all: boolean, onFailure?: (f: TrackerFailure) => void): Promise<AnnounceReply[]> {
    const replies: AnnounceReply[] = [];
    const fail = (tracker: string, e: unknown): void => {
      if ((e as Error).name === 'AbortError') throw e;
      onFailure?.({ tracker, message: e instanceof TrackerError ? e.message : String((e as Error).message ?? e) });
    };
    if (all) {
      const results = await Promise.allSettled(this.urls.map((u) => this.announceOne(u, p)));
      results.forEach((res, i) => (res.status === 'fulfilled' ? replies.push(res.value) : fail(this.urls[i]!, res.reason)));
      return replies;
    }
    for (const tier of this.tiers) {
      for (let i = 0; i < tier.length; i++) {
        const url = tier[i]!;
        try {
          replies.push(await this.announceOne(url, p));
          tier.splice(i, 1);
          tier.unshift(url); // BEP 12: the tracker that answered goes first in its tier
          return replies;
        } catch (e) {
          fail(url, e);
        }
      }
    }
    return replies;
  }

  async scrape(infoHash: Buffer, onFailure?: (f: TrackerFailure) => void): Promise<ScrapeReply[]> {
    const timeoutMs = this.o.timeoutMs ?? 30_000;
    const results = await Promise.allSettled(
      this.urls.map((u) => (/^udp:/i.test(u) ? udpScrape(u, infoHash, { timeoutMs, retransmitBaseMs: this.o.retransmitBaseMs, signal: this.o.signal, udp: this.o.udp }) : httpScrape(u, infoHash, { timeoutMs, signal: this.o.signal }))),
    );
    const out: ScrapeReply[] = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') out.push(r.value);
      else onFailure?.({ tracker: this.urls[i]!, message: (r.reason as Error).message });
    });
    return out;
  }
}
