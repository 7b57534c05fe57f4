/**
 * Serving pieces to one peer: requests are checked, queued (capped), read back through the
 * shared read cache and sent, a few blocks ahead while the socket keeps up. Choked peers get
 * BEP 6 rejects (or silence without BEP 6); pieces we do not have are always rejected. BEP 52
 * hash requests are answered by the torrent's hash server (hash-server.ts), choked or not, a
 * few at a time, or rejected.
 *
 * What counts as uploaded is what the kernel took, not what we queued: a peer that stops
 * reading shows a rate of zero and a growing stall (stalledFor), which is how the choker
 * (upload-slots.ts) takes its slot away.
 */
import type { Lease, ReadCache } from '../storage/read-cache.js';
import { closeReason } from '../wire/close-reason.js';
import type { PeerConnection } from '../wire/peer-connection.js';
import type { HashRange, WireMessage } from '../wire/protocol.js';
import type { Bitfield } from './bitfield.js';
import type { HashServer } from './hash-server.js';
import { RateMeter } from './rate.js';

/** Requests a peer may have queued with us; more is a violation (we advertise reqq = this). */
export const MAX_QUEUED_REQUESTS = 500;
/**
 * Bytes kept on their way to one peer (in our socket buffer or the kernel's): half a second of
 * its rate, clamped. Enough to keep a fast peer's kernel buffers fed; small enough that a slow
 * peer's batch leaves within a second, so a peer that takes nothing for a few seconds really
 * does not read (rather than draining one big batch slowly), and few bytes wait for it.
 */
const IN_FLIGHT_MIN = 128 * 1024;
const IN_FLIGHT_MAX = 2 * 1024 * 1024;
/** Blocks being read for one peer at once: most are slices of a cached stripe, so cheap. */
const READ_AHEAD = 16;
/**
 * BEP 52 hash requests of one peer being answered or on their way out (a `hashes` message waits
 * for upload tokens like a block): more are rejected, so a flood queues nothing.
 */
const MAX_HASH_ANSWERS = 8;

export interface Fault {
  /** flip a byte in every block (test-only fault switch) */
  corrupt?: boolean;
  /** stop answering after this many blocks */
  stallAfter?: number;
  /** close the connection after this many blocks */
  disconnectAfter?: number;
}

interface Req {
  index: number;
  begin: number;
  length: number;
}

export class Uploader {
  readonly conn: PeerConnection;
  /** bytes/s the kernel took for this peer */
  readonly rate = new RateMeter(10);
  /** bytes the kernel took for this peer, in all */
  delivered = 0;
  private readonly store: ReadCache;
  private readonly have: Bitfield;
  private readonly queue: Req[] = [];
  private reading = 0;
  /** bytes handed to the socket that the kernel has not taken yet */
  private inSocket = 0;
  /** when bytes last left for the peer, or when it last had nothing pending */
  private lastProgress = Date.now();
  private sentBlocks = 0;
  private readonly fault: Fault;
  private readonly hashes: HashServer | null;
  private hashAnswers = 0;

