/**
 * The Kademlia routing table (BEP 5): k = 8 nodes per bucket. Buckets split around our own id,
 * which comes to one bucket per shared-prefix length with our id (the far half of each split is
 * never split again); a full bucket keeps a few replacements for nodes that go bad. Bounded:
 * at most 161 buckets × (8 + 8) entries.
 */
import { compareDistance, sharedPrefix, ID_BYTES } from './node-id.js';
import type { NodeInfo } from './krpc.js';

export const K = 8;
/** a node not heard from for this long is questionable (BEP 5) */
export const QUESTIONABLE_MS = 15 * 60_000;
/** failed queries in a row that make a node bad */
const BAD_AFTER = 2;

export interface TableNode extends NodeInfo {
  lastSeen: number;
  /** it has answered a query of ours (a node that only queries us may be behind a NAT) */
  answered: boolean;
  failures: number;
}

interface Bucket {
  nodes: TableNode[];
  replacements: TableNode[];
  lastChanged: number;
}

const addrKey = (n: { ip: string; port: number }): string => `${n.ip}|${n.port}`;

export class RoutingTable {
  readonly self: Buffer;
  private readonly buckets: Bucket[] = [];
  private readonly byAddr = new Map<string, TableNode>();

  constructor(self: Buffer) {
    this.self = self;
    for (let i = 0; i <= ID_BYTES * 8; i++) this.buckets.push({ nodes: [], replacements: [], lastChanged: 0 });
  }

  get size(): number {
    let n = 0;
    for (const b of this.buckets) n += b.nodes.length;
    return n;
  }

  private bucketOf(id: Buffer): Bucket {
    return this.buckets[sharedPrefix(this.self, id)]!;
  }

  /**
   * A node was heard from: `answered` when it responded to our query. Returns a node the caller
   * should ping because the bucket is full and it is the least recently seen questionable one.
   */
  heard(info: NodeInfo, answered: boolean, now = Date.now()): TableNode | null {
    if (info.id.equals(this.self)) return null;
    const known = this.byAddr.get(addrKey(info));
    if (known) {
      if (!known.id.equals(info.id)) {
        // the same address with a new id: the old entry is stale
        this.remove(known);
      } else {
        known.lastSeen = now;
        known.failures = 0;
        known.answered ||= answered;
        this.bucketOf(known.id).lastChanged = now;
        return null;
      }
    }
    const b = this.bucketOf(info.id);
    const node: TableNode = { id: Buffer.from(info.id), ip: info.ip, port: info.port, lastSeen: now, answered, failures: 0 };
    if (b.nodes.some((n) => n.id.equals(info.id))) return null; // same id elsewhere: keep the first
    if (b.nodes.length < K) {
      b.nodes.push(node);
      b.lastChanged = now;
      this.byAddr.set(addrKey(node), node);
      return null;
    }
    const bad = b.nodes.findIndex((n) => n.failures >= BAD_AFTER);
    if (bad >= 0) {
      this.byAddr.delete(addrKey(b.nodes[bad]!));
      b.nodes[bad] = node;
      b.lastChanged = now;
      this.byAddr.set(addrKey(node), node);
      return null;
    }
    // full of nodes that may be good: remember this one for when one of them fails
    if (answered && !b.replacements.some((n) => n.id.equals(node.id))) {
      b.replacements.push(node);
      if (b.replacements.length > K) b.replacements.shift();
    }
    let oldest: TableNode | null = null;
    for (const n of b.nodes) if (now - n.lastSeen > QUESTIONABLE_MS && (oldest === null || n.lastSeen < oldest.lastSeen)) oldest = n;
    return oldest;
  }

  /** The entry at this address, if any. */
  get(addr: { ip: string; port: number }): TableNode | undefined {
    return this.byAddr.get(addrKey(addr));
  }

  /**
   * A query to the node at this address timed out. A node that never answered us (it only sent
   * queries) goes at once; one that did goes after BAD_AFTER failures in a row, for a
   * replacement when there is one.
   */
  failed(addr: { ip: string; port: number }): void {
    const n = this.byAddr.get(addrKey(addr));
    if (!n) return;
    n.failures++;
    if (n.answered && n.failures < BAD_AFTER) return;
    const b = this.bucketOf(n.id);
    const rep = b.replacements.pop();
    if (rep || !n.answered) this.remove(n);
    if (rep) {
      b.nodes.push(rep);
      b.lastChanged = Date.now();
      this.byAddr.set(addrKey(rep), rep);
    }
  }

  private remove(n: TableNode): void {
    const b = this.bucketOf(n.id);
    b.nodes = b.nodes.filter((x) => x !== n);
    this.byAddr.delete(addrKey(n));
  }

  /**
   * The `count` known nodes closest to `target`, bad ones left out; with `confirmed`, only nodes
   * that have answered a query of ours (what we hand out to others: a node that only sent us
   * queries may be behind a NAT, or its address spoofed).
   */
  closest(target: Buffer, count = K, confirmed = false): TableNode[] {
    const all: TableNode[] = [];
    for (const b of this.buckets) for (const n of b.nodes) if (n.failures < BAD_AFTER && (n.answered || !confirmed)) all.push(n);
    all.sort((a, b) => compareDistance(target, a.id, b.id));
    return all.slice(0, count);
  }

  all(): TableNode[] {
    return this.buckets.flatMap((b) => b.nodes);
  }

  /**
   * Shared-prefix lengths of the buckets with room for more nodes, short of the deepest one in
   * use (our own neighbourhood, which a lookup of our own id fills): what a refresh after the
   * bootstrap fills, so that lookups for any target find a way in.
   */
  thin(): number[] {
    const deepest = this.buckets.reduce((m, b, i) => (b.nodes.length > 0 ? i : m), -1);
    const out: number[] = [];
    for (let i = 0; i < deepest; i++) if (this.buckets[i]!.nodes.length < K) out.push(i);
    return out;
  }

  /** Shared-prefix lengths of the buckets not changed for `ms` (to refresh), among those in use. */
  stale(ms: number, now = Date.now()): number[] {
    const deepest = this.buckets.reduce((m, b, i) => (b.nodes.length > 0 ? i : m), -1);
    const out: number[] = [];
    for (let i = 0; i <= deepest; i++) if (now - this.buckets[i]!.lastChanged > ms) out.push(i);
    return out;
  }
}
