/**
 * Many uTP connections over one datagram transport (the process's shared UDP socket, or a
 * test relay). It routes each datagram by the connection id (our receive id) and the sender's
 * address, answers a SYN with a new connection ('connection'), answers a packet for no
 * connection with a RESET, flushes every connection that has something to send once per turn
 * of the event loop (so the acks of a burst of datagrams go as one, and small writes coalesce),
 * and runs one timer for all connections' timeouts.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { type ConnectionHost, UtpConnection } from './connection.js';
import { decodePacket, emptyHeader, HEADER_SIZE, ST_RESET, ST_SYN, TYPE_NAMES, writeHeader } from './packet.js';
import { UtpStream } from './stream.js';

/**
 * How the endpoint sends: the process's UDP sockets (utp/on-udp.ts), or a test's relay. The
 * bytes stay untouched until this tick's nextTick queue has run (dgram.send resolves even an
 * IP literal on a nextTick before it sends); later, a buffer may be reused, so an
 * implementation that holds datagrams longer (a relay, a queue) copies them.
 */
export interface Datagrams {
  send(buf: Uint8Array, port: number, address: string): void;
}

/** Time in milliseconds and a periodic callback: tests pass a fake one and call what every() got. */
export interface Clock {
  now(): number;
  every(ms: number, fn: () => void): { cancel(): void };
}

export const realClock: Clock = {
  now: () => performance.now(),
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};

/** the one timer's period: a tenth of the shortest timeout (500 ms), so a timeout is late by ≤ 20% */
export const TICK_MS = 50;
/** connections at once, both ways together: ids are 16 bits, and each costs two rings */
const MAX_CONNECTIONS = 4096;

export interface UtpEndpointOptions {
  clock?: Clock;
  /** uniform in [0, 1): connection ids and first sequence numbers (tests seed it) */
  random?: () => number;
  /** every connection's first sequence number (tests of the wrap-around) */
  initialSeq?: number;
}

export interface UtpStats {
  packetsSent: number;
  packetsReceived: number;
  retransmitted: number;
  /** retransmission timeouts */
  timeouts: number;
  /** packets found lost before a timeout (RACK: a packet sent later was delivered; or duplicate acks) */
  fastResends: number;
  /** tail loss probes: the oldest unacked packet resent after two round trips without an ack */
  probes: number;
  /** datagrams refused as malformed or for no connection */
  refused: number;
  connections: number;
}

interface Entry {
  conn: UtpConnection;
  stream: UtpStream;
  address: string;
  port: number;
  /** the flush list holds it */
  flushQueued: boolean;
}

export class UtpEndpoint extends EventEmitter {
  /** by our receive id; a list, since two peers may pick the same id */
  private readonly byId = new Map<number, Entry[]>();
  private readonly byConn = new Map<UtpConnection, Entry>();
  private count = 0;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly initialSeq: number | undefined;
  private readonly hdr = emptyHeader();
  private readonly counters = { sent: 0, received: 0, retransmitted: 0, timeouts: 0, fastResends: 0, probes: 0 };
  private refused = 0;
  private readonly flushList: Entry[] = [];
  private flushScheduled = false;
  private readonly timer: { cancel(): void };
  private closed = false;
  private readonly resetBuf = Buffer.alloc(HEADER_SIZE);
  /** the last refusal's reason, for a debugging eye */
  lastRefusal = '';

  constructor(private readonly out: Datagrams, options: UtpEndpointOptions = {}) {
    super();
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    this.initialSeq = options.initialSeq;
    this.timer = this.clock.every(TICK_MS, () => this.tick());
  }

  /** A datagram that looks like uTP, from address:port. Never throws: a bad one is counted and dropped. */
  receive(buf: Buffer, address: string, port: number): void {
    if (this.closed) return;
    const h = this.hdr;
    const reason = decodePacket(buf, h);
    if (reason !== null) {
      this.refuse(reason);
      return;
    }
    if (h.type === ST_SYN) {
      const existing = this.find((h.connId + 1) & 0xffff, address, port);
      if (existing) existing.conn.onPacket(h);
      else this.accept(address, port);
      return;
    }
    let e = this.find(h.connId, address, port);
    // a RESET may carry either of our ids (libtorrent and libutp accept both)
    if (!e && h.type === ST_RESET) e = this.findBySendId(h.connId, address, port);
    if (e) {
      e.conn.onPacket(h);
      return;
    }
    if (h.type !== ST_RESET) {
      this.refuse(`uTP ${TYPE_NAMES[h.type]} for no connection (id ${h.connId}, seq ${h.seqNr}, ack ${h.ackNr}) from ${address}:${port}`);
      this.sendReset(h.connId, h.seqNr, address, port);
    } else this.refuse(`uTP RESET for no connection (id ${h.connId})`);
  }

