/**
 * Peers announced to us (announce_peer), served back by get_peers. Bounded per info hash, in
 * info hashes and in peers overall; entries expire after 30 minutes (BEP 5 practice) unless
 * announced again.
 */
export const PEER_TTL_MS = 30 * 60_000;

export interface StoredPeer {
  ip: string;
  port: number;
  expires: number;
}

export interface PeerStoreLimits {
  /** peers kept per info hash (default 200) */
  perHash?: number;
  /** info hashes kept (default 5000) */
  hashes?: number;
  /** peers kept in all (default 50 000) */
  total?: number;
}

export class PeerStore {
  /** info hash (hex) → "ip|port" → peer; both maps in announce order, oldest first */
  private readonly map = new Map<string, Map<string, StoredPeer>>();
  private readonly perHash: number;
  private readonly maxHashes: number;
  private readonly maxTotal: number;
  private count = 0;
  private lastSweep = -Infinity;

  constructor(limits: PeerStoreLimits = {}) {
    this.perHash = limits.perHash ?? 200;
    this.maxHashes = limits.hashes ?? 5000;
    this.maxTotal = limits.total ?? 50_000;
  }

  get hashes(): number {
    return this.map.size;
  }

  get peers(): number {
    return this.count;
  }

  add(infoHash: Buffer, ip: string, port: number, now = Date.now()): void {
    const key = infoHash.toString('hex');
    let m = this.map.get(key);
    if (!m) {
      if (this.map.size >= this.maxHashes) this.sweep(now);
      // still full: the info hash first announced longest ago goes
      if (this.map.size >= this.maxHashes) this.dropHash(this.map.keys().next().value!);
      m = new Map();
      this.map.set(key, m);
    }
    const pk = `${ip}|${port}`;
    if (m.delete(pk)) this.count--; // re-announced: to the back, as the newest
    m.set(pk, { ip, port, expires: now + PEER_TTL_MS });
    this.count++;
    if (m.size > this.perHash) {
      m.delete(m.keys().next().value!);
      this.count--;
    }
    if (this.count > this.maxTotal) {
      this.sweep(now);
      // still over: the oldest peer of the oldest other info hash goes (or of this one, if alone)
      while (this.count > this.maxTotal) {
        let victim = key;
        for (const k of this.map.keys()) {
          if (k !== key) {
            victim = k;
            break;
          }
        }
        const vm = this.map.get(victim)!;
        vm.delete(vm.keys().next().value!);
        this.count--;
        if (vm.size === 0) this.map.delete(victim);
      }
    }
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
      for (const [pk, p] of m) {
        if (p.expires > now) continue;
        m.delete(pk);
        this.count--;
      }
      if (m.size === 0) this.map.delete(k);
    }
  }

  /** expire(), at most once a second: when full, every add would otherwise walk the store */
  private sweep(now: number): void {
    if (now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    this.expire(now);
  }

  private dropHash(key: string): void {
    const m = this.map.get(key);
    if (!m) return;
    this.count -= m.size;
    this.map.delete(key);
  }
}
