/**
 * Where a magnet's metadata is put together: BEP 9 pieces asked of several peers at once,
 * checked against the info hash (SHA-1, and SHA-256 for a btmh hash) before anyone sees them.
 *
 * Trust: a peer that sends a piece it was not asked for, a piece of the wrong size, a
 * total_size other than the metadata_size it announced, or a reject, loses its connection and
 * its pieces go to others. When assembled metadata fails the hash and several peers
 * contributed, nobody can be blamed yet: the fetcher then asks one peer at a time for the whole
 * of it, so the liar is the one whose own copy fails.
 */
import type { LogLevel } from '../log.js';
import { closeReason } from '../wire/close-reason.js';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { PeerConnection } from '../wire/peer-connection.js';
import { DEFAULT_MAX_METADATA, METADATA_PIECE, UtMetadata, metadataPieceLength } from '../wire/ut-metadata.js';

export interface MetadataFetcherOptions {
  infoHash: Buffer;
  /** BEP 52 SHA-256 info hash, when the magnet has one (btmh) */
  infoHashV2?: Buffer;
  /** largest metadata_size believed (default 8 MiB) */
  maxSize?: number;
  /** metadata requests outstanding per peer (default 4) */
  perPeer?: number;
  /** a request unanswered this long goes to another peer, and the slow peer is dropped (default 10 s) */
  requestTimeoutMs?: number;
}

export interface MetadataFetcherEvents {
  /** the verified raw info dict */
  metadata: [Buffer];
  log: [line: string, level: LogLevel];
}

interface Source {
  conn: PeerConnection;
  size: number;
  ext: UtMetadata;
  /** piece → time requested */
  outstanding: Map<number, number>;
  /** its own full copy failed the hash before: never trusted again */
  tested: boolean;
}

export class MetadataFetcher extends EventEmitter<MetadataFetcherEvents> {
  private readonly o: MetadataFetcherOptions;
  private readonly sources = new Map<PeerConnection, Source>();
  private size: number | null = null;
  private pieces: Array<Buffer | undefined> = [];
  private from: Source[] = [];
  private received = 0;
  /** after a hash failure with several contributors: the one peer asked for everything */
  private suspectMode = false;
  private single: Source | null = null;
  private result: Buffer | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor(options: MetadataFetcherOptions) {
    super();
    this.o = options;
    this.timer = setInterval(() => this.checkTimeouts(), 1000);
    this.timer.unref();
  }

  /** The verified metadata, once fetched. */
  get metadata(): Buffer | null {
    return this.result;
  }

  /** Peers that offer metadata of the size being fetched. */
  get sourceCount(): number {
    return this.sources.size;
  }

  /** The ut_metadata extension for one connection, wired to this fetcher (and serving, once done). */
  extension(conn: PeerConnection): UtMetadata {
    const ext: UtMetadata = new UtMetadata({
      maxSize: this.o.maxSize ?? DEFAULT_MAX_METADATA,
      info: () => this.result,
      onPeer: (c, size) => this.addSource(c, size, ext),
      onData: (c, piece, total, data) => this.onData(c, piece, total, data),
      onReject: (c, piece) => this.drop(c, `rejected metadata piece ${piece}`),
    });
    conn.once('close', () => this.removeSource(conn));
    return ext;
  }

  destroy(): void {
    clearInterval(this.timer);
    this.sources.clear();
  }

  private addSource(conn: PeerConnection, size: number | null, ext: UtMetadata): void {
    if (this.result !== null || size === null || this.sources.has(conn)) return;
    this.sources.set(conn, { conn, size, ext, outstanding: new Map(), tested: false });
    if (this.size === null) this.startAttempt(size);
    this.schedule();
  }

  private removeSource(conn: PeerConnection): void {
    const s = this.sources.get(conn);
    if (!s) return;
    this.sources.delete(conn);
    if (this.single === s) this.single = null;
    if (this.result !== null) return;
    // its size may have been the one being fetched: fall back to what the others say
    if (![...this.sources.values()].some((x) => x.size === this.size)) {
      const next = this.mostCommonSize();
      if (next !== null) this.startAttempt(next);
      else this.size = null;
    }
    this.schedule();
  }

  private drop(conn: PeerConnection, reason: string): void {
    this.emit('log', `${conn.name}: ${reason}`, 'peer');
    conn.close(closeReason('violation', reason));
    this.removeSource(conn);
  }

