/**
 * Where a DHT search converges: the iterative lookup of BEP 5 (Kademlia). Up to α = 3 queries in
 * flight, always to the closest nodes not yet asked, until the k = 8 closest nodes that answered
 * have all been asked and nothing closer is left. A query unanswered for `slowMs` gives its slot
 * to the next node (its answer is still used while the lookup runs). Bounded in queries, in
 * time (every query times out) and by an abort signal.
 */
import type { BDict } from '../bencode/types.js';
import { decodeCompactPeers } from '../peers/compact.js';
import { decodeNodes, type NodeInfo } from './krpc.js';
import { compareDistance } from './node-id.js';
import { K } from './routing-table.js';

export interface LookupHost {
  /** sends a query; resolves with the response dict, rejects on timeout or a KRPC error */
  query(to: { ip: string; port: number }, q: string, args: Record<string, Buffer | number>): Promise<{ id: Buffer; r: BDict }>;
  /** whether an address learnt from a remote node deserves a query */
  acceptable(ip: string, port: number): boolean;
}

export interface LookupOptions {
  /** nodes to start from; bootstrap routers come without an id */
  seeds: Array<{ ip: string; port: number; id?: Buffer }>;
  alpha?: number;
  k?: number;
  /** queries at most (default 300) */
  maxQueries?: number;
  signal?: AbortSignal;
  onPeer?: (peer: { ip: string; port: number }) => void;
  /** a query unanswered this long stops holding a slot (its answer is still used; default 800 ms) */
  slowMs?: number;
}

export interface Responder extends NodeInfo {
  token?: Buffer;
}

export interface LookupResult {
  /** the k closest nodes that answered, closest first (with their get_peers tokens) */
  closest: Responder[];
  queries: number;
  responses: number;
  peers: number;
  /** ms from the start to the first peer (get_peers), or null */
  firstPeerMs: number | null;
}

interface Candidate {
  ip: string;
  port: number;
  id?: Buffer;
  state: 'new' | 'pending' | 'answered' | 'failed';
  token?: Buffer;
}

export async function lookup(host: LookupHost, target: Buffer, method: 'find_node' | 'get_peers', o: LookupOptions): Promise<LookupResult> {
  const alpha = o.alpha ?? 3;
  const k = o.k ?? K;
  const maxQueries = o.maxQueries ?? 300;
  const started = Date.now();
  const cands = new Map<string, Candidate>();
  const seenPeers = new Set<string>();
  let queries = 0;
  let responses = 0;
  let firstPeerMs: number | null = null;
  const add = (c: { ip: string; port: number; id?: Buffer }): void => {
    const key = `${c.ip}|${c.port}`;
    if (!cands.has(key)) cands.set(key, { ip: c.ip, port: c.port, id: c.id, state: 'new' });
  };
  o.seeds.forEach(add);
  // nodes without an id (routers) first: they are all we may have
  const order = (a: Candidate, b: Candidate): number => (a.id && b.id ? compareDistance(target, a.id, b.id) : a.id ? 1 : b.id ? -1 : 0);

  await new Promise<void>((resolve) => {
    // queries holding one of the α slots; a slow one gives its slot up so a dead node costs
    // the lookup its slow time, not the whole retry-and-timeout of the query
    let inFlight = 0;
    let settled = false;
    const finish = (): void => {
      settled = true;
      o.signal?.removeEventListener('abort', finish);
      resolve();
    };
    o.signal?.addEventListener('abort', finish, { once: true });
    const pump = (): void => {
      if (settled) return;
      if (o.signal?.aborted) return finish();
      // worth asking: an unasked node closer than the k-th closest that answered (any, until k have)
      const best = [...cands.values()].filter((x) => x.state === 'answered').sort(order);
      const kth = best.length >= k ? best[k - 1]! : null;
      const next = [...cands.values()].filter((c) => c.state === 'new' && (kth === null || order(c, kth) < 0)).sort(order);
      for (const c of next) {
        if (inFlight >= alpha || queries >= maxQueries) break;
        c.state = 'pending';
        inFlight++;
        queries++;
        let holdsSlot = true;
        const release = (): void => {
          if (!holdsSlot) return;
          holdsSlot = false;
          inFlight--;
        };
        const slow = setTimeout(() => {
          release();
          pump();
        }, o.slowMs ?? 800);
        slow.unref();
        const args: Record<string, Buffer | number> = method === 'get_peers' ? { info_hash: target } : { target };
        host.query(c, method, args).then(
          ({ id, r }) => {
            if (settled) return; // a late answer: the lookup is over, onPeer is not called again
            responses++;
            c.state = 'answered';
            c.id = id;
            const token = r.get('token');
            if (Buffer.isBuffer(token) && token.length <= 64) c.token = token;
            const nodes = r.get('nodes');
            if (Buffer.isBuffer(nodes)) for (const n of decodeNodes(nodes) ?? []) if (host.acceptable(n.ip, n.port)) add(n);
            const values = r.get('values');
            if (method === 'get_peers' && Array.isArray(values)) {
              for (const v of values.slice(0, 200)) {
                if (!Buffer.isBuffer(v)) continue;
                const p = decodeCompactPeers(v, v.length === 18 ? 6 : 4)?.[0];
                if (!p || !host.acceptable(p.ip, p.port)) continue;
                const key = `${p.ip}|${p.port}`;
                if (seenPeers.has(key)) continue;
                seenPeers.add(key);
                firstPeerMs ??= Date.now() - started;
                o.onPeer?.({ ip: p.ip, port: p.port });
              }
            }
          },
          () => {
            c.state = 'failed';
          },
        ).finally(() => {
          clearTimeout(slow);
          release();
          pump();
        });
      }
      // converged: nothing closer left to ask (or out of queries), and no slow query still out
      // to a node that could make the k closest (with fewer than k answers, any could)
      const waiting = [...cands.values()].some((c) => c.state === 'pending' && (kth === null || (c.id !== undefined && order(c, kth) < 0)));
      if (inFlight === 0 && !waiting) finish();
    };
    pump();
  });
  const closest = [...cands.values()]
    .filter((c): c is Candidate & { id: Buffer } => c.state === 'answered' && c.id !== undefined)
    .sort(order)
    .slice(0, k)
    .map((c) => ({ id: c.id, ip: c.ip, port: c.port, ...(c.token ? { token: c.token } : {}) }));
  return { closest, queries, responses, peers: seenPeers.size, firstPeerMs };
}
