/**
 * A DHT node (BEP 5): one UDP socket speaking KRPC both ways. As a client it bootstraps,
 * looks up peers and announces; as a server it answers ping, find_node, get_peers and
 * announce_peer for as long as it runs. Nothing a remote node sends is trusted: packets are
 * parsed strictly, replies are matched to queries by transaction id and sender address,
 * queries are rate-limited per source address, and every table and store is bounded.
 */
import type { LogLevel } from '../log.js';
import { lookup as dnsLookup } from 'node:dns/promises';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import type { BDict, BValue } from '../bencode/types.js';
import { acceptableFrom, addressScope, encodeCompactPeer } from '../peers/compact.js';
import { SharedUdp } from '../net/udp-socket.js';
import { normalizeIp } from '../peers/record.js';
import { KRPC_ERROR, KrpcError, encodeError, encodeNodes, encodeQuery, encodeResponse, hashArg, parseKrpc, type KrpcMessage, type NodeInfo } from './krpc.js';
import { lookup, type LookupResult, type Responder } from './lookup.js';
import { randomId, randomIdWithPrefix } from './node-id.js';
import { PeerStore } from './peer-store.js';
import { K, QUESTIONABLE_MS, RoutingTable } from './routing-table.js';
import { loadState, saveState } from './state.js';
import { Tokens } from './tokens.js';

/** The routers most clients bootstrap from when nothing else is known. */
export const DEFAULT_BOOTSTRAP = ['router.bittorrent.com:6881', 'dht.transmissionbt.com:6881', 'router.utorrent.com:6881'];

export interface DhtNodeOptions {
  /**
   * the process's UDP socket (the session's): KRPC datagrams are handed over by its demux, and
   * the node neither binds nor closes it; `port` and `host` are then unused
   */
  udp?: SharedUdp | null;
  port?: number;
  host?: string;
  /** nodes to start from (default: the well-known routers) */
  bootstrap?: Array<{ host: string; port: number }>;
  /** where the routing table is kept between runs; null for none */
  stateFile?: string | null;
  /** BEP 43: ask, never answer (and say so with ro=1) */
  readOnly?: boolean;
  /**
   * Every query and reply both ways, and every packet dropped, for --trace: records
   * `{event: "query"|"reply"|"error"|"timeout"|"malformed"|"unexpected"|"dropped", dir: "in"|"out",
   * addr: "ip:port", q, t, …}`.
   */
  trace?: (rec: Record<string, unknown>) => void;
  /** ms before a query is retried once, then given up (default 2000) */
  queryTimeoutMs?: number;
  /** queries accepted per source address per second, with a burst of 4× (default 20) */
  queriesPerSecond?: number;
}

export interface DhtStats {
  id: string;
  port: number;
  nodes: number;
  storedPeers: number;
  storedHashes: number;
  queriesSent: number;
  queriesReceived: number;
  responses: number;
  timeouts: number;
  errorsSent: number;
  dropped: number;
}

interface Pending {
  ip: string;
  port: number;
  q: string;
  resolve: (m: { id: Buffer; r: BDict }) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class DhtError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DhtError';
  }
}

const MAX_PENDING = 2048;
const MAX_RATE_SOURCES = 10_000;
/** pings in flight to confirm nodes that queried us before they are handed out */
const MAX_CONFIRMING = 32;

/** Options of a lookup made through the node. */
export interface DhtLookupOptions {
  signal?: AbortSignal;
}

export interface DhtAnnounceOptions extends DhtLookupOptions {
  /** BEP 5 implied_port: the receiving nodes use our UDP source port instead of `port` */
  impliedPort?: boolean;
  /** peers the get_peers lookup before the announce finds */
  onPeer?: (p: { ip: string; port: number }) => void;
}

export class DhtNode extends EventEmitter<{ log: [line: string, level: LogLevel] }> {
  id: Buffer;
  table: RoutingTable;
  private readonly o: DhtNodeOptions;
  private socket: SharedUdp | null = null;
  private readonly pending = new Map<string, Pending>();
  private nextT = Math.floor(Math.random() * 65536);
  private readonly tokens = new Tokens();
  readonly store = new PeerStore();
  private readonly rate = new Map<string, { tokens: number; at: number }>();
  private readonly counters = { queriesSent: 0, queriesReceived: 0, responses: 0, timeouts: 0, errorsSent: 0, dropped: 0 };
  private bootstrapping: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private allowLocal: boolean;
  private closed = false;
  /** the bootstrap routers, resolved: lookups fall back on them while the table is thin */
  private routers: Array<{ ip: string; port: number }> = [];
  private readonly confirming = new Set<string>();
  private refreshing: Promise<void> | null = null;

