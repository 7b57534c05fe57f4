/**
 * Where a piece is picked: which blocks to ask a peer for next.
 *
 * Pieces a peer started itself come first, then the rarest piece the peer has, ties broken at
 * random so that peers fetching at once spread out (libtorrent's rule), then pieces others
 * started. A piece stays with the peer that started it while that peer keeps up: a slow peer
 * joining a fast one's piece would make it as slow to finish, and every piece held open is a
 * piece buffer in the in-flight bound (libtorrent keeps fast and slow peers apart the same way). In sequential mode (for streaming to a player) the
 * lowest wanted index wins instead. Once every missing block is requested, end-game allows a
 * block to be requested from a second peer; the first copy to arrive wins and the others are
 * cancelled by the caller.
 *
 * A priority list (setPriority: streaming readers' windows, most urgent first) comes before all
 * of that: its pieces are started first, may start a few pieces past the in-flight bound, and
 * take unrequested blocks of pieces other peers started; the first `urgent` of them (the piece
 * each reader is blocked on) are asked of a second peer as in end-game, so one slow peer cannot
 * hold a player up. Without a priority list picking costs what it did: one length check.
 */
import { blockRanges, pieceSize } from '../metainfo/pieces.js';

export const BLOCK = 16 * 1024;

/** priority entries kept at most: the stream server's readers × their windows stay well below */
export const MAX_PRIORITY = 1024;

export interface Block {
  index: number;
  begin: number;
  length: number;
}

/** A piece being downloaded: its buffer and which blocks are requested, received, from whom. */
export class PartialPiece {
  readonly index: number;
  readonly size: number;
  /** its bytes (replaced when the buffer comes back from hashing on another thread) */
  buf: Buffer;
  /** per block: number of outstanding requests */
  readonly requested: Uint8Array;
  /** per block: received */
  readonly received: Uint8Array;
  /** per block: who sent it (for strikes when the hash fails) */
  readonly from: Array<string | undefined>;
  receivedCount = 0;
  /** blocks never requested yet: requested[b] === 0 && !received[b] */
  unrequested: number;
  /** the peer that started it (its blocks go to that peer first) */
  owner: string | undefined;

  constructor(index: number, size: number, buf: Buffer = Buffer.allocUnsafe(size), owner?: string) {
    this.owner = owner;
    this.index = index;
    this.size = size;
    this.buf = buf;
    const n = Math.ceil(size / BLOCK);
    this.requested = new Uint8Array(n);
    this.received = new Uint8Array(n);
    this.from = new Array<string | undefined>(n);
    this.unrequested = n;
  }

  get blocks(): number {
    return this.requested.length;
  }

  get complete(): boolean {
    return this.receivedCount === this.requested.length;
  }

  blockLength(b: number): number {
    return Math.min(BLOCK, this.size - b * BLOCK);
  }
}

export interface PickerOptions {
  sequential?: boolean;
  random?: () => number;
  /** where a started piece's buffer comes from (the swarm's pool); default: a new one */
  allocate?: (size: number) => Buffer;
}

export class PiecePicker {
  readonly pieceCount: number;
  private readonly torrent: { length: number; pieceLength: number };
  /** how many connected peers have each piece */
  private readonly availability: Uint16Array;
  /** pieces still wanted and not being downloaded */
  private readonly wanted: Uint8Array;
  private wantedCount = 0;
  readonly partials = new Map<number, PartialPiece>();
  /** peers that prefer runs: the last piece each started (chooseNext) */
  private readonly lastStarted = new Map<string, number>();
  private readonly sequential: boolean;
  private readonly allocate: ((size: number) => Buffer) | undefined;
  private readonly random: () => number;
  /**
   * Wanted pieces grouped by availability (bucket[a]: the wanted pieces a peers have), with
   * each piece's position in its bucket, so picking the rarest is O(1) for a peer that has
   * most pieces instead of a scan of the whole torrent per pick.
   */
  private readonly buckets: number[][] = [];
  private readonly slot: Int32Array;
  /** sequential mode: no wanted piece below this index */
  private cursor = 0;
  /** pieces to fetch before any other, most urgent first (setPriority) */
  private priority: readonly number[] = [];
  /** how many of `priority`'s first entries may be requested from two peers at once */
  private urgent = 0;

  constructor(torrent: { length: number; pieceLength: number; pieceCount: number }, wanted: Iterable<number>, options: PickerOptions = {}) {
    this.torrent = torrent;
    this.pieceCount = torrent.pieceCount;
    this.availability = new Uint16Array(torrent.pieceCount);
    this.wanted = new Uint8Array(torrent.pieceCount);
    this.slot = new Int32Array(torrent.pieceCount).fill(-1);
    for (const i of wanted) {
      if (!this.wanted[i]) {
        this.wanted[i] = 1;
        this.wantedCount++;
        this.bucketIn(i);
      }
    }
    this.sequential = options.sequential ?? false;
    this.allocate = options.allocate;
    this.random = options.random ?? Math.random;
  }

  /** Wanted pieces not yet started. */
  get pending(): number {
    return this.wantedCount;
  }