  /** Dials address:port; 'connect' on the stream once the other end answers. */
  connect(address: string, port: number): UtpStream {
    const stream = new UtpStream(address, port);
    if (this.closed || this.count >= MAX_CONNECTIONS) {
      // the error is emitted on the next tick, after the caller has attached its listeners
      stream.error(this.closed ? 'ECONNABORTED' : 'EMFILE', this.closed ? 'uTP endpoint closed' : 'too many uTP connections');
      stream.conn = this.makeConn(stream, address, port, 0, 1, true);
      stream.conn.close();
      return stream;
    }
    let recvId = 0;
    for (let n = 0; n < 64; n++) {
      recvId = Math.floor(this.random() * 0x10000) & 0xffff;
      if (!this.find(recvId, address, port) && !this.findBySendId((recvId + 1) & 0xffff, address, port)) break;
    }
    const conn = this.makeConn(stream, address, port, recvId, (recvId + 1) & 0xffff, true);
    conn.sendSyn();
    return stream;
  }

  /** Every connection is reset and forgotten; the endpoint takes no more datagrams. */
  close(): void {
    if (this.closed) return;
    for (const e of [...this.byConn.values()]) e.conn.reset();
    this.closed = true;
    this.timer.cancel();
  }

  stats(): UtpStats {
    return {
      packetsSent: this.counters.sent,
      packetsReceived: this.counters.received,
      retransmitted: this.counters.retransmitted,
      timeouts: this.counters.timeouts,
      fastResends: this.counters.fastResends,
      probes: this.counters.probes,
      refused: this.refused,
      connections: this.count,
    };
  }

  private accept(address: string, port: number): void {
    const h = this.hdr;
    if (this.count >= MAX_CONNECTIONS) {
      this.refuse('uTP SYN refused: too many connections');
      this.sendReset(h.connId, h.seqNr, address, port);
      return;
    }
    const stream = new UtpStream(address, port);
    // BEP 29: we receive on the SYN's id + 1 and send with the SYN's id
    const conn = this.makeConn(stream, address, port, (h.connId + 1) & 0xffff, h.connId, false);
    this.counters.received++;
    conn.acceptSyn(h);
    this.emit('connection', stream);
  }

  private makeConn(stream: UtpStream, address: string, port: number, recvId: number, sendId: number, initiator: boolean): UtpConnection {
    const seq = this.initialSeq ?? Math.floor(this.random() * 0x10000) & 0xffff;
    const host: ConnectionHost = {
      now: () => this.clock.now(),
      send: (buf) => this.out.send(buf, port, address),
      wantFlush: (c) => this.wantFlush(c),
      counters: this.counters,
    };
    const entry: Entry = { conn: undefined as unknown as UtpConnection, stream, address, port, flushQueued: false };
    const conn = new UtpConnection(host, {
      connected: () => stream.connected(),
      data: (b) => stream.data(b),
      end: () => stream.end(),
      error: (code, msg) => stream.error(code, msg),
      drain: () => stream.drain(),
      written: (cb, err) => stream.written(cb, err),
      closed: () => {
        this.forget(entry);
        stream.closed();
      },
    }, { recvId, sendId, seq, initiator });
    entry.conn = conn;
    stream.conn = conn;
    const list = this.byId.get(recvId);
    if (list) list.push(entry);
    else this.byId.set(recvId, [entry]);
    this.byConn.set(conn, entry);
    this.count++;
    return conn;
  }

  private forget(e: Entry): void {
    if (!this.byConn.delete(e.conn)) return;
    this.count--;
    const list = this.byId.get(e.conn.recvId);
    if (!list) return;
    const i = list.indexOf(e);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.byId.delete(e.conn.recvId);
  }

  private find(recvId: number, address: string, port: number): Entry | undefined {
    const list = this.byId.get(recvId);
    if (!list) return undefined;
    for (const e of list) if (e.port === port && e.address === address) return e;
    return undefined;
  }

  private findBySendId(sendId: number, address: string, port: number): Entry | undefined {
    // the send id is our receive id ± 1
    for (const id of [(sendId + 1) & 0xffff, (sendId - 1) & 0xffff]) {
      const list = this.byId.get(id);
      if (!list) continue;
      for (const e of list) if (e.port === port && e.address === address && e.conn.sendId === sendId) return e;
    }
    return undefined;
  }

  private wantFlush(c: UtpConnection): void {
    const e = this.byConn.get(c);
    if (!e || e.flushQueued) return;
    e.flushQueued = true;
    this.flushList.push(e);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    // a flush may queue more (a callback writes): those wait for the next turn
    const n = this.flushList.length;
    for (let i = 0; i < n; i++) {
      const e = this.flushList[i]!;
      e.flushQueued = false;
      e.conn.flush();
    }
    this.flushList.splice(0, n);
    if (this.flushList.length > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  };

  private tick(): void {
    for (const e of [...this.byConn.values()]) e.conn.tick();
  }

  private refuse(reason: string): void {
    this.refused++;
    this.lastRefusal = reason;
  }

  private sendReset(connId: number, seqNr: number, address: string, port: number): void {
    writeHeader(this.resetBuf, ST_RESET, connId, Math.floor(this.clock.now() * 1000) >>> 0, 0, 0, Math.floor(this.random() * 0x10000), seqNr);
    this.counters.sent++;
    this.out.send(Buffer.from(this.resetBuf), port, address);
  }
}
