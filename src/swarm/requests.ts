/**
 * Where requests are decided: which blocks each peer is asked for and when, under the bound on
 * pieces in flight. The picker says which blocks; this keeps each peer's queue topped up to its
 * size (request-queue.ts), batches the top-ups of one event-loop turn into one write, takes
 * requests back from peers that choke or stall, and in end-game cancels the copies nobody needs.
 *
 * Two books per peer: the requests we count on (`requests`, what the queue size is measured
 * against) and every request sent and not yet answered (`asked`, a count per block). A request
 * we take back (choke without BEP 6, snub, end-game cancel) leaves the first book, not the
 * second: the peer may still answer it, and under BEP 6 it must answer or reject each one, even
 * after a choke or a cancel. So a block is a protocol violation only when it answers nothing we
 * sent; a late answer is kept when the block is still missing.
 */
import type { PeerConnection } from '../wire/peer-connection.js';
import type { Bitfield } from './bitfield.js';
import { BLOCK, type Block, type PiecePicker } from './picker.js';
import type { RequestQueue } from './request-queue.js';

/** What the scheduler knows of a peer (the swarm's peer record has these fields). */
export interface Requester {
  readonly conn: PeerConnection;
  bits: Bitfield;
  /** the requests we count on it to answer: bkey → block */
  readonly requests: Map<number, Block>;
  /** requests sent and neither answered nor rejected yet, taken back or not: bkey → how many */
  readonly asked: Map<number, number>;
  readonly queue: RequestQueue;
  /** the most requests it accepts (its BEP 10 `reqq`) */
  reqq: number;
  snubbed: boolean;
  /** when its last block arrived (or its first request went out) */
  lastBlock: number;
  readonly allowedFast: Set<number>;
  /** new pieces in order after the last it started (a web seed: picker.ts chooseNext) */
  readonly runs?: boolean;
}

/**
 * A block's key in the request maps: a number, not an "index:begin" string (one allocation per
 * block each way, at 65,536 blocks per GiB). Unique for begin < 8192 blocks (the largest piece
 * length); a small integer while index < 2^18.
 */
export const bkey = (index: number, begin: number): number => index * 8192 + begin / BLOCK;

/**
 * Unanswered requests remembered per peer. A peer without BEP 6 never answers the requests it
 * dropped on a choke, so the book would grow for ever: past this, the oldest taken-back entries
 * are forgotten (a late answer to one then counts as unrequested). Live ones (at most 500) stay.
 */
const ASKED_MAX = 4096;

/** What a block answers: a live request, one we took back (`'late'`), or a violation (text). */
export type Answer = Block | 'late' | string;

/** requests a peer keeps however small its share of the in-flight bound */
const MIN_SHARE = 4;

/**
 * Pieces a priority list (a streaming reader) may start beyond the in-flight bound: with the
 * bound full of rarest-first pieces, a seek would otherwise wait for some of them to finish.
 */
const PRIORITY_EXTRA_PIECES = 4;

export class RequestScheduler {
  private readonly picker: PiecePicker;
  private readonly pieceLength: number;
  private readonly maxInFlight: number;
  private readonly peers: () => Iterable<Requester>;
  /** peers to top up once this turn of the event loop is done (fillSoon) */
  private readonly fillQueue = new Set<Requester>();
  /** the consumer is full: no new piece starts */
  paused = false;
  /** the share scale, computed once per turn of the event loop (scale()) */
  private scaleValue = 1;
  private scaleTurn = -1;
  private turn = 0;
  /** nothing more to request (the download is complete) */
  stopped = false;
  /** pieces that can be checked once in (a v2 magnet's pieces wait for their file's piece layer) */
  ready: ((index: number) => boolean) | null = null;

  /** `maxInFlight`: bytes of pieces being downloaded at once, in whole pieces. */
  constructor(picker: PiecePicker, pieceLength: number, maxInFlight: number, peers: () => Iterable<Requester>) {
    this.picker = picker;
    this.pieceLength = pieceLength;
    this.maxInFlight = maxInFlight;
    this.peers = peers;
  }

  /** Requests a peer would have outstanding if memory were no object: its queue size. */
  private wish(peer: Requester): number {
    const c = peer.conn;
    if (c.closed || c.remote === null || !c.amInterested || (c.peerChoking && peer.allowedFast.size === 0)) return 0;
    return peer.snubbed ? 1 : Math.min(peer.queue.size, peer.reqq);
  }

  /**
   * The share of the in-flight bound each peer's wish gets. Queues are sized as time (3 s of
   * each peer's rate); when they add up to more than the bound, each is scaled down alike, so
   * every peer keeps the same depth in time. Without it the first fast peers took the whole
   * bound (500 requests, 8 MiB, at an 8 MiB/s seeder) and eight of twelve rate-limited seeders
   * sat with nothing requested: 10 MiB/s from 29 MiB/s of seeders.
   */
  private scale(): number {
    if (this.scaleTurn !== this.turn) {
      let total = 0;
      for (const p of this.peers()) total += this.wish(p);
      this.scaleValue = Math.min(1, this.maxInFlight / BLOCK / Math.max(1, total));
      this.scaleTurn = this.turn;
    }
    return this.scaleValue;
  }