  /** True when nothing is left to download (every wanted piece verified). */
  get finished(): boolean {
    return this.wantedCount === 0 && this.partials.size === 0;
  }

  /** A peer's bitfield arrived (or it left: sign -1). */
  addBitfield(has: (i: number) => boolean, sign: 1 | -1): void {
    for (let i = 0; i < this.pieceCount; i++) if (has(i)) this.addHave(i, sign);
  }

  addHave(index: number, sign: 1 | -1 = 1): void {
    const inBucket = this.slot[index]! >= 0;
    if (inBucket) this.bucketOut(index);
    this.availability[index] = Math.max(0, this.availability[index]! + sign);
    if (inBucket) this.bucketIn(index);
  }

  private bucketIn(i: number): void {
    const b = (this.buckets[this.availability[i]!] ??= []);
    this.slot[i] = b.length;
    b.push(i);
  }

  private bucketOut(i: number): void {
    const b = this.buckets[this.availability[i]!]!;
    const at = this.slot[i]!;
    const last = b.pop()!;
    if (last !== i) {
      b[at] = last;
      this.slot[last] = at;
    }
    this.slot[i] = -1;
  }

  availabilityOf(index: number): number {
    return this.availability[index]!;
  }

  isWanted(index: number): boolean {
    return this.wanted[index] === 1 || this.partials.has(index);
  }

  /**
   * Pieces to fetch before the others, most urgent first (at most MAX_PRIORITY are kept); the
   * first `urgent` may have their missing blocks requested from two peers. An empty list turns
   * priority off.
   */
  setPriority(pieces: readonly number[], urgent = 0): void {
    this.priority = pieces.length > MAX_PRIORITY ? pieces.slice(0, MAX_PRIORITY) : pieces;
    this.urgent = Math.min(urgent, this.priority.length);
  }

  /** True while a priority list is set (the swarm then cancels duplicate blocks as they land). */
  get prioritized(): boolean {
    return this.priority.length > 0;
  }

  /**
   * Up to `max` blocks to request from peer `owner`, which has the pieces `has` says, never
   * asking it twice for the same block (`mine` says which blocks it already has outstanding).
   * At most `startNew` new pieces are started (the room left in the in-flight memory bound).
   */
  pick(has: (i: number) => boolean, max: number, startNew: number, mine: (b: Block) => boolean, owner?: string, o: { runs?: boolean; startPriority?: number } = {}): Block[] {
    const runs = o.runs ?? false;
    const startPriority = o.startPriority ?? startNew;
    const out: Block[] = [];
    // 0. pieces a reader is waiting for: before everything else
    if (this.priority.length > 0) {
      const started = this.pickPriority(has, out, max, startPriority, mine, owner);
      startNew = Math.max(0, startNew - started);
    }
    // 1. blocks never requested in pieces this peer started (any started piece, for no peer)
    for (const p of this.partials.values()) {
      if (out.length >= max) return out;
      if (p.unrequested > 0 && (owner === undefined ? has(p.index) : p.owner === owner)) this.takeFrom(p, out, max, false, mine);
    }
    // 2. new pieces, rarest first (or in order)
    for (let started = 0; out.length < max && started < startNew && this.wantedCount > 0; started++) {
      const i = this.chooseNext(has, owner, runs);
      if (i < 0) break;
      const p = this.start(i, owner);
      if (runs && owner !== undefined) this.lastStarted.set(owner, i);
      this.takeFrom(p, out, max, false, mine);
    }
    // 3. blocks never requested in pieces others started (or whose owner left)
    for (const p of owner === undefined ? [] : this.partials.values()) {
      if (out.length >= max) return out;
      if (p.owner !== owner && p.unrequested > 0 && has(p.index)) this.takeFrom(p, out, max, false, mine);
    }
    // 4. end-game: every block is requested; ask for blocks still outstanding elsewhere
    if (out.length < max && this.wantedCount === 0) {
      for (const p of this.partials.values()) {
        if (out.length >= max) break;
        if (has(p.index)) this.takeFrom(p, out, max, true, mine);
      }
    }
    return out;
  }

  /** Step 0 of pick(): returns how many pieces it started. */
  private pickPriority(has: (i: number) => boolean, out: Block[], max: number, startMax: number, mine: (b: Block) => boolean, owner?: string): number {
    let started = 0;
    for (const i of this.priority) {
      if (out.length >= max) return started;
      const p = this.partials.get(i);
      if (p !== undefined) {
        if (p.unrequested > 0 && has(i)) this.takeFrom(p, out, max, false, mine);
      } else if (this.wanted[i] && started < startMax && has(i)) {
        this.takeFrom(this.start(i, owner), out, max, false, mine);
        started++;
      }
    }
    // the pieces readers are blocked on: blocks outstanding at another peer are asked here too
    for (let k = 0; k < this.urgent && out.length < max; k++) {
      const p = this.partials.get(this.priority[k]!);
      if (p !== undefined && has(p.index)) this.takeFrom(p, out, max, true, mine);
    }
    return started;
  }

  /** True when every missing block has been requested at least once. */
  get endgame(): boolean {
    if (this.wantedCount > 0) return false;
    for (const p of this.partials.values()) if (p.unrequested > 0) return false;
    return true;
  }

