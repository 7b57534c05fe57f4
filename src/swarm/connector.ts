/**
 * Which peers to dial, and when: a queue of candidates, a limit on connections and on
 * half-open attempts, and what each address taught us: how often it failed in a row (the
 * back-off before the next dial doubles each time, and after a bounded count it is given up),
 * and whether it wants the MSE encrypted handshake.
 *
 * A peer that served us and went away is dialled again soon (it may have restarted); one that
 * fails, or accepts and closes at once, waits 2, 4, 8… s and is given up after `maxAttempts`
 * failures in a row (twice as many for an address that once completed a handshake: a peer
 * that restarts is worth more patience than a wrong address). A peer that hangs up on our plaintext handshake is dialled again at once
 * with MSE (clients set to require encryption do that), and once a handshake succeeds the
 * method that worked is kept for that address.
 *
 * Transports: uTP first, as libtorrent does (torrent.cpp connect_to_peer, torrent_peer.cpp,
 * peer_connection.cpp connect_failed): a new address is assumed to speak uTP. uTP first because
 * its LEDBAT congestion control is the reason to have it: it yields to the user's other
 * traffic, which helps only if the bulk of the bytes go over it, and some peers accept nothing
 * else; TCP first would reach every peer that speaks both over TCP. Unlike libtorrent, which
 * waits out a silent uTP dial (utp_connect_timeout, 3 s) before it tries TCP, a uTP dial not
 * answered within `utpHeadStartMs` (0.5 s: a SYN's answer takes one round trip) is joined by a
 * TCP dial, and the first to connect is used, the other dropped (RFC 8305's "happy eyeballs"):
 * a peer that speaks TCP only costs half a second, not three, and is dialled over TCP alone
 * from then on, as is one that refuses uTP (a RESET to our SYN). With only one transport
 * enabled, only it is dialled.
 */
import { connect, isIP } from 'node:net';
import { peerKey, type PeerRecord } from '../peers/record.js';
import type { WireSocket } from '../wire/memory-pipe.js';
import type { ReadFeed } from '../wire/peer-connection.js';
import type { ConnectionBudget } from '../session/budget.js';

const READ_BUFFER = 64 * 1024;

/** An outgoing connection being made: 'connect' once established, or 'error' (ECONNREFUSED, ETIMEDOUT). */
export interface DialedSocket extends WireSocket {
  once(event: 'connect', listener: () => void): unknown;
  once(event: 'error', listener: (err: NodeJS.ErrnoException) => void): unknown;
}

/** How this process reaches peers: TCP, uTP (a dial over the session's uTP endpoint), or both. */
export interface Transports {
  tcp: boolean;
  utp: ((ip: string, port: number) => DialedSocket) | null;
  /** the address families uTP reaches: the session's UDP sockets (default IPv4 alone) */
  utpFamilies?: ReadonlyArray<4 | 6>;
}

export const TCP_ONLY: Transports = { tcp: true, utp: null };

export interface ConnectorOptions {
  maxPeers: number;
  halfOpen: number;
  connectTimeoutMs: number;
  /** failures in a row before an address is given up (default 4: 14 s of dials); doubled once it handshook */
  maxAttempts?: number;
  /** the wait after the first failure; doubles with each further one (default 2 s) */
  retryBaseMs?: number;
  /** the longest wait between dials (default 60 s) */
  retryMaxMs?: number;
  /** a cap shared with other torrents: every dial takes a slot of it until its connection ends */
  budget?: ConnectionBudget | null;
  /** which transports to dial with (default TCP only) */
  transports?: Transports;
  /** a uTP dial answered by nothing for this long is joined by a TCP dial (default 500 ms) */
  utpHeadStartMs?: number;
  /** a uTP dial with TCP beside it is given up after this long (default 3 s, libtorrent's utp_connect_timeout) */
  utpConnectTimeoutMs?: number;
}

/** How a connection ended, as far as dialling it again is concerned. */
export interface ConnectionEnd {
  /** false: never dial it again (banned, our own address, nothing left to do) */
  retry: boolean;
  /** the BitTorrent handshake completed */
  handshook: boolean;
  /** it served us (sent data): the failure count starts over */
  useful: boolean;
  /** the peer closed or reset the connection (not a timeout, not us) */
  hungUp: boolean;
}

/**
 * How to reach a peer of this process (a web seed) instead of by TCP: a fresh connected end
 * for each dial. It is dialled, retried, backed off and banned like any address.
 */