  constructor(conn: PeerConnection, store: ReadCache, have: Bitfield, fault: Fault = {}, hashes: HashServer | null = null) {
    this.conn = conn;
    this.store = store;
    this.have = have;
    this.fault = fault;
    this.hashes = hashes;
    conn.on('message', (m) => this.onMessage(m));
    conn.on('drain', () => this.pump());
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Something requested is not yet with the peer's kernel. */
  private get pending(): boolean {
    return this.queue.length > 0 || this.reading > 0 || this.inSocket > 0;
  }

  /** How long it has had data waiting while nothing left for it (0 when nothing waits). */
  stalledFor(now = Date.now()): number {
    return this.pending ? now - this.lastProgress : 0;
  }

  /** Everything sent has left (a peer that stopped reading is not given a slot again until then). */
  get drained(): boolean {
    return this.inSocket === 0;
  }

  choke(): void {
    if (this.conn.amChoking) return;
    this.conn.send({ type: 'choke' });
    // BEP 6: with the fast extension every pending request is rejected explicitly
    for (const r of this.queue.splice(0)) if (this.conn.fast) this.conn.send({ type: 'reject', ...r });
  }

  unchoke(): void {
    if (!this.conn.amChoking) return;
    this.conn.send({ type: 'unchoke' });
  }

  private onMessage(m: WireMessage): void {
    if (m.type === 'request') {
      if (this.conn.amChoking || !this.have.has(m.index)) {
        if (this.conn.fast) this.conn.send({ type: 'reject', index: m.index, begin: m.begin, length: m.length });
        return;
      }
      if (this.queue.length >= MAX_QUEUED_REQUESTS) {
        this.conn.close(closeReason('violation', `more than ${MAX_QUEUED_REQUESTS} requests queued`));
        return;
      }
      // a stall is counted from the moment something waits
      if (!this.pending) this.lastProgress = Date.now();
      this.queue.push({ index: m.index, begin: m.begin, length: m.length });
      this.pump();
    } else if (m.type === 'cancel') {
      const i = this.queue.findIndex((r) => r.index === m.index && r.begin === m.begin && r.length === m.length);
      if (i >= 0) {
        this.queue.splice(i, 1);
        // BEP 6: a cancelled request is answered too, by a piece or a reject
        if (this.conn.fast) this.conn.send({ type: 'reject', index: m.index, begin: m.begin, length: m.length });
      }
    } else if (m.type === 'hash-request') {
      // the message's root is a view of the read buffer: keep a copy
      const r: HashRange = { root: Buffer.from(m.root), base: m.base, index: m.index, length: m.length, proofLayers: m.proofLayers };
      if (this.hashes === null || this.hashAnswers >= MAX_HASH_ANSWERS) {
        this.conn.send({ type: 'hash-reject', ...r });
        return;
      }
      this.hashAnswers++;
      this.hashes.answer(r).then(
        (a) => {
          if (this.conn.closed) return;
          if (typeof a === 'string') {
            this.hashAnswers--;
            this.conn.send({ type: 'hash-reject', ...r });
          } else {
            this.conn.send({ type: 'hashes', ...r, hashes: a }, () => this.hashAnswers--);
          }
        },
        () => {
          this.hashAnswers--;
          if (!this.conn.closed) this.conn.send({ type: 'hash-reject', ...r });
        },
      );
    }
  }

  private pump(): void {
    const limit = Math.min(IN_FLIGHT_MAX, Math.max(IN_FLIGHT_MIN, this.rate.rate() / 2));
    while (this.queue.length > 0 && this.reading < READ_AHEAD && this.inSocket < limit && !this.conn.closed) {
      if (this.fault.stallAfter !== undefined && this.sentBlocks >= this.fault.stallAfter) return;
      const r = this.queue.shift()!;
      const cached = this.store.peek(r.index, r.begin, r.length);
      if (cached !== undefined) {
        if (!this.sendBlock(r, cached)) return;
        continue;
      }
      this.reading++;
      this.store.read(r.index, r.begin, r.length).then(
        (block) => {
          this.reading--;
          if (this.conn.closed) return;
          if (block === null) {
            this.conn.close(closeReason('local', `piece ${r.index} is not readable on disk`));
            return;
          }
          if (this.sendBlock(r, block)) this.pump();
        },
        (e: Error) => {
          this.reading--;
          this.conn.close(closeReason('local', `reading piece ${r.index}: ${e.message}`));
        },
      );
    }
  }

  /** Sends one block; false when the connection was closed (fault switch). */
  private sendBlock(r: Req, lease: Lease): boolean {
    let block = lease.block;
    if (this.fault.corrupt) {
      block = Buffer.from(block); // the cached stripe stays intact
      block[0]! ^= 0xff;
    }
    const n = block.length;
    this.inSocket += n;
    // the stripe may be reused once the kernel has the bytes, and only then are they uploaded
    this.conn.send({ type: 'piece', index: r.index, begin: r.begin, block }, () => {
      this.store.release(lease);
      this.inSocket -= n;
      this.delivered += n;
      this.rate.add(n);
      this.lastProgress = Date.now();
      if (this.queue.length > 0) this.pump();
    });
    this.sentBlocks++;
    if (this.fault.disconnectAfter !== undefined && this.sentBlocks >= this.fault.disconnectAfter) {
      this.conn.close(closeReason('local', 'fault switch: disconnect'));
      return false;
    }
    return true;
  }
}
