/**
 * Where requests are decided: which blocks each peer is asked for and when, under the bound on
 * pieces in flight. The picker says which blocks; this keeps each peer's queue topped up to its
 * size (request-queue.ts), batches the top-ups of one event-loop turn into one write, takes
 * requests back from peers that choke or stall, and in end-game cancels the copies nobody needs.
 */
import type { PeerConnection } from '../wire/peer-connection.js';
import type { Bitfield } from './bitfield.js';
import { BLOCK, type Block, type PiecePicker } from './picker.js';
import type { RequestQueue } from './request-queue.js';

/** What the scheduler knows of a peer (the swarm's peer record has these fields). */
export interface Requester {
  readonly conn: PeerConnection;
  bits: Bitfield;
  /** our outstanding requests to it: bkey → block */
  readonly requests: Map<number, Block>;
  /** blocks we gave up on (choke, cancel, snub) that may still arrive */
  readonly released: Set<number>;
  readonly queue: RequestQueue;
  /** the most requests it accepts (its BEP 10 `reqq`) */
  reqq: number;
  snubbed: boolean;
  /** when its last block arrived (or its first request went out) */
  lastBlock: number;
  readonly allowedFast: Set<number>;
}

/**
 * A block's key in the request maps: a number, not an "index:begin" string (one allocation per
 * block each way, at 65,536 blocks per GiB). Unique for begin < 8192 blocks (the largest piece
 * length); a small integer while index < 2^18.
 */
export const bkey = (index: number, begin: number): number => index * 8192 + begin / BLOCK;

export class RequestScheduler {
  private readonly picker: PiecePicker;
  private readonly pieceLength: number;
  private readonly maxInFlight: number;
  private readonly peers: () => Iterable<Requester>;
  /** peers to top up once this turn of the event loop is done (fillSoon) */
  private readonly fillQueue = new Set<Requester>();
  /** the consumer is full: no new piece starts */
  paused = false;
  /** nothing more to request (the download is complete) */
  stopped = false;

  /** `maxInFlight`: bytes of pieces being downloaded at once, in whole pieces. */
  constructor(picker: PiecePicker, pieceLength: number, maxInFlight: number, peers: () => Iterable<Requester>) {
    this.picker = picker;
    this.pieceLength = pieceLength;
    this.maxInFlight = maxInFlight;
    this.peers = peers;
  }

  /** Tops up a peer's request queue. */
  fill(peer: Requester): void {
    const c = peer.conn;
    if (this.stopped || c.closed || c.remote === null || !c.amInterested) return;
    const canRequest = !c.peerChoking;
    if (!canRequest && peer.allowedFast.size === 0) return;
    const target = peer.snubbed ? 1 : Math.min(peer.queue.size, peer.reqq);
    const want = target - peer.requests.size;
    if (want <= 0) return;
    const inFlight = this.picker.partials.size * this.pieceLength;
    // whole pieces only: the budget is a bound on piece buffers, not a hint
    const startNew = this.paused ? 0 : Math.max(0, Math.floor((this.maxInFlight - inFlight) / this.pieceLength));
    const has = canRequest ? (i: number) => peer.bits.has(i) : (i: number) => peer.bits.has(i) && peer.allowedFast.has(i);
    const blocks = this.picker.pick(has, want, startNew, (b) => peer.requests.has(bkey(b.index, b.begin)));
    if (blocks.length === 0) return;
    for (const b of blocks) {
      const k = bkey(b.index, b.begin);
      peer.requests.set(k, b);
      peer.released.delete(k);
    }
    c.sendRequests(blocks);
    if (peer.requests.size === blocks.length) peer.lastBlock = Date.now();
  }

  /** Tops up every peer but `except`. */
  fillAll(except?: Requester): void {
    for (const p of this.peers()) if (p !== except) this.fill(p);
  }

  /**
   * Tops up once everything that came in this turn of the event loop is handled: the blocks of
   * every read libuv did in one poll (up to 32 per socket) are answered with one batch of
   * requests, one write. Per read (64 KiB on loopback) it was 16,000 writes per GiB, and on
   * loopback each small write also pays the receiver's TCP processing: 15% of download's time.
   */
  fillSoon(peer: Requester): void {
    if (this.fillQueue.size === 0) setImmediate(() => this.flushFills());
    this.fillQueue.add(peer);
  }

  fillAllSoon(): void {
    for (const p of this.peers()) this.fillSoon(p);
  }

  private flushFills(): void {
    const peers = [...this.fillQueue];
    this.fillQueue.clear();
    for (const p of peers) this.fill(p);
  }

  /** Takes back every request to `peer` (it choked or stalls) and offers the blocks to the others. */
  releaseAll(peer: Requester): void {
    for (const [k, b] of peer.requests) {
      this.picker.release(b);
      peer.released.add(k);
    }
    peer.requests.clear();
    this.fillAll(peer);
  }

  /** The peer is gone: its requests go back to the picker (the caller tops up the others). */
  forget(peer: Requester): void {
    for (const b of peer.requests.values()) this.picker.release(b);
    peer.requests.clear();
    this.fillQueue.delete(peer);
  }

  /** The peer rejected a request (BEP 6): the block is free again. */
  rejected(peer: Requester, index: number, begin: number): void {
    const k = bkey(index, begin);
    const b = peer.requests.get(k);
    if (b === undefined) return;
    peer.requests.delete(k);
    this.picker.release(b);
    this.fill(peer);
  }

  /**
   * A block arrived: the request it answers (now settled), null for a late answer to a request
   * we gave up (harmless), or why it breaks the protocol.
   */
  answer(peer: Requester, index: number, begin: number, length: number): Block | null | string {
    const k = bkey(index, begin);
    const mine = peer.requests.get(k);
    if (mine === undefined) return peer.released.delete(k) ? null : `sent block ${index}:${begin} that was never requested`;
    if (length !== mine.length) return `block ${index}:${begin} of ${length} bytes, requested ${mine.length}`;
    peer.requests.delete(k);
    return mine;
  }

  /** End-game: the block arrived, so other peers asked for it are told to forget it. */
  cancelDuplicates(from: Requester, b: Block): void {
    if (!this.picker.endgame) return;
    const k = bkey(b.index, b.begin);
    for (const p of this.peers()) {
      if (p === from || !p.requests.has(k)) continue;
      p.requests.delete(k);
      p.released.add(k);
      p.conn.send({ type: 'cancel', index: b.index, begin: b.begin, length: b.length });
    }
  }
}