  private takeFrom(p: PartialPiece, out: Block[], max: number, duplicate: boolean, mine: (b: Block) => boolean): void {
    for (let b = 0; b < p.blocks && out.length < max; b++) {
      if (p.received[b]) continue;
      if (duplicate ? p.requested[b]! >= 2 : p.requested[b]! > 0) continue;
      const blk = { index: p.index, begin: b * BLOCK, length: p.blockLength(b) };
      if (duplicate && (mine(blk) || out.some((x) => x.index === blk.index && x.begin === blk.begin))) continue;
      if (p.requested[b] === 0) p.unrequested--;
      p.requested[b]!++;
      out.push(blk);
    }
  }

  /**
   * A peer that prefers runs (a web seed: one HTTP request per run of consecutive pieces, so
   * its cost is per run, not per piece) gets the piece after the last one it started while
   * that one is wanted, whatever its rarity (a web seed has every piece: none is rare because
   * of it); otherwise, and for every other peer, the usual choice. Like libtorrent's piece
   * extent affinity: random starts, contiguous after them.
   */
  private chooseNext(has: (i: number) => boolean, owner: string | undefined, runs: boolean): number {
    if (runs && owner !== undefined) {
      const last = this.lastStarted.get(owner);
      if (last !== undefined && last + 1 < this.pieceCount && this.wanted[last + 1] && has(last + 1)) return last + 1;
    }
    return this.choose(has);
  }

  private choose(has: (i: number) => boolean): number {
    const n = this.pieceCount;
    if (this.sequential) {
      while (this.cursor < n && !this.wanted[this.cursor]) this.cursor++;
      for (let i = this.cursor; i < n; i++) if (this.wanted[i] && has(i)) return i;
      return -1;
    }
    // the rarest bucket holding a piece this peer has, from a random place in it so that peers
    // spread out; bucket 0 (pieces no known bitfield has) last: normally the peer lacks them too
    for (let k = 1; k <= this.buckets.length; k++) {
      const b = this.buckets[k % this.buckets.length];
      if (b === undefined || b.length === 0) continue;
      const start = Math.floor(this.random() * b.length);
      for (let k = 0; k < b.length; k++) {
        const i = b[(start + k) % b.length]!;
        if (has(i)) return i;
      }
    }
    return -1;
  }

  private start(i: number, owner?: string): PartialPiece {
    this.bucketOut(i);
    this.wanted[i] = 0;
    this.wantedCount--;
    const size = pieceSize(this.torrent, i);
    const p = new PartialPiece(i, size, this.allocate?.(size), owner);
    this.partials.set(i, p);
    return p;
  }

  /** A request was cancelled, rejected or lost with its peer: the block may be asked again. */
  release(b: Block): void {
    const p = this.partials.get(b.index);
    if (!p) return;
    const k = b.begin / BLOCK;
    if (p.received[k] || p.requested[k] === 0) return;
    p.requested[k]!--;
    if (p.requested[k] === 0) p.unrequested++;
  }

  /**
   * A block arrived (the caller checked that it answers a request of ours, maybe one since
   * taken back). Returns the piece when this was its last block (the caller hashes it), 'dup'
   * when the block was already in, null otherwise, and 'unwanted' for a block of no piece being
   * downloaded (a late answer for a piece done or restarted).
   */
  receive(index: number, begin: number, data: Buffer, peer: string): PartialPiece | 'dup' | 'unwanted' | null {
    const p = this.partials.get(index);
    if (!p || begin % BLOCK !== 0) return 'unwanted';
    const k = begin / BLOCK;
    if (k >= p.blocks || data.length !== p.blockLength(k)) return 'unwanted';
    if (p.received[k]) return 'dup';
    // a late answer to a request taken back: the block counted as never requested again
    if (p.requested[k] === 0) p.unrequested--;
    data.copy(p.buf, begin);
    p.received[k] = 1;
    p.from[k] = peer;
    p.receivedCount++;
    return p.complete ? p : null;
  }

  /** The piece verified: it is done. */
  finish(p: PartialPiece): void {
    this.partials.delete(p.index);
  }

  /**
   * Blocks of a complete piece were found bad (their leaf hashes, BEP 52): those are fetched
   * again, the rest of the piece is kept.
   */
  refetch(p: PartialPiece, blocks: readonly number[]): void {
    for (const k of blocks) {
      if (!p.received[k]) continue;
      p.received[k] = 0;
      p.requested[k] = 0;
      p.from[k] = undefined;
      p.receivedCount--;
      p.unrequested++;
    }
  }

  /** The piece failed its hash: start it again from scratch. */
  reset(p: PartialPiece): void {
    this.partials.delete(p.index);
    this.wanted[p.index] = 1;
    this.wantedCount++;
    this.bucketIn(p.index);
    this.cursor = Math.min(this.cursor, p.index);
  }

  /** Blocks of a piece, for callers that need the layout. */
  static blocksOf(size: number): Array<{ begin: number; length: number }> {
    return blockRanges(size, BLOCK);
  }
}