  private mostCommonSize(): number | null {
    const count = new Map<number, number>();
    for (const s of this.sources.values()) if (!s.tested) count.set(s.size, (count.get(s.size) ?? 0) + 1);
    let best: number | null = null;
    for (const [size, n] of count) if (best === null || n > count.get(best)!) best = size;
    return best;
  }

  private startAttempt(size: number): void {
    this.size = size;
    const n = Math.ceil(size / METADATA_PIECE);
    this.pieces = Array.from({ length: n }, () => undefined);
    this.from = [];
    this.received = 0;
    for (const s of this.sources.values()) s.outstanding.clear();
  }

  /** Asks free peers for the pieces nobody has been asked for. */
  private schedule(): void {
    if (this.result !== null || this.size === null) return;
    if (this.suspectMode && (this.single === null || !this.sources.has(this.single.conn))) {
      this.single = [...this.sources.values()].find((s) => s.size === this.size && !s.tested) ?? null;
      if (this.single === null) return;
      this.startAttempt(this.size);
    }
    const perPeer = this.o.perPeer ?? 4;
    const asked = new Set<number>();
    for (const s of this.sources.values()) for (const p of s.outstanding.keys()) asked.add(p);
    const eligible = [...this.sources.values()].filter((s) => s.size === this.size && (!this.suspectMode || s === this.single));
    if (eligible.length === 0) return;
    const now = Date.now();
    for (let piece = 0; piece < this.pieces.length; piece++) {
      if (this.pieces[piece] !== undefined || asked.has(piece)) continue;
      let best: Source | null = null;
      for (const s of eligible) if (s.outstanding.size < perPeer && (best === null || s.outstanding.size < best.outstanding.size)) best = s;
      if (best === null) return;
      best.outstanding.set(piece, now);
      best.ext.request(best.conn, piece);
    }
  }

  private onData(conn: PeerConnection, piece: number, totalSize: number, data: Buffer): void {
    const s = this.sources.get(conn);
    if (this.result !== null) return; // late answers once we are done are harmless
    if (!s || !s.outstanding.has(piece)) return this.drop(conn, `sent metadata piece ${piece}, which was not asked of it`);
    if (totalSize !== s.size) return this.drop(conn, `metadata piece ${piece} says total_size ${totalSize}, but its handshake said ${s.size}`);
    const want = metadataPieceLength(s.size, piece);
    if (data.length !== want) return this.drop(conn, `metadata piece ${piece} has ${data.length} bytes, expected ${want}`);
    s.outstanding.delete(piece);
    if (this.pieces[piece] === undefined) this.received++;
    this.pieces[piece] = Buffer.from(data); // a copy: the frame buffer is not ours to keep
    this.from[piece] = s;
    if (this.received === this.pieces.length) this.complete();
    else this.schedule();
  }

  private complete(): void {
    const buf = Buffer.concat(this.pieces as Buffer[]);
    const v2 = this.o.infoHashV2;
    // a btmh-only magnet is keyed by its truncated SHA-256: there is no SHA-1 to check
    const v2Keyed = v2 !== undefined && this.o.infoHash.equals(v2.subarray(0, 20));
    const ok = (v2Keyed || createHash('sha1').update(buf).digest().equals(this.o.infoHash))
      && (v2 === undefined || createHash('sha256').update(buf).digest().equals(v2));
    if (ok) {
      this.result = buf;
      clearInterval(this.timer);
      this.emit('metadata', buf);
      return;
    }
    const contributors = new Set(this.from);
    if (contributors.size === 1) {
      const liar = [...contributors][0]!;
      liar.tested = true;
      this.drop(liar.conn, 'sent metadata that does not match the info hash');
    } else {
      this.emit('log', `metadata from ${contributors.size} peers does not match the info hash; asking one peer at a time`, 'notice');
      this.suspectMode = true;
      this.single = null;
    }
    const size = this.mostCommonSize();
    if (size === null) {
      this.size = null;
      return;
    }
    this.startAttempt(size);
    this.schedule();
  }

  private checkTimeouts(): void {
    const limit = this.o.requestTimeoutMs ?? 10_000;
    const now = Date.now();
    for (const s of [...this.sources.values()]) {
      for (const at of s.outstanding.values()) {
        if (now - at > limit) {
          this.drop(s.conn, `no answer to a metadata request in ${Math.round(limit / 1000)} s`);
          break;
        }
      }
    }
  }
}
