/**
 * Who gets our upload slots, for a seed and for a download that uploads as it goes: one
 * mechanism for both.
 *
 * - A slot is given the moment it is free: a peer that becomes interested while one is free is
 *   unchoked at once (a download shorter than a choke round still uploads), and a slot freed
 *   mid-round goes to the next peer at once. The next peer is the one we have sent least, the
 *   newest connection first among equals, so newcomers are served before old takers.
 * - Every round (10 s) the regular slots go to the best peers (choker.ts: what they give us,
 *   or while seeding what they take) and one optimistic slot rotates, new peers weighted 3×.
 * - A slot holder that takes nothing for a second (data waits for it and none leaves) no longer
 *   counts against the slots: the next peer is unchoked beside it (up to twice the slots in
 *   all). After `stallMs` it loses its slot and gets none again until its socket drains; after
 *   `dropStalledMs` it loses the connection. Forty peers that queue requests and never read
 *   delay an honest newcomer by about a second, not for ever.
 * - When the connection limit is full, `dropForNewcomer()` drops a connection to admit a
 *   newcomer: one that stopped reading, or an idle one that wants nothing.
 */
import { closeReason } from '../wire/close-reason.js';
import type { PeerConnection } from '../wire/peer-connection.js';
import { Choker } from './choker.js';
import type { Uploader } from './uploader.js';

export interface SlotHolder {
  readonly id: string;
  readonly uploader: Uploader;
  /** bytes/s it sends us (tit-for-tat while downloading) */
  downloadRate(now: number): number;
  /** it matters to us beyond what it takes (it serves us): never dropped for a newcomer */
  useful(): boolean;
}

export interface UploadSlotsOptions {
  /** regular slots (default 4); one more is optimistic */
  slots?: number;
  /** ms between choking rounds (default 10 s) */
  roundMs?: number;
  /** a holder with data waiting and none leaving for this long loses its slot (default 2 s) */
  stallMs?: number;
  /** … and its connection after this long (default 60 s) */
  dropStalledMs?: number;
  /** a connection younger than this is never the victim (default 3 s: time to say what it wants) */
  minAgeMs?: number;
  /** rank by what peers take (seeding) rather than by what they give */
  seeding: () => boolean;
  random?: () => number;
}

const NEW_PEER_MS = 60_000;
/** a holder that took nothing for this long no longer counts as using its slot */
const IDLE_SLOT_MS = 1000;

export class UploadSlots {
  private readonly holders = new Map<string, SlotHolder>();
  private readonly choker: Choker;
  private readonly o: Required<Omit<UploadSlotsOptions, 'random'>>;
  private lastRound = Date.now();

  constructor(options: UploadSlotsOptions) {
    this.o = { slots: 4, roundMs: 10_000, stallMs: 2000, dropStalledMs: 60_000, minAgeMs: 3000, ...options };
    this.choker = new Choker({ slots: this.o.slots, random: options.random });
  }

  get size(): number {
    return this.holders.size;
  }

  add(h: SlotHolder): void {
    this.holders.set(h.id, h);
    // a peer that says it is interested gets a free slot now, not at the next round
    h.uploader.conn.on('message', (m) => {
      if (m.type === 'interested') this.fill(Date.now());
    });
  }

  /** The peer is gone: its slot, if it had one, is free for the next. */
  remove(h: SlotHolder): void {
    if (this.holders.get(h.id) !== h) return;
    this.holders.delete(h.id);
    if (!h.uploader.conn.amChoking) this.fill(Date.now());
  }

  /** Once a second: take slots from holders that do not read, run the round when due, fill. */
  tick(now = Date.now()): void {
    for (const h of this.holders.values()) {
      const c = h.uploader.conn;
      const stalled = h.uploader.stalledFor(now);
      if (stalled > this.o.dropStalledMs) c.close(closeReason('dropped', `took nothing of what we sent for ${Math.round(stalled / 1000)} s`));
      else if (!c.amChoking && stalled > this.o.stallMs) h.uploader.choke();
    }
    if (now - this.lastRound >= this.o.roundMs) this.round(now);
    this.fill(now);
  }

  /** Drops a connection so that a newcomer fits; false when every one is worth keeping. */
  dropForNewcomer(now = Date.now()): boolean {
    const v = this.victim(now);
    v?.close(closeReason('dropped', 'dropped to make room for a new peer'));
    return v !== null;
  }

  private victim(now: number): PeerConnection | null {
    let best: { conn: PeerConnection; score: number } | null = null;
    for (const h of this.holders.values()) {
      const c = h.uploader.conn;
      if (now - c.connectedAt < this.o.minAgeMs || h.useful()) continue;
      // one that stopped reading first, then one that wants nothing and said nothing longest
      const stalled = h.uploader.stalledFor(now);
      const score = stalled > this.o.stallMs ? 1e12 + stalled : !c.peerInterested ? now - c.lastReceived : -1;
      if (score >= 0 && (best === null || score > best.score)) best = { conn: c, score };
    }
    return best?.conn ?? null;
  }

  /** Peers that may hold a slot: interested, and not still choking on what we sent before. */
  private eligible(h: SlotHolder): boolean {
    const c = h.uploader.conn;
    return c.peerInterested && c.remote !== null && !c.closed && h.uploader.drained;
  }

  /** Free slots go at once: to the eligible peer sent least, the newest first among equals. */
  private fill(now: number): void {
    let unchoked = 0;
    let used = 0;
    for (const h of this.holders.values()) {
      if (h.uploader.conn.amChoking) continue;
      unchoked++;
      if (h.uploader.stalledFor(now) <= IDLE_SLOT_MS) used++;
    }
    let free = Math.min(this.o.slots + 1 - used, 2 * (this.o.slots + 1) - unchoked);
    if (free <= 0) return;
    const waiting = [...this.holders.values()].filter((h) => h.uploader.conn.amChoking && this.eligible(h));
    waiting.sort((a, b) => a.uploader.delivered - b.uploader.delivered || b.uploader.conn.connectedAt - a.uploader.conn.connectedAt);
    for (const h of waiting) {
      if (free-- <= 0) break;
      h.uploader.unchoke();
    }
  }

  /** The choking round (BEP 3): the best peers keep their slots, one optimistic slot rotates. */
  private round(now: number): void {
    this.lastRound = now;
    const list = [...this.holders.values()].filter((h) => h.uploader.conn.remote !== null);
    const unchoke = this.choker.decide(
      list.filter((h) => this.eligible(h)).map((h) => ({
        id: h.id,
        interested: true,
        downloadRate: h.downloadRate(now),
        uploadRate: h.uploader.rate.rate(now),
        isNew: now - h.uploader.conn.connectedAt < NEW_PEER_MS,
      })),
      this.o.seeding(),
    );
    for (const h of list) (unchoke.has(h.id) ? h.uploader.unchoke() : h.uploader.choke());
  }
}