  /** Tops up a peer's request queue. */
  fill(peer: Requester): void {
    const c = peer.conn;
    if (this.stopped || c.closed || c.remote === null || !c.amInterested) return;
    const canRequest = !c.peerChoking;
    if (!canRequest && peer.allowedFast.size === 0) return;
    const wish = this.wish(peer);
    const target = Math.min(wish, Math.max(MIN_SHARE, Math.floor(wish * this.scale())));
    const want = target - peer.requests.size;
    if (want <= 0) return;
    const inFlight = this.picker.partials.size * this.pieceLength;
    // whole pieces only: the budget is a bound on piece buffers, not a hint
    const startNew = this.paused ? 0 : Math.max(0, Math.floor((this.maxInFlight - inFlight) / this.pieceLength));
    const startPriority = this.paused ? 0 : Math.max(0, Math.floor((this.maxInFlight - inFlight) / this.pieceLength) + PRIORITY_EXTRA_PIECES);
    const ready = this.ready;
    const has = canRequest
      ? ready === null ? (i: number) => peer.bits.has(i) : (i: number) => peer.bits.has(i) && ready(i)
      : (i: number) => peer.bits.has(i) && peer.allowedFast.has(i) && (ready === null || ready(i));
    const blocks = this.picker.pick(has, want, startNew, (b) => peer.requests.has(bkey(b.index, b.begin)), c.name, { runs: peer.runs === true, startPriority });
    if (blocks.length === 0) return;
    for (const b of blocks) {
      const k = bkey(b.index, b.begin);
      peer.requests.set(k, b);
      peer.asked.set(k, (peer.asked.get(k) ?? 0) + 1);
    }
    if (peer.asked.size > ASKED_MAX) forgetOldest(peer);
    c.sendRequests(blocks);
    if (peer.requests.size === blocks.length) peer.lastBlock = Date.now();
  }

  /** Tops up every peer but `except`. */
  fillAll(except?: Requester): void {
    this.turn++;
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
    this.turn++;
    const peers = [...this.fillQueue];
    this.fillQueue.clear();
    for (const p of peers) this.fill(p);
  }

  /**
   * Takes back every request to `peer` (it choked without BEP 6, or stalls) and offers the blocks
   * to the others. The peer may still answer them (`asked` keeps them).
   */
  releaseAll(peer: Requester): void {
    for (const b of peer.requests.values()) this.picker.release(b);
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
    if (!settle(peer, k)) return; // rejects what we never asked: nothing to undo
    const b = peer.requests.get(k);
    if (b === undefined) return;
    peer.requests.delete(k);
    this.picker.release(b);
    this.fill(peer);
  }

  /**
   * A block arrived: the live request it answers (now settled), 'late' when it answers a request
   * we took back (the caller keeps it if the block is still missing), or why it breaks the
   * protocol: it answers no request we sent, or more often than we sent it.
   */
  answer(peer: Requester, index: number, begin: number, length: number): Answer {
    const k = bkey(index, begin);
    if (!settle(peer, k)) return `sent block ${index}:${begin}, which no request of ours is waiting for`;
    const mine = peer.requests.get(k);
    if (mine === undefined) return 'late';
    if (length !== mine.length) return `block ${index}:${begin} of ${length} bytes, requested ${mine.length}`;
    peer.requests.delete(k);
    return mine;
  }

  /**
   * Block `b` is in: other peers still asked for it (end-game copies, or the request a late
   * answer overtook) are told to forget it. Under BEP 6 they still answer or reject the cancel.
   */
  cancelDuplicates(from: Requester, b: Block): void {
    const k = bkey(b.index, b.begin);
    for (const p of this.peers()) {
      if (p === from || !p.requests.has(k)) continue;
      p.requests.delete(k);
      p.conn.send({ type: 'cancel', index: b.index, begin: b.begin, length: b.length });
      this.fillSoon(p);
    }
  }
}

/** One request for block `k` is answered (piece or reject); false when none was outstanding. */
function settle(peer: Requester, k: number): boolean {
  const n = peer.asked.get(k);
  if (n === undefined) return false;
  if (n > 1) peer.asked.set(k, n - 1);
  else peer.asked.delete(k);
  return true;
}

/** Forgets the oldest taken-back requests (Map order is insertion order), down to 3/4 of the bound. */
function forgetOldest(peer: Requester): void {
  for (const k of peer.asked.keys()) {
    if (peer.asked.size <= (ASKED_MAX * 3) / 4) return;
    if (!peer.requests.has(k)) peer.asked.delete(k);
  }
}