  constructor(options: DhtNodeOptions = {}) {
    super();
    this.o = options;
    this.id = randomId();
    this.table = new RoutingTable(this.id);
    // nodes on loopback or private networks only make sense when that is where we start from
    // (an explicit bootstrap list of such addresses, or none at all: a standalone local node)
    this.allowLocal = options.bootstrap !== undefined && options.bootstrap.every((b) => isIP(b.host) !== 0 && addressScope(b.host) < 3);
  }

  /** Binds the socket and starts bootstrapping in the background. */
  async start(): Promise<void> {
    if (this.socket || this.closed) throw new DhtError('the node is already started');
    const state = this.o.stateFile ? await loadState(this.o.stateFile) : null;
    if (state) {
      this.id = state.id;
      this.table = new RoutingTable(this.id);
    }
    // standalone (the dht command, a library user): a SharedUdp of its own, the same code path
    const socket = this.o.udp ?? await SharedUdp.bind(this.o.port ?? 0, this.o.host, { onError: (e) => this.emit('log', `udp: ${e.message}`, 'peer') });
    this.socket = socket;
    socket.onDht((buf, ip, port) => this.onPacket(buf, ip, port));
    this.timer = setInterval(() => this.maintain(), 60_000);
    this.timer.unref();
    const seeds = state?.nodes.filter((n) => this.acceptable(n.ip, n.port)) ?? [];
    this.bootstrapping = this.bootstrap(seeds);
    // a node that answers others fills its table beyond its own neighbourhood, in the background
    if (!this.o.readOnly) void this.bootstrapping.then(() => this.refresh()).catch(() => {});
  }

  address(): { address: string; port: number } {
    if (!this.socket) throw new DhtError('the node is not started');
    return { address: this.socket.address, port: this.socket.port };
  }

  stats(): DhtStats {
    return {
      id: this.id.toString('hex'),
      port: this.socket && !this.closed ? this.socket.port : 0,
      nodes: this.table.size,
      storedPeers: this.store.peers,
      storedHashes: this.store.hashes,
      ...this.counters,
    };
  }

  /** Whether an address learnt from a remote node is worth a query or a table slot. */
  acceptable(ip: string, port: number): boolean {
    if (port <= 0 || port > 65535 || isIP(ip) !== 4) return false;
    const scope = addressScope(ip);
    return scope === 3 || (scope > 0 && this.allowLocal);
  }

  /** Resolves once the first bootstrap lookup is over (at once if none runs, or on abort). */
  async ready(signal?: AbortSignal): Promise<void> {
    if (!this.bootstrapping || !signal) return void (await this.bootstrapping);
    if (signal.aborted) return;
    let onAbort: () => void = () => {};
    const aborted = new Promise<void>((resolve) => {
      onAbort = () => resolve();
      signal.addEventListener('abort', onAbort, { once: true });
    });
    await Promise.race([this.bootstrapping, aborted]);
    signal.removeEventListener('abort', onAbort);
  }

  /**
   * Finds peers for an info hash: calls onPeer for each new one as it arrives; resolves when
   * the lookup converges (or on abort) with the closest nodes that answered and their tokens.
   */
  async getPeers(infoHash: Buffer, onPeer: (p: { ip: string; port: number }) => void, opts: DhtLookupOptions = {}): Promise<LookupResult> {
    await this.ready(opts.signal);
    return lookup(this, infoHash, 'get_peers', { seeds: this.seeds(infoHash), onPeer, signal: opts.signal });
  }

  /** get_peers, then announce_peer to the closest nodes that gave a token. Resolves with how many took it. */
  async announce(infoHash: Buffer, port: number, opts: DhtAnnounceOptions = {}): Promise<number> {
    const res = await this.getPeers(infoHash, opts.onPeer ?? (() => {}), opts);
    return this.announceTo(res.closest, infoHash, port, opts);
  }

  /** announce_peer to nodes a get_peers lookup returned (those with a token). Resolves with how many took it. */
  async announceTo(nodes: readonly Responder[], infoHash: Buffer, port: number, opts: { impliedPort?: boolean } = {}): Promise<number> {
    const results = await Promise.allSettled(
      nodes.filter((n) => n.token).map((n) =>
        this.query(n, 'announce_peer', { info_hash: infoHash, port, token: n.token!, ...(opts.impliedPort ? { implied_port: 1 } : {}) }),
      ),
    );
    return results.filter((r) => r.status === 'fulfilled').length;
  }