export type LocalDial = () => WireSocket;

/** What we know of an address we may dial. */
interface Known {
  rec: PeerRecord;
  /** an in-process peer: dialled through this, not TCP */
  local?: LocalDial | undefined;
  /** failures in a row */
  failures: number;
  /** dial with the MSE handshake */
  encrypt: boolean;
  /** a handshake succeeded with the current method: keep it */
  methodProven: boolean;
  /** dial it over uTP (libtorrent's supports_utp: assumed until a uTP dial fails) */
  utp: boolean;
  /** queued for dialling, not before this time; null while connected or being dialled */
  notBefore: number | null;
}

export class Connector {
  private readonly o: Required<ConnectorOptions>;
  /** every address queued or in use (ours or incoming), with its history */
  private readonly known = new Map<string, Known>();
  /** addresses connected or being dialled */
  private readonly active = new Set<string>();
  private readonly banned = new Set<string>();
  /** addresses we dialled that hold a slot of the shared budget */
  private readonly budgeted = new Set<string>();
  private readonly pumpLater = (): void => this.pump();
  private queued = 0;
  private halfOpenCount = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** `reads` is undefined for an in-process peer: its bytes come as 'data' */
  private readonly onSocket: (socket: WireSocket, rec: PeerRecord, reads: ReadFeed | undefined, encrypt: boolean) => void;
  private readonly onFail: (rec: PeerRecord, reason: string) => void;

  constructor(options: ConnectorOptions, onSocket: (socket: WireSocket, rec: PeerRecord, reads: ReadFeed | undefined, encrypt: boolean) => void, onFail: (rec: PeerRecord, reason: string) => void) {
    // an option given as undefined (a swarm passing on what it was not given) takes the default too
    this.o = { maxAttempts: 4, retryBaseMs: 2000, retryMaxMs: 60_000, budget: null, ...options, transports: options.transports ?? TCP_ONLY, utpConnectTimeoutMs: options.utpConnectTimeoutMs ?? 3000, utpHeadStartMs: options.utpHeadStartMs ?? 500 };
    if (!this.o.transports.tcp && this.o.transports.utp === null) throw new Error('Connector: no transport to dial with');
    this.onSocket = onSocket;
    this.onFail = onFail;
  }

  /** Candidates waiting to be dialled (now or after a back-off), not yet given up. */
  get pending(): number {
    return this.queued;
  }

  get connecting(): number {
    return this.halfOpenCount;
  }

  add(rec: PeerRecord, local?: LocalDial): boolean {
    const key = peerKey(rec);
    // addresses only (peers/resolve.ts): nothing reaching the engine may make it query DNS
    if (this.stopped || isIP(rec.ip) === 0 || this.banned.has(key) || this.known.has(key)) return false;
    this.known.set(key, { rec, local, failures: 0, encrypt: false, methodProven: false, utp: this.o.transports.utp !== null, notBefore: null });
    this.enqueue(key, 0);
    this.pump();
    return true;
  }

  /** A connection (ours or incoming) now uses this peer slot. */
  claim(key: string): boolean {
    if (this.active.has(key) || this.banned.has(key)) return false;
    const k = this.known.get(key);
    if (k?.notBefore !== null && k?.notBefore !== undefined) {
      k.notBefore = null;
      this.queued--;
    }
    this.active.add(key);
    return true;
  }

  /** The connection to `key` ended: queue it again as `end` says, or forget it. */
  release(key: string, rec: PeerRecord, end: ConnectionEnd): void {
    this.active.delete(key);
    if (this.budgeted.delete(key)) this.o.budget?.give();
    const k = this.known.get(key) ?? { rec, failures: 0, encrypt: false, methodProven: false, utp: this.o.transports.utp !== null && rec.transport !== 'tcp', notBefore: null };
    if (!end.retry || this.stopped || this.banned.has(key)) {
      this.known.delete(key);
    } else {
      this.known.set(key, k);
      if (end.handshook) k.methodProven = true;
      if (!end.handshook && end.hungUp && !k.methodProven) {
        // hung up on the handshake: most likely it insists on the other method
        k.encrypt = !k.encrypt;
        if (k.encrypt && k.failures === 0) {
          this.enqueue(key, 0);
          this.pump();
          return;
        }
      }
      if (end.useful) k.failures = 0;
      this.retryLater(key, k, end.useful);
    }
    this.pump();
  }

