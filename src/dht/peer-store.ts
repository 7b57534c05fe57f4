/**
 * Peers announced to us (announce_peer), served back by get_peers. Bounded per info hash and
 * in total; entries expire after 30 minutes (BEP 5 practice) unless announced again.
 */
export const PEER_TTL_MS = 30 * 60_000;

export interface StoredPeer {
  ip: string;
  port: number;
  expires: number;
}

export interface PeerStoreLimits {
  perHash?: number;
  hashes?: number;
}

export class PeerStore {
  private readonly map = new Map<string, Map<string, StoredPeer>>();
  private readonly perHash: number;
  private readonly maxHashes: number;

  constructor(limits: PeerStoreLimits = {}) {
    this.perHash = limits.perHash ?? 200;
    this.maxHashes = limits.hashes ?? 5000;
  }

  get hashes(): number {
    return this.map.size;
  }

  get peers(): number {
    let n = 0;
    for (const m of this.map.values()) n += m.size;
    return n;
  }

  add(infoHash: Buffer, ip: string, port: number, now = Date.now()): void {
    const key = infoHash.toString('hex');
    let m = this.map.get(key);
    if (!m) {
      if (this.map.size >= this.maxHashes) this.expire(now);
      if (this.map.size >= this.maxHashes) {
        // still full: the info hash announced longest ago goes
        const first = this.map.keys().next().value;
        if (first !== undefined) this.map.delete(first);
      }
      m = new Map();
      this.map.set(key, m);
    }
    const pk = `${ip}|${port}`;
    m.delete(pk); // re-announced: to the back, as the newest
    m.set(pk, { ip, port, expires: now + PEER_TTL_MS });
    if (m.size > this.perHash) m.delete(m.keys().next().value!);
  }

  /** Up to `max` live peers for the hash, in random order. */
  get(infoHash: Buffer, max = 50, now = Date.now()): StoredPeer[] {
    const m = this.map.get(infoHash.toString('hex'));
    if (!m) return [];
    const live = [...m.values()].filter((p) => p.expires > now);
    for (let i = live.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [live[i], live[j]] = [live[j]!, live[i]!];
    }
    return live.slice(0, max);
  }

  expire(now = Date.now()): void {
    for (const [k, m] of this.map) {
      for (const [pk, p] of m) if (p.expires <= now) m.delete(pk);
      if (m.size === 0) this.map.delete(k);
    }
  }
}
