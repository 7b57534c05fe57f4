/**
 * Pinning a bad block of a v2 piece to its sender (BEP 52). A piece from several peers that
 * fails its merkle check is held, not thrown away: a peer that has the piece (one that sent
 * none of it, when there is one) is asked for the piece's leaf hashes, proved up to the
 * piece-layer node we trust, and each 16 KiB block we got is compared with its leaf. Only the
 * senders of the blocks that differ are to blame, and only those blocks are fetched again.
 * Without v2 this needs the whole piece fetched again and compared (swarm.ts `failedCopies`).
 *
 * Bounded: a few pieces held at once (their buffers count against the in-flight bound), one
 * request out per piece; a reject, a close or 10 s of silence moves it to the next peer, and
 * when none is left the caller restarts the piece the v1 way.
 */
import { HASH_BYTES } from '../metainfo/merkle.js';
import { leafHashRequest, sameHashRange, type HashAsk, type LeafHashRequest } from '../metainfo/hash-requests.js';
import type { Torrent } from '../metainfo/torrent.js';
import type { PeerConnection } from '../wire/peer-connection.js';
import type { PartialPiece } from './picker.js';

/** pieces held for pinning at once */
const MAX_PINS = 4;
const ANSWER_MS = 10_000;

export interface PinPeer {
  key: string;
  conn: PeerConnection;
  has(index: number): boolean;
}

export interface PinHandlers {
  peers(): Iterable<PinPeer>;
  isBanned(key: string): boolean;
  /** the leaves proved `bad` blocks of `p` wrong (`by`: the peer whose answer proved it) */
  pinned(p: PartialPiece, bad: number[], by: string): void;
  /** nobody could answer: restart the piece without knowing which block was bad */
  unpinned(p: PartialPiece, why: string): void;
}

interface Pin {
  p: PartialPiece;
  ask: LeafHashRequest;
  /** leaf hashes of the copy we got */
  ours: Buffer;
  senders: Set<string>;
  tried: Set<string>;
  /** who has the request now, since when */
  at: { key: string; since: number } | null;
}

export class BlockPins {
  private readonly torrent: Torrent;
  private readonly h: PinHandlers;
  private readonly pins = new Map<number, Pin>();

  constructor(torrent: Torrent, handlers: PinHandlers) {
    this.torrent = torrent;
    this.h = handlers;
  }

  get size(): number {
    return this.pins.size;
  }

  /** Holds failed piece `p` (our leaf hashes `ours`) and asks for its leaves; false when it cannot be pinned. */
  start(p: PartialPiece, ours: Buffer): boolean {
    if (this.pins.size >= MAX_PINS || this.pins.has(p.index)) return false;
    const ask = leafHashRequest(this.torrent, p.index, 'piece');
    if (typeof ask === 'string' || ours.length !== ask.dataLeaves * HASH_BYTES) return false;
    const senders = new Set(p.from.filter((k): k is string => k !== undefined));
    const pin: Pin = { p, ask, ours, senders, tried: new Set(), at: null };
    this.pins.set(p.index, pin);
    return this.next(pin);
  }

  /** Asks the next peer; false (and the pin dropped) when none is left. */
  private next(pin: Pin, now = Date.now()): boolean {
    let best: PinPeer | null = null;
    for (const peer of this.h.peers()) {
      if (pin.tried.has(peer.key) || peer.conn.closed || peer.conn.remote === null || this.h.isBanned(peer.key) || !peer.has(pin.p.index)) continue;
      // a proof is checked against what we trust, so any peer's answer will do; one that sent
      // nothing of the piece is asked first all the same (a liar may also stall)
      if (best === null || (pin.senders.has(best.key) && !pin.senders.has(peer.key))) best = peer;
    }
    if (best === null) {
      this.pins.delete(pin.p.index);
      pin.at = null;
      return false;
    }
    pin.tried.add(best.key);
    pin.at = { key: best.key, since: now };
    best.conn.send({ type: 'hash-request', ...pin.ask.request });
    return true;
  }

  private find(key: string, m: HashAsk): Pin | null {
    for (const pin of this.pins.values()) if (pin.at?.key === key && sameHashRange(pin.ask.request, m)) return pin;
    return null;
  }

  /**
   * A `hashes` message from `key`: 'pinned' when it answered a pin (handled), 'bad' when its
   * proof fails (the caller closes the connection), null when it is not for us.
   */
  onHashes(key: string, m: HashAsk & { hashes: Buffer }): 'pinned' | 'bad' | null {
    const pin = this.find(key, m);
    if (pin === null) return null;
    const leaves = pin.ask.leaves(m.hashes);
    if (leaves === null) {
      this.retry(pin, `${key}'s leaf hashes for piece ${pin.p.index} do not prove its piece-layer node`);
      return 'bad';
    }
    const bad: number[] = [];
    for (let b = 0; b < pin.ask.dataLeaves; b++) {
      if (!leaves.subarray(b * HASH_BYTES, (b + 1) * HASH_BYTES).equals(pin.ours.subarray(b * HASH_BYTES, (b + 1) * HASH_BYTES))) bad.push(b);
    }
    this.pins.delete(pin.p.index);
    // every leaf matching would mean the piece hashed right: no block to blame
    if (bad.length === 0) this.h.unpinned(pin.p, `piece ${pin.p.index}: its leaf hashes all match, yet it failed`);
    else this.h.pinned(pin.p, bad, key);
    return 'pinned';
  }

  /** A hash reject from `key`; true when it was for a pin. */
  onReject(key: string, m: HashAsk): boolean {
    const pin = this.find(key, m);
    if (pin === null) return false;
    this.retry(pin, `no peer would give the leaf hashes of piece ${pin.p.index}`);
    return true;
  }

  /** A connection closed: what it was asked goes to the next peer. */
  onClose(key: string): void {
    for (const pin of [...this.pins.values()]) if (pin.at?.key === key) this.retry(pin, `no peer left to ask for the leaf hashes of piece ${pin.p.index}`);
  }

  /** Once a second: an answer overdue goes to the next peer. */
  tick(now = Date.now()): void {
    for (const pin of [...this.pins.values()]) {
      if (pin.at !== null && now - pin.at.since > ANSWER_MS) this.retry(pin, `no answer with the leaf hashes of piece ${pin.p.index}`, now);
    }
  }

  private retry(pin: Pin, why: string, now = Date.now()): void {
    if (!this.next(pin, now)) this.h.unpinned(pin.p, why);
  }
}
