/**
 * Who we upload to (BEP 3's choking algorithm): every 10 s the interested peers that gave us
 * the most (or, while seeding, that took the most) get the regular upload slots; one more slot,
 * the optimistic unchoke, rotates every 30 s to a random interested peer so newcomers get a
 * chance to show what they give back.
 */

export interface ChokeCandidate {
  id: string;
  interested: boolean;
  /** bytes/s it sends us (leeching) */
  downloadRate: number;
  /** bytes/s we send it (seeding) */
  uploadRate: number;
  /** connected recently: gets 3× the chance of the optimistic slot (as mainline does) */
  isNew?: boolean;
}

export interface ChokerOptions {
  /** regular unchoke slots (default 4) */
  slots?: number;
  /** rounds between optimistic rotations (default 3: 30 s at the 10 s round) */
  optimisticEvery?: number;
  random?: () => number;
}

export class Choker {
  private readonly slots: number;
  private readonly optimisticEvery: number;
  private readonly random: () => number;
  private round = 0;
  private optimistic: string | null = null;

  constructor(options: ChokerOptions = {}) {
    this.slots = options.slots ?? 4;
    this.optimisticEvery = options.optimisticEvery ?? 3;
    this.random = options.random ?? Math.random;
  }

  /** The peer holding the optimistic slot now. */
  get optimisticPeer(): string | null {
    return this.optimistic;
  }

  /**
   * One round: the set of peer ids to unchoke. `seeding` ranks by what we upload to them
   * (we need nothing back), otherwise by what they give us.
   */
  decide(peers: readonly ChokeCandidate[], seeding: boolean): Set<string> {
    const interested = peers.filter((p) => p.interested);
    const rate = (p: ChokeCandidate): number => (seeding ? p.uploadRate : p.downloadRate);
    const ranked = [...interested].sort((a, b) => rate(b) - rate(a));
    const unchoked = new Set(ranked.slice(0, this.slots).map((p) => p.id));
    const stillThere = this.optimistic !== null && interested.some((p) => p.id === this.optimistic);
    if (this.round % this.optimisticEvery === 0 || !stillThere) {
      const pool = interested.filter((p) => !unchoked.has(p.id));
      const weights = pool.map((p) => (p.isNew ? 3 : 1));
      const total = weights.reduce((a, b) => a + b, 0);
      let r = this.random() * total;
      this.optimistic = null;
      for (let i = 0; i < pool.length; i++) {
        r -= weights[i]!;
        if (r < 0) {
          this.optimistic = pool[i]!.id;
          break;
        }
      }
    }
    this.round++;
    if (this.optimistic !== null) unchoked.add(this.optimistic);
    return unchoked;
  }
}
