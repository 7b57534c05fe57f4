/**
 * Which peers to dial, and when: a queue of candidates, a limit on connections and on
 * half-open attempts, and exponential back-off for peers that failed (bounded tries).
 */
import { connect, type Socket } from 'node:net';
import { peerKey, type PeerRecord } from '../peers/record.js';
import type { ReadFeed } from '../wire/peer-connection.js';

const READ_BUFFER = 64 * 1024;

export interface ConnectorOptions {
  maxPeers: number;
  halfOpen: number;
  connectTimeoutMs: number;
  /** attempts per peer before it is given up (default 4) */
  maxAttempts?: number;
  /** first retry delay; doubles each time (default 2 s) */
  retryBaseMs?: number;
}

interface Candidate {
  rec: PeerRecord;
  attempts: number;
  /** not before this time */
  notBefore: number;
}

export class Connector {
  private readonly o: Required<ConnectorOptions>;
  private readonly candidates = new Map<string, Candidate>();
  /** peers connected or being dialled */
  private readonly active = new Set<string>();
  private readonly banned = new Set<string>();
  private halfOpenCount = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly onSocket: (socket: Socket, rec: PeerRecord, reads: ReadFeed) => void;
  private readonly onFail: (rec: PeerRecord, reason: string) => void;

  constructor(options: ConnectorOptions, onSocket: (socket: Socket, rec: PeerRecord, reads: ReadFeed) => void, onFail: (rec: PeerRecord, reason: string) => void) {
    this.o = { maxAttempts: 4, retryBaseMs: 2000, ...options };
    this.onSocket = onSocket;
    this.onFail = onFail;
  }

  /** Candidates not yet given up. */
  get pending(): number {
    return this.candidates.size;
  }

  get connecting(): number {
    return this.halfOpenCount;
  }

  add(rec: PeerRecord): boolean {
    const key = peerKey(rec);
    if (this.stopped || this.banned.has(key) || this.active.has(key) || this.candidates.has(key)) return false;
    this.candidates.set(key, { rec, attempts: 0, notBefore: 0 });
    this.pump();
    return true;
  }

  /** A connection (ours or incoming) now uses this peer slot. */
  claim(key: string): boolean {
    if (this.active.has(key) || this.banned.has(key)) return false;
    this.candidates.delete(key);
    this.active.add(key);
    return true;
  }

  /** The connection to `key` ended; `retry` puts it back in the queue with back-off. */
  release(key: string, rec: PeerRecord, retry: boolean): void {
    this.active.delete(key);
    if (retry && !this.banned.has(key)) this.requeue(key, rec);
    this.pump();
  }

  ban(key: string): void {
    this.banned.add(key);
    this.candidates.delete(key);
  }

  isBanned(key: string): boolean {
    return this.banned.has(key);
  }

  stop(): void {
    this.stopped = true;
    this.candidates.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private requeue(key: string, rec: PeerRecord, attempts?: number): void {
    const prev = this.candidates.get(key)?.attempts ?? attempts ?? 0;
    const n = prev + 1;
    if (n >= this.o.maxAttempts) {
      this.candidates.delete(key);
      return;
    }
    this.candidates.set(key, { rec, attempts: n, notBefore: Date.now() + this.o.retryBaseMs * 2 ** (n - 1) });
  }

  /** Dials as many candidates as the limits allow; schedules itself for back-off waits. */
  pump(): void {
    if (this.stopped) return;
    const now = Date.now();
    let soonest = Infinity;
    for (const [key, c] of this.candidates) {
      if (this.active.size >= this.o.maxPeers || this.halfOpenCount >= this.o.halfOpen) break;
      if (c.notBefore > now) {
        soonest = Math.min(soonest, c.notBefore);
        continue;
      }
      this.candidates.delete(key);
      this.dial(key, c);
    }
    if (soonest < Infinity && this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, soonest - now);
      this.timer.unref();
    }
  }

  private dial(key: string, c: Candidate): void {
    this.active.add(key);
    this.halfOpenCount++;
    // one read buffer per connection, reused for every read: no 64 KiB allocation (and later
    // garbage) per read at hundreds of MB/s
    const reads: ReadFeed = { onChunk: null };
    const socket = connect({
      host: c.rec.ip,
      port: c.rec.port,
      onread: {
        buffer: Buffer.allocUnsafe(READ_BUFFER),
        callback: (n: number, buf: Uint8Array): boolean => {
          reads.onChunk?.(Buffer.from(buf.buffer, buf.byteOffset, n));
          return true; // false would pause the socket
        },
      },
    });
    let settled = false;
    const timer = setTimeout(() => fail(`no connection within ${this.o.connectTimeoutMs} ms`), this.o.connectTimeoutMs);
    const fail = (reason: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.halfOpenCount--;
      socket.destroy();
      this.active.delete(key);
      const attempts = c.attempts + 1;
      if (attempts < this.o.maxAttempts && !this.stopped) {
        this.candidates.set(key, { rec: c.rec, attempts, notBefore: Date.now() + this.o.retryBaseMs * 2 ** (attempts - 1) });
      }
      this.onFail(c.rec, reason);
      this.pump();
    };
    socket.once('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
    socket.once('connect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.halfOpenCount--;
      socket.removeAllListeners('error');
      this.onSocket(socket, c.rec, reads);
      this.pump();
    });
  }
}