  /** find_node for an id; the closest nodes that answered. */
  async findNode(target: Buffer, opts: DhtLookupOptions = {}): Promise<LookupResult> {
    await this.ready(opts.signal);
    return lookup(this, target, 'find_node', { seeds: this.seeds(target), signal: opts.signal });
  }

  /** Pings an address; resolves with the node's id. */
  async ping(ip: string, port: number): Promise<Buffer> {
    return (await this.query({ ip, port }, 'ping', {})).id;
  }

  /** A peer told us its DHT port (BEP 5 `port` message): ping it, and keep it if it answers. */
  addNode(ip: string, port: number): void {
    const addr = normalizeIp(ip);
    if (addr === null || !this.acceptable(addr, port)) return;
    this.ping(addr, port).catch(() => {});
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new DhtError('the node closed'));
    }
    this.pending.clear();
    if (this.o.stateFile) await saveState(this.o.stateFile, this.id, this.table.all()).catch((e: Error) => this.emit('log', `state: ${e.message}`, 'notice'));
    this.socket?.onDht(null);
    if (this.socket && this.socket !== this.o.udp) await this.socket.close();
  }

  /** Sends a query; retried once after the timeout, then the node counts as failed. */
  query(to: { ip: string; port: number }, q: string, args: Record<string, BValue>): Promise<{ id: Buffer; r: BDict }> {
    const socket = this.socket;
    if (!socket || this.closed) return Promise.reject(new DhtError('the node is not running'));
    if (this.pending.size >= MAX_PENDING) return Promise.reject(new DhtError('too many queries in flight'));
    let tn = this.nextT;
    do tn = (tn + 1) & 0xffff;
    while (this.pending.has(tn.toString(16)));
    this.nextT = tn;
    const t = Buffer.alloc(2);
    t.writeUInt16BE(tn);
    const key = t.toString('hex');
    const packet = encodeQuery(t, q, { id: this.id, ...args }, this.o.readOnly);
    const timeout = this.o.queryTimeoutMs ?? 2000;
    const addr = `${to.ip}:${to.port}`;
    return new Promise((resolve, reject) => {
      let tries = 0;
      const send = (): void => {
        tries++;
        this.counters.queriesSent++;
        this.o.trace?.({ event: 'query', dir: 'out', addr, q, t: key, ...traceArgs(args), ...(tries > 1 ? { retry: true } : {}) });
        socket.send(packet, to.port, to.ip);
        const timer = setTimeout(() => {
          if (tries < 2 && !this.closed) return send();
          this.pending.delete(key);
          this.counters.timeouts++;
          this.table.failed(to);
          this.o.trace?.({ event: 'timeout', dir: 'out', addr, q, t: key });
          reject(new DhtError(`${addr}: no answer to ${q}`));
        }, timeout);
        timer.unref();
        this.pending.set(key, { ip: to.ip, port: to.port, q, resolve, reject, timer });
      };
      send();
    });
  }

  /** Where a lookup starts: the closest nodes we know, and the routers while we know few. */
  private seeds(target: Buffer): Array<{ ip: string; port: number; id?: Buffer }> {
    const near: Array<{ ip: string; port: number; id?: Buffer }> = this.table.closest(target, K * 2);
    return near.length >= K ? near : [...near, ...this.routers];
  }

  private async bootstrap(known: NodeInfo[]): Promise<void> {
    const routers: Array<{ ip: string; port: number }> = [];
    const list = this.o.bootstrap ?? DEFAULT_BOOTSTRAP.map((s) => ({ host: s.slice(0, s.lastIndexOf(':')), port: Number(s.slice(s.lastIndexOf(':') + 1)) }));
    await Promise.all(list.map(async (b) => {
      try {
        const ip = isIP(b.host) === 4 ? b.host : (await dnsLookup(b.host, { family: 4 })).address;
        routers.push({ ip, port: b.port });
      } catch (e) {
        // a router that cannot be reached is routine offline, or when others answer
        this.emit('log', `bootstrap ${b.host}: ${(e as Error).message}`, 'detail');
      }
    }));
    this.routers = routers;
    if (routers.length === 0 && known.length === 0) return;
    await lookup(this, this.id, 'find_node', { seeds: [...known, ...routers], maxQueries: 200 });
  }

  /**
   * Fills buckets: a find_node for a random id in each (by default the buckets with room, after
   * the bootstrap: without them a node knows little beyond its own neighbourhood, and lookups
   * from it can stall short of the closest nodes). At most 16 buckets, 3 lookups at a time, 16
   * queries each. A call while one runs joins it.
   */
  refresh(buckets?: readonly number[]): Promise<void> {
    if (this.refreshing) return this.refreshing;
    const list = (buckets ?? this.table.thin()).slice(0, 16);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < list.length && !this.closed) {
        const target = randomIdWithPrefix(this.id, list[next++]!);
        await lookup(this, target, 'find_node', { seeds: this.seeds(target), maxQueries: 16 }).catch(() => {});
      }
    };
    this.refreshing = Promise.all([worker(), worker(), worker()]).then(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** Once a minute: refresh buckets not changed for 15 minutes, expire stored peers, save state. */
  private maintain(): void {
    this.store.expire();
    void this.refresh(this.table.stale(QUESTIONABLE_MS).slice(0, 4));
    if (this.o.stateFile) void saveState(this.o.stateFile, this.id, this.table.all()).catch(() => {});
  }

  /**
   * The per-source rate limit: a token bucket per IP address (per IP and port on loopback,
   * where every local process shares one address). False when the source is over its rate.
   */
  private allow(ip: string, port: number): boolean {
    const qps = this.o.queriesPerSecond ?? 20;
    const now = Date.now();
    const key = addressScope(ip) === 1 ? `${ip}|${port}` : ip;
    let b = this.rate.get(key);
    if (!b) {
      if (this.rate.size >= MAX_RATE_SOURCES) this.rate.delete(this.rate.keys().next().value!);
      b = { tokens: qps * 4, at: now };
      this.rate.set(key, b);
    }
    b.tokens = Math.min(qps * 4, b.tokens + ((now - b.at) / 1000) * qps);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  private send(buf: Buffer, ip: string, port: number): void {
    this.socket?.send(buf, port, ip);
  }

  private onPacket(buf: Buffer, rawIp: string, port: number): void {
    const ip = normalizeIp(rawIp) ?? rawIp;
    const addr = `${ip}:${port}`;
    let m: KrpcMessage;
    try {
      m = parseKrpc(buf);
    } catch (e) {
      const err = e as KrpcError;
      this.counters.dropped++;
      this.o.trace?.({ event: 'malformed', dir: 'in', addr, error: err.message });
      // a query we could not read gets a protocol error, if it is from someone we would answer
      if (err.t && err.isQuery && !this.o.readOnly && this.allow(ip, port)) this.sendError(err.t, KRPC_ERROR.protocol, err.message, ip, port, undefined);
      return;
    }
    if (m.y === 'q') return this.onQuery(m, ip, port);
    const key = m.t.toString('hex');
    const p = this.pending.get(key);
    // replies to nothing we asked, or from another address than the one asked, are dropped
    if (!p || p.ip !== ip || p.port !== port) {
      this.counters.dropped++;
      this.o.trace?.({ event: 'unexpected', dir: 'in', addr, t: key, y: m.y });
      return;
    }
    this.pending.delete(key);
    clearTimeout(p.timer);
    if (m.y === 'e') {
      this.o.trace?.({ event: 'error', dir: 'in', addr, q: p.q, t: key, code: m.code, message: m.message });
      p.reject(new DhtError(`${addr}: error ${m.code}: ${m.message}`));
      return;
    }
    this.counters.responses++;
    this.o.trace?.({ event: 'reply', dir: 'in', addr, q: p.q, t: key, id: m.id.toString('hex'), ...traceReply(m.r) });
    if (this.acceptable(ip, port)) this.pingIfNeeded(this.table.heard({ id: m.id, ip, port }, true));
    p.resolve({ id: m.id, r: m.r });
  }

  private pingIfNeeded(n: { ip: string; port: number } | null): void {
    if (n) this.ping(n.ip, n.port).catch(() => {});
  }

  /**
   * A node that queried us goes into the table unconfirmed; one ping makes it a node we hand
   * out to others (or takes it out again when it does not answer). Bounded in flight.
   */
  private confirm(ip: string, port: number): void {
    const key = `${ip}|${port}`;
    const n = this.table.get({ ip, port });
    if (!n || n.answered || this.confirming.has(key) || this.confirming.size >= MAX_CONFIRMING) return;
    this.confirming.add(key);
    this.ping(ip, port)
      .catch(() => {})
      .finally(() => this.confirming.delete(key));
  }

  private sendError(t: Buffer, code: number, message: string, ip: string, port: number, q: string | undefined): void {
    this.counters.errorsSent++;
    this.o.trace?.({ event: 'error', dir: 'out', addr: `${ip}:${port}`, q, t: t.toString('hex'), code, message });
    this.send(encodeError(t, code, message), ip, port);
  }

  private onQuery(m: Extract<KrpcMessage, { y: 'q' }>, ip: string, port: number): void {
    this.counters.queriesReceived++;
    const addr = `${ip}:${port}`;
    const t = m.t.toString('hex');
    if (this.o.readOnly) return; // BEP 43: a read-only node does not answer
    if (!this.allow(ip, port)) {
      this.counters.dropped++;
      this.o.trace?.({ event: 'dropped', dir: 'in', addr, q: m.q, t, reason: 'rate' });
      return;
    }
    this.o.trace?.({ event: 'query', dir: 'in', addr, q: m.q, t, id: m.id.toString('hex'), ...(m.ro ? { ro: true } : {}) });
    let r: Record<string, BValue> | null = null;
    try {
      r = this.answer(m, ip, port);
      if (r === null) this.sendError(m.t, KRPC_ERROR.method, 'method unknown', ip, port, m.q);
    } catch (e) {
      if (!(e instanceof KrpcError)) throw e;
      this.sendError(m.t, KRPC_ERROR.protocol, e.message, ip, port, m.q);
    }
    if (r !== null) {
      this.o.trace?.({ event: 'reply', dir: 'out', addr, q: m.q, t, ...traceReply(new Map(Object.entries(r))) });
      this.send(encodeResponse(m.t, { id: this.id, ...r }, encodeCompactPeer({ ip, port })), ip, port);
    }
    // after the answer: BEP 43 nodes that say they are read-only never go into the table; others
    // go in unconfirmed, and get one ping to confirm them
    if (!m.ro && this.acceptable(ip, port)) {
      this.pingIfNeeded(this.table.heard({ id: m.id, ip, port }, false));
      this.confirm(ip, port);
    }
  }

  private answer(m: Extract<KrpcMessage, { y: 'q' }>, ip: string, port: number): Record<string, BValue> | null {
    // only nodes that have answered us are handed out
    const nodesNear = (target: Buffer): Buffer => encodeNodes(this.table.closest(target, K, true).filter((n) => isIP(n.ip) === 4));
    switch (m.q) {
      case 'ping':
        return {};
      case 'find_node':
        return { nodes: nodesNear(hashArg(m.a, 'target', m.t)) };
      case 'get_peers': {
        const h = hashArg(m.a, 'info_hash', m.t);
        const peers = this.store.get(h, 50).filter((p) => acceptableFrom(p.ip, p.port, ip) || this.allowLocal);
        const token = this.tokens.issue(ip);
        return peers.length > 0 ? { token, values: peers.map((p) => encodeCompactPeer(p)) } : { token, nodes: nodesNear(h) };
      }
      case 'announce_peer': {
        const h = hashArg(m.a, 'info_hash', m.t);
        const token = m.a.get('token');
        if (!Buffer.isBuffer(token) || !this.tokens.valid(ip, token)) throw new KrpcError('bad token', m.t, true);
        const implied = m.a.get('implied_port') === 1;
        const p = m.a.get('port');
        const peerPort = implied ? port : p;
        if (typeof peerPort !== 'number' || !Number.isInteger(peerPort) || peerPort < 1 || peerPort > 65535) throw new KrpcError('"port" must be 1..65535', m.t, true);
        this.store.add(h, ip, peerPort);
        return {};
      }
      default:
        return null;
    }
  }
}

function hex(v: BValue | undefined): string | undefined {
  return Buffer.isBuffer(v) ? v.toString('hex') : undefined;
}

function traceArgs(a: Record<string, BValue>): Record<string, unknown> {
  return { target: hex(a['target']), infoHash: hex(a['info_hash']), port: a['port'] };
}

function traceReply(r: BDict): Record<string, unknown> {
  const nodes = r.get('nodes');
  const values = r.get('values');
  return {
    nodes: Buffer.isBuffer(nodes) ? Math.floor(nodes.length / 26) : undefined,
    values: Array.isArray(values) ? values.length : undefined,
    token: Buffer.isBuffer(r.get('token')) ? true : undefined,
  };
}