  /** The connection to `key` goes to another owner: forgotten here; whether it held a slot of the budget. */
  handOff(key: string): boolean {
    this.active.delete(key);
    this.known.delete(key);
    return this.budgeted.delete(key);
  }

  /** A connection handed over from another owner, dialled by it with `encrypt`: ours now. */
  adopt(key: string, rec: PeerRecord, budgeted: boolean, encrypt: boolean): boolean {
    if (this.stopped || this.active.has(key) || this.banned.has(key)) return false;
    const k = this.known.get(key);
    if (k?.notBefore !== null && k?.notBefore !== undefined) this.queued--;
    this.known.set(key, { rec, failures: 0, encrypt, methodProven: true, utp: this.o.transports.utp !== null && rec.transport !== 'tcp', notBefore: null });
    this.active.add(key);
    if (budgeted) this.budgeted.add(key);
    return true;
  }

  ban(key: string): void {
    this.banned.add(key);
    const k = this.known.get(key);
    if (k?.notBefore !== null && k?.notBefore !== undefined) this.queued--;
    this.known.delete(key);
  }

  isBanned(key: string): boolean {
    return this.banned.has(key);
  }

  stop(): void {
    this.stopped = true;
    this.o.budget?.forget(this.pumpLater);
    this.known.clear();
    this.queued = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** After a failure (or a useful peer's departure: one base wait) the next dial, or give up. */
  private retryLater(key: string, k: Known, useful: boolean): void {
    if (!useful && ++k.failures >= this.o.maxAttempts * (k.methodProven ? 2 : 1)) {
      this.known.delete(key);
      return;
    }
    const wait = Math.min(this.o.retryMaxMs, this.o.retryBaseMs * 2 ** Math.max(0, k.failures - 1));
    this.enqueue(key, Date.now() + wait);
  }

  private enqueue(key: string, notBefore: number): void {
    const k = this.known.get(key)!;
    if (k.notBefore === null) this.queued++;
    k.notBefore = notBefore;
  }

  /** Dials as many candidates as the limits allow; schedules itself for back-off waits. */
  pump(): void {
    if (this.stopped) return;
    const now = Date.now();
    let soonest = Infinity;
    for (const [key, k] of this.known) {
      if (this.active.size >= this.o.maxPeers || this.halfOpenCount >= this.o.halfOpen) break;
      if (k.notBefore === null || this.active.has(key)) continue;
      if (k.notBefore > now) {
        soonest = Math.min(soonest, k.notBefore);
        continue;
      }
      if (this.o.budget && !this.o.budget.take()) {
        this.o.budget.wait(this.pumpLater);
        break;
      }
      k.notBefore = null;
      this.queued--;
      if (this.o.budget) this.budgeted.add(key);
      this.dial(key, k);
    }
    if (soonest < Infinity && this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, soonest - now);
      this.timer.unref();
    }
  }

  private dial(key: string, k: Known): void {
    this.active.add(key);
    this.halfOpenCount++;
    if (k.local !== undefined) {
      const socket = k.local();
      // connected at once, but reported later, as a TCP connect is: never inside add() or pump()
      process.nextTick(() => {
        this.halfOpenCount--;
        this.onSocket(socket, k.rec, undefined, k.encrypt);
        this.pump();
      });
      return;
    }
    // an address of a family no UDP socket here speaks is TCP's
    const family = isIP(k.rec.ip) as 4 | 6;
    const utp = (this.o.transports.utpFamilies ?? [4]).includes(family) ? this.o.transports.utp : null;
    if (utp !== null && k.utp && this.o.transports.tcp) this.race(key, k, utp);
    else if (utp !== null && !this.o.transports.tcp) this.dialOne(key, k, utp(k.rec.ip, k.rec.port), 'utp', undefined);
    else if (this.o.transports.tcp) this.dialOne(key, k, ...this.tcpSocket(k));
    else {
      // said later, as a refused dial is: never inside add() or pump()
      process.nextTick(() => {
        this.halfOpenCount--;
        this.onFail(k.rec, `no uTP to an IPv${family} address (no such UDP socket here), and TCP is off`);
        this.release(key, k.rec, { retry: false, handshook: false, useful: false, hungUp: false });
      });
    }
  }

  /** One transport only: its failure is the address's. */
  private dialOne(key: string, k: Known, socket: DialedSocket, transport: 'tcp' | 'utp', reads: ReadFeed | undefined): void {
    this.attempt(socket, transport, this.o.connectTimeoutMs, (failure) => {
      if (failure === null) this.connected(k, socket, transport, reads);
      else this.failed(key, k, failure);
    });
  }

  /**
   * uTP with TCP joining after the head start (see the top of the file): the first to connect
   * is used. The address fails only when both have failed, with TCP's reason.
   */
  private race(key: string, k: Known, utp: NonNullable<Transports['utp']>): void {
    let settled = false;
    let utpFailed = false;
    let tcp: { cancel: () => void; failure: string | null } | null = null;
    const win = (socket: DialedSocket, transport: 'tcp' | 'utp', reads: ReadFeed | undefined): void => {
      settled = true;
      clearTimeout(head);
      if (transport === 'tcp') {
        cancelUtp();
        k.utp = false; // silent to uTP for the head start and TCP's connect: TCP from now on
      } else tcp?.cancel();
      this.connected(k, socket, transport, reads);
    };
    const startTcp = (): void => {
      if (settled || tcp !== null || this.stopped) return;
      const [socket, , reads] = this.tcpSocket(k);
      tcp = { cancel: () => {}, failure: null };
      const t = tcp;
      t.cancel = this.attempt(socket, 'tcp', this.o.connectTimeoutMs, (failure) => {
        if (settled) return;
        if (failure === null) return win(socket, 'tcp', reads);
        t.failure = failure;
        if (utpFailed) {
          settled = true;
          this.failed(key, k, failure);
        }
      });
    };
    const u = utp(k.rec.ip, k.rec.port);
    const cancelUtp = this.attempt(u, 'utp', Math.min(this.o.utpConnectTimeoutMs, this.o.connectTimeoutMs), (failure) => {
      if (settled) return;
      if (failure === null) return win(u, 'utp', undefined);
      // refused or silent: it does not speak uTP (or not to us), TCP from now on, no failure
      utpFailed = true;
      k.utp = false;
      clearTimeout(head);
      if (tcp === null) startTcp();
      else if (tcp.failure !== null) {
        settled = true;
        this.failed(key, k, tcp.failure);
      }
    });
    const head = setTimeout(startTcp, this.o.utpHeadStartMs);
  }

  /** A TCP dial, with one read buffer reused for every read of the connection. */
  private tcpSocket(k: Known): [DialedSocket, 'tcp', ReadFeed] {
    // no 64 KiB allocation (and later garbage) per read at hundreds of MB/s
    const reads: ReadFeed = { onChunk: null };
    const socket = connect({
      host: k.rec.ip,
      port: k.rec.port,
      onread: {
        buffer: Buffer.allocUnsafe(READ_BUFFER),
        callback: (n: number, buf: Uint8Array): boolean => {
          reads.onChunk?.(Buffer.from(buf.buffer, buf.byteOffset, n));
          return true; // false would pause the socket
        },
      },
    });
    return [socket, 'tcp', reads];
  }

  /**
   * Calls back once: null when `socket` connected, else why not (it is then destroyed). The
   * returned function abandons the attempt (destroying the socket) without a call back.
   */
  private attempt(socket: DialedSocket, transport: 'tcp' | 'utp', ms: number, done: (failure: string | null) => void): () => void {
    let settled = false;
    const end = (failure: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (failure !== null) socket.destroy();
      done(failure);
    };
    const timer = setTimeout(() => end(`no connection within ${ms} ms${transport === 'utp' ? ' (uTP)' : ''}`), ms);
    socket.once('error', (e: NodeJS.ErrnoException) => end(e.code ?? e.message));
    // the connection's own 'error' listener takes over once connected; ours is spent
    socket.once('connect', () => end(null));
    return () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.on('error', () => {}); // a late error of a dropped dial is nobody's
      socket.destroy();
    };
  }

  private connected(k: Known, socket: DialedSocket, transport: 'tcp' | 'utp', reads: ReadFeed | undefined): void {
    this.halfOpenCount--;
    this.onSocket(socket, { ...k.rec, transport }, reads, k.encrypt);
    this.pump();
  }

  private failed(key: string, k: Known, reason: string): void {
    this.halfOpenCount--;
    this.onFail(k.rec, reason);
    this.release(key, k.rec, { retry: true, handshook: false, useful: false, hungUp: false });
  }
}
