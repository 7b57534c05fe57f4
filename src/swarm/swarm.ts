/**
 * One torrent's live state: its peer connections, what their messages mean, choking and
 * uploading (upload-slots.ts, uploader.ts), PEX and ut_metadata serving, and, while pieces are
 * wanted, the download engine: many connections feeding one piece picker. A seed is a swarm
 * that wants nothing; a download that completes keeps its connections and goes on serving.
 *
 * Which blocks each peer is asked for is requests.ts's business (queues sized from each peer's
 * rate after a slow start, request-queue.ts). Here: connections, what their messages mean,
 * rates and snubs, and trust. Every piece is SHA-1-checked before it leaves; a piece that fails
 * is fetched again and, once good, compared block by block with the failed copy, so the peer
 * that sent the bad block is banned and an honest co-contributor is not (a v2 piece needs no
 * second copy: a peer's proved leaf hashes name the bad block, block-pin.ts). Memory is bounded:
 * pieces in flight are capped in bytes, and when the consumer is slow no new piece starts until
 * it catches up.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { FileStore } from '../storage/file-store.js';
import { ReadCache } from '../storage/read-cache.js';
import { HashServer, type HashSource } from './hash-server.js';
import { LayerFetcher, isV2Connection } from './layer-fetch.js';
import { BlockPins } from './block-pin.js';
import { CRYPTO_PLAINTEXT, CRYPTO_RC4 } from '../wire/mse.js';
import { pieceCheck } from '../metainfo/piece-check.js';
import { pieceSize } from '../metainfo/pieces.js';
import type { Torrent } from '../metainfo/torrent.js';
import { peerKey, type PeerRecord } from '../peers/record.js';
import { isOwnAddress } from '../peers/self.js';
import type { LogLevel } from '../log.js';
import { bitfieldProblem, type WireLimits } from '../wire/frame-decoder.js';
import type { Bandwidth } from '../wire/bandwidth.js';
import { closeReason, describeClose, type CloseReason } from '../wire/close-reason.js';
import type { WireSocket } from '../wire/memory-pipe.js';
import { PeerConnection, type ReadFeed, type WireExtension } from '../wire/peer-connection.js';
import { UtMetadata } from '../wire/ut-metadata.js';
import { PexExchange } from './pex.js';
import { BufferPool } from '../storage/buffer-pool.js';
import { HashPool } from '../storage/hash-pool.js';
import type { PieceLease } from '../storage/piece-lease.js';
import type { BDict, BValue } from '../bencode/types.js';
import { CLIENT_VERSION, makePeerId, type WireMessage } from '../wire/protocol.js';
import { Bitfield } from './bitfield.js';
import { Connector, type LocalDial, type Transports } from './connector.js';
import type { HandedPeer } from './hand-over.js';
import { BLOCK, PiecePicker, type PartialPiece } from './picker.js';
import { RateMeter } from './rate.js';
import { RequestQueue } from './request-queue.js';
import { RequestScheduler, type Requester } from './requests.js';
import { MAX_QUEUED_REQUESTS, Uploader, type Fault } from './uploader.js';
import type { ConnectionBudget } from '../session/budget.js';
import { UploadSlots, type SlotHolder } from './upload-slots.js';

export interface SwarmOptions {
  torrent: Torrent;
  /** pieces to fetch (default: every piece not in `have`) */
  wanted?: Iterable<number>;
  /** pieces we already have */
  have?: Iterable<number>;
  peerId?: Buffer;
  maxPeers?: number;
  halfOpen?: number;
  connectTimeoutMs?: number;
  /** bytes of pieces being downloaded at once (default 16 MiB, at least 2 pieces) */
  maxInFlightBytes?: number;
  sequential?: boolean;
  /** seconds of data to keep requested from each peer (default 3) */
  queueSeconds?: number;
  /** a peer with requests outstanding and no block for this long is snubbed (default 15 s) */
  snubMs?: number;
  /**
   * How often queues are resized from rates, snubs found and useless peers dropped (default
   * 1000 ms). Requests never wait for it: tests set it to hours to show so.
   */
  tickMs?: number;
  /** our listening port (the session's), advertised in the extended handshake */
  port?: number;
  /** extensions each connection gets besides ut_metadata (serving this torrent) and ut_pex */
  extensions?: (conn: PeerConnection, rec: PeerRecord) => WireExtension[];
  /** exchange peers with peers (BEP 11; default true, never for a private torrent) */
  pex?: boolean;
  /** our DHT node's port, sent to peers that support BEP 5 */
  dhtPort?: number;
  random?: () => number;
  /**
   * Upload while downloading: serve pieces read back from this store (the output directory).
   * A piece is offered only once markWritten() says it is on disk; pieces in `have` are.
   */
  serve?: FileStore;
  /** regular upload slots (default 4) */
  slots?: number;
  /** seconds between choking rounds (default 10) */
  roundSeconds?: number;
  /** bytes of blocks read back for uploading, cached (default 8 MiB) */
  readCacheBytes?: number;
  /** test only: misbehave when uploading (uploader.ts) */
  fault?: Fault;
  /** a hashing thread shared with other torrents (default: one of its own, closed with it) */
  hasher?: HashPool;
  /** connections at most across the torrents of a session */
  budget?: ConnectionBudget | null;
  /** the rate limits every connection of this torrent is charged to (session.bandwidthFor) */
  bandwidth?: Bandwidth;
  /** how peers are dialled: TCP, uTP or both (the session's; default TCP only) */
  transports?: Transports;
}

export interface PeerStats {
  peer: string;
  client: string;
  downRate: number;
  downloaded: number;
  queue: number;
  outstanding: number;
  choked: boolean;
  snubbed: boolean;
  pieces: number;
  /** how the connection runs; none for a web seed (in-process) */
  transport?: 'tcp' | 'utp';
}

export interface SwarmStats {
  peers: number;
  connecting: number;
  candidates: number;
  done: number;
  wanted: number;
  downloaded: number;
  downRate: number;
  /** pieces started and not yet verified (their buffers are the in-flight memory) */
  inFlight: number;
  hashFailures: number;
  banned: number;
  perPeer: PeerStats[];
}

interface Peer extends Requester {
  key: string;
  /** how logs and stats name it: host:port, or a web seed's URL */
  name: string;
  /** payload bytes it sent in this run, kept past its connection (sources()) */
  tally: SourceBytes;
  rec: PeerRecord;
  rate: RateMeter;
  useful: boolean;
  /** serve mode: its upload slot (null when we upload nothing) */
  holder: SlotHolder | null;
}

/** Payload bytes one source sent (download --json's 'sources' record). */
export interface SourceBytes {
  /** host:port, or a web seed's URL */
  peer: string;
  /** set for a web seed */
  webSeed?: boolean;
  /** the transport of its latest connection (none for a web seed) */
  transport?: 'tcp' | 'utp';
  bytes: number;
}

export interface SwarmEvents {
  /**
   * a verified piece (call pause() when the consumer is full). The listener that keeps the
   * bytes takes the lease (`piece.transfer()`) and releases it once done with them: its buffer
   * is reused for a later piece (piece-lease.ts)
   */
  piece: [{ index: number; piece: PieceLease }];
  peer: [PeerRecord];
  /** a peer's DHT node (BEP 5 `port` message): worth a ping */
  'dht-node': [{ ip: string; port: number }];
  /** one line for stderr: a peer error ('peer'), a ban or a hash failure ('notice') */
  log: [line: string, level: LogLevel];
  /** serve mode: piece `index` is on disk (markWritten), readable from the output */
  written: [index: number];
  /** a v2 magnet's piece layers are all fetched (in torrent.pieceLayers): worth caching */
  layers: [];
  done: [];
}

export class Swarm extends EventEmitter<SwarmEvents> {
  readonly torrent: Torrent;
  readonly peerId: Buffer;
  readonly picker: PiecePicker;
  readonly have: Bitfield;
  private readonly o: SwarmOptions;
  private readonly connector: Connector;
  private readonly peers = new Map<string, Peer>();
  private readonly scheduler: RequestScheduler;
  private readonly wantedTotal: number;
  private doneCount = 0;
  private downloadedBytes = 0;
  private hashFailures = 0;
  private bannedCount = 0;
  private readonly rate = new RateMeter(5);
  /** failed copies of pieces, to find the liar when the good copy arrives */
  private readonly failedCopies = new Map<number, { buf: Buffer; from: Array<string | undefined> }>();
  private readonly strikes = new Map<string, number>();
  /**
   * The bytes each source sent, by key, and so its name, kept after it is gone (a ban names
   * it): web seeds are named by URL (peerKey).
   */
  private readonly tallies = new Map<string, SourceBytes>();
  private readonly maxInFlight: number;
  private timer: NodeJS.Timeout | null = null;
  private finished = false;
  destroyed = false;
  /** pieces on disk that we offer (serve mode) */
  readonly servable: Bitfield;
  /** serve mode: who we upload to */
  private readonly slots: UploadSlots;
  private slotTimer: NodeJS.Timeout | null = null;
  /** the port we listen on: our own address, when a tracker echoes it, is not dialled */
  private readonly ownPort: number | null;
  private uploadedClosed = 0;
  private readonly pex: PexExchange | null;
  private readonly hasher: HashPool;
  private readonly ownsHasher: boolean;
  /** piece buffers: back here when a failed copy is dropped or a piece's consumer releases it */
  private readonly buffers: BufferPool;
  /** serve mode: blocks read back from the output directory (small: uploading is secondary here) */
  private readonly reads: ReadCache | null;
  /** serve mode, v2 and hybrid torrents: BEP 52 hash requests answered from the piece layers and the disk */
  private readonly hashServer: HashServer | null;
  /** v2 pieces that failed, held while a peer's leaf hashes say which block was bad */
  private readonly pins: BlockPins;
  /** v2 from a magnet: the piece layers still to fetch by hash requests (null when none) */
  private layers: LayerFetcher | null;

  constructor(options: SwarmOptions) {
    super();
    this.o = options;
    const t = options.torrent;
    this.torrent = t;
    this.peerId = options.peerId ?? makePeerId(randomBytes);
    this.have = new Bitfield(t.pieceCount);
    for (const i of options.have ?? []) this.have.set(i);
    this.servable = new Bitfield(t.pieceCount, this.have.bytes);
    this.reads = options.serve ? new ReadCache(options.serve, options.readCacheBytes ?? 8 * 1024 * 1024) : null;
    this.hashServer = this.reads !== null && t.version !== 1 ? new HashServer(this.hashSource(this.reads)) : null;
    this.hasher = options.hasher ?? new HashPool();
    this.ownsHasher = options.hasher === undefined;
    this.ownPort = options.port ?? null;
    const wanted = [...(options.wanted ?? Array.from({ length: t.pieceCount }, (_, i) => i))].filter((i) => !this.have.has(i));
    this.wantedTotal = wanted.length;
    this.maxInFlight = Math.max(options.maxInFlightBytes ?? 16 * 1024 * 1024, 2 * t.pieceLength);
    // in flight, plus a few verified pieces on their way to the disk
    this.buffers = new BufferPool(t.pieceLength, Math.ceil(this.maxInFlight / t.pieceLength) + 8);
    this.picker = new PiecePicker(t, wanted, {
      sequential: options.sequential,
      random: options.random,
      allocate: (size) => (size === this.buffers.size ? this.buffers.take() : Buffer.allocUnsafeSlow(size)),
    });
    this.scheduler = new RequestScheduler(this.picker, t.pieceLength, this.maxInFlight, () => this.peers.values());
    this.pins = new BlockPins(t, {
      peers: () => [...this.peers.values()].map((peer) => ({ key: peer.key, conn: peer.conn, has: (i: number) => peer.bits.has(i) })),
      isBanned: (key) => this.connector.isBanned(key),
      pinned: (p, bad, by) => this.onPinned(p, bad, by),
      unpinned: (p, why) => {
        if (this.destroyed) return;
        this.emit('log', `${why}; fetching piece ${p.index} again`, 'detail');
        this.restart(p, new Set(p.from.filter((k): k is string => k !== undefined)));
      },
    });
    // a v2 torrent from a magnet: its pieces are checked against layers the peers give first;
    // a hybrid's are checked by SHA-1, and its layers fetched only to answer v2 peers later
    const layers = t.version !== 1 && this.wantedTotal > 0 ? new LayerFetcher(t) : null;
    this.layers = layers?.missing ? layers : null;
    if (this.layers && t.version === 2) this.scheduler.ready = (i) => this.layers === null || this.layers.ready(i);
    this.connector = new Connector(
      { maxPeers: options.maxPeers ?? 50, halfOpen: options.halfOpen ?? 16, connectTimeoutMs: options.connectTimeoutMs ?? 5000, budget: options.budget, transports: options.transports },
      (socket, rec, reads, encrypt) => this.onSocket(socket, rec, reads, encrypt),
      (rec, reason) => this.emit('log', `${peerKey(rec)}: ${reason}`, 'peer'),
    );
    this.pex = t.private || options.pex === false
      ? null
      : new PexExchange({ onPeer: (rec) => this.addPeer(rec), isSeed: () => this.finished, peerIsSeed: (c) => this.peers.get(c.name)?.bits.complete ?? false });
    this.slots = new UploadSlots({ slots: options.slots, roundMs: options.roundSeconds === undefined ? undefined : options.roundSeconds * 1000, seeding: () => this.finished, random: options.random });
    this.timer = setInterval(() => this.tick(), options.tickMs ?? 1000);
    this.timer.unref();
    if (this.reads) {
      // often enough that a slot whose holder stopped reading goes to the next peer within ~1 s
      this.slotTimer = setInterval(() => this.slots.tick(), 250);
      this.slotTimer.unref();
    }
    if (this.wantedTotal === 0) queueMicrotask(() => this.finish());
  }

  private hashSource(reads: ReadCache): HashSource {
    return {
      torrent: this.torrent,
      has: (i) => this.servable.has(i),
      read: async (index, begin, length, use) => {
        const lease = await reads.read(index, begin, length);
        if (lease === null) return false;
        try {
          use(lease.block);
        } finally {
          reads.release(lease);
        }
        return true;
      },
    };
  }

  /** The hash incoming handshakes name (the session's listener routes by it). */
  get infoHash(): Buffer {
    return this.torrent.infoHash;
  }

  /** A hybrid is one swarm under both hashes: its v2 hash, truncated as on the wire, routes here too. */
  get aliases(): Buffer[] {
    const v2 = this.v2InfoHash;
    return v2 === undefined ? [] : [v2];
  }

  private get v2InfoHash(): Buffer | undefined {
    return this.torrent.version === 'hybrid' && this.torrent.infoHashV2 ? this.torrent.infoHashV2.subarray(0, 20) : undefined;
  }

  /** Connections open now (stats() has them too, with per-peer figures built for each call). */
  get connections(): number {
    return this.peers.size;
  }

  /** Pieces verified in this run. */
  get done(): number {
    return this.doneCount;
  }

  get wanted(): number {
    return this.wantedTotal;
  }

  get complete(): boolean {
    return this.finished;
  }

  /** Candidates queued, connections open or being opened. */
  get hasPeersLeft(): boolean {
    return this.peers.size > 0 || this.connector.pending > 0 || this.connector.connecting > 0;
  }

  /**
   * A candidate to dial. A swarm that wants nothing dials nobody: peers that want pieces come to
   * it. `local`: a peer of this process (a web seed), dialled through it instead of TCP.
   */
  addPeer(rec: PeerRecord, local?: LocalDial): void {
    if (this.destroyed || this.finished || (local === undefined && isOwnAddress(rec.ip, rec.port, this.ownPort))) return;
    if (this.connector.add(rec, local)) this.emit('peer', rec);
  }

  /**
   * Pieces to fetch before any other, most urgent first (a streaming reader's window); the
   * first `urgent` are also asked of a second peer while a block is outstanding. An empty list
   * goes back to rarest first. Requests go out now, not at the next block.
   */
  prioritize(pieces: readonly number[], urgent = 0): void {
    if (this.destroyed || this.finished) return;
    const keep: number[] = [];
    let u = 0;
    pieces.forEach((i, k) => {
      if (!this.picker.isWanted(i)) return;
      keep.push(i);
      if (k < urgent) u++;
    });
    this.picker.setPriority(keep, u);
    if (pieces.length > 0) this.scheduler.fillAll();
  }

  /** The consumer is full: start no new piece until resume(). */
  pause(): void {
    this.scheduler.paused = true;
  }

  resume(): void {
    if (!this.scheduler.paused) return;
    this.scheduler.paused = false;
    this.scheduler.fillAll();
  }

  stats(): SwarmStats {
    const now = Date.now();
    return {
      peers: this.peers.size,
      connecting: this.connector.connecting,
      candidates: this.connector.pending,
      done: this.doneCount,
      wanted: this.wantedTotal,
      downloaded: this.downloadedBytes,
      downRate: Math.round(this.rate.rate(now)),
      inFlight: this.picker.partials.size,
      hashFailures: this.hashFailures,
      banned: this.bannedCount,
      perPeer: [...this.peers.values()].map((p) => ({
        peer: p.name,
        client: p.conn.remote ? p.conn.remote.peerId.subarray(0, 8).toString('latin1').replace(/[^\x20-\x7e]/g, '?') : '',
        downRate: Math.round(p.rate.rate(now)),
        downloaded: p.conn.downloaded,
        queue: p.queue.size,
        outstanding: p.requests.size,
        choked: p.conn.peerChoking,
        snubbed: p.snubbed,
        pieces: p.bits.size,
        ...(p.rec.transport !== undefined ? { transport: p.rec.transport } : {}),
      })),
    };
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.slotTimer) clearInterval(this.slotTimer);
    this.connector.stop();
    this.pex?.destroy();
    if (this.ownsHasher) void this.hasher.close();
    for (const p of [...this.peers.values()]) p.conn.close(null);
    this.peers.clear();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.scheduler.stopped = true;
    this.emit('done');
    // serving on: the connections stay, but a peer that has everything wants nothing from us
    // (after 'done': its listeners take the figures of the peers that served the download)
    for (const p of [...this.peers.values()]) this.dropIfSeed(p);
  }

  /** Two seeds have nothing to say to each other. */
  private dropIfSeed(peer: Peer): void {
    if (this.finished && this.reads && peer.bits.complete) peer.conn.close(null);
  }

  private limits(): WireLimits {
    const t = this.torrent;
    return { pieceCount: t.pieceCount, pieceSize: (i) => pieceSize(t, i) };
  }

  private onSocket(socket: WireSocket, rec: PeerRecord, reads: ReadFeed | undefined, encrypt: boolean): void {
    const key = peerKey(rec);
    if (this.destroyed || this.finished) {
      socket.destroy();
      this.connector.release(key, rec, { retry: false, handshook: false, useful: false, hungUp: false });
      return;
    }
    const conn = new PeerConnection(socket, {
      peerId: this.peerId,
      infoHash: this.torrent.infoHash,
      v2InfoHash: this.v2InfoHash,
      limits: this.limits(),
      reads,
      outgoing: true,
      name: key,
      encrypt: encrypt ? CRYPTO_PLAINTEXT | CRYPTO_RC4 : undefined,
      extendedHandshake: this.extendedHandshake(),
      dhtPort: this.o.dhtPort,
      bandwidth: this.o.bandwidth,
    });
    this.attach(conn, key, rec);
  }

  private extendedHandshake(): Record<string, BValue> {
    const p = this.ownPort ?? this.o.port;
    return { v: Buffer.from(CLIENT_VERSION), reqq: this.o.serve ? MAX_QUEUED_REQUESTS : 500, ...(p ? { p } : {}) };
  }

  /**
   * An incoming connection whose handshake names this torrent (the session's listener routes
   * it here): taken, with the limits its messages are checked against, or refused (null).
   */
  adopt(conn: PeerConnection, rec: PeerRecord): WireLimits | null {
    const key = peerKey(rec);
    // full: a connection useless to both sides makes room, else the newcomer is turned away
    const full = this.peers.size >= (this.o.maxPeers ?? 50);
    if (this.destroyed || this.connector.isBanned(key) || (full && !this.slots.dropForNewcomer()) || !this.connector.claim(key)) return null;
    conn.setBandwidth(this.o.bandwidth);
    this.attach(conn, key, rec);
    return this.limits();
  }

  /**
   * A connection the magnet's metadata step opened (hand-over.ts): taken as it is, with what
   * the peer said of its pieces replayed, now that they can be checked; false if refused.
   */
  takeOver(handed: HandedPeer): boolean {
    const pieces = handed.take();
    if (pieces === null) return false;
    const { conn, rec } = handed;
    const key = peerKey(rec);
    if (this.destroyed || this.finished || this.peers.has(key) || !this.connector.adopt(key, rec, handed.budgeted, conn.encryption !== 'none')) {
      if (handed.budgeted) this.o.budget?.give();
      conn.close(null);
      return false;
    }
    conn.setLimits(this.limits());
    conn.setBandwidth(this.o.bandwidth);
    const peer = this.attach(conn, key, rec, true);
    if (conn.remoteExtended !== null) takeReqq(peer, conn.remoteExtended);
    // what we have (a resumed download): `have` messages, valid at any time
    const bits = this.o.serve ? this.servable : this.have;
    for (const i of bits.indexes()) conn.send({ type: 'have', index: i });
    // what it has, checked now that the piece count is known, as if it came now
    const n = this.torrent.pieceCount;
    const beyond = pieces.haves.find((i) => i >= n);
    const bad = (pieces.bitfield !== null ? bitfieldProblem(pieces.bitfield, n) : null) ?? (beyond !== undefined ? `have for piece ${beyond} of ${n}` : null);
    if (bad !== null) {
      conn.close(closeReason('violation', bad));
      return false;
    }
    if (pieces.haveAll) this.onMessage(peer, { type: 'have-all' });
    else if (pieces.bitfield !== null) this.onMessage(peer, { type: 'bitfield', bits: pieces.bitfield });
    for (const index of pieces.haves) this.onMessage(peer, { type: 'have', index });
    return !conn.closed;
  }

  private attach(conn: PeerConnection, key: string, rec: PeerRecord, takenOver = false): Peer {
    const exts: WireExtension[] = [new UtMetadata({ info: () => this.torrent.infoRaw })];
    if (this.pex) exts.push(this.pex.extension(conn, rec));
    exts.push(...(this.o.extensions?.(conn, rec) ?? []));
    if (takenOver) conn.replaceExtensions(exts);
    else for (const ext of exts) conn.use(ext);
    const name = key;
    let tally = this.tallies.get(key);
    if (tally === undefined) {
      tally = { peer: name, bytes: 0, ...(rec.url !== undefined ? { webSeed: true } : {}) };
      // bounded like the peers it counts: one entry per key ever attached, capped; a web seed
      // is always kept, or a ban could not name it
      if (this.tallies.size < 10_000 || rec.url !== undefined) this.tallies.set(key, tally);
    }
    if (rec.transport !== undefined) tally.transport = rec.transport;
    const peer: Peer = {
      key, name, tally, rec, conn,
      bits: new Bitfield(this.torrent.pieceCount),
      requests: new Map(),
      asked: new Map(),
      rate: new RateMeter(5),
      lastBlock: Date.now(),
      snubbed: false,
      queue: new RequestQueue(this.o.queueSeconds ?? 3),
      reqq: 250,
      useful: false,
      allowedFast: new Set(),
      holder: null,
      // a web seed is asked for runs of consecutive pieces: one HTTP request each (picker.ts)
      runs: rec.source === 'webseed',
    };
    if (this.reads) {
      peer.holder = {
        id: key,
        uploader: new Uploader(conn, this.reads, this.servable, this.o.fault, this.hashServer),
        downloadRate: (now) => peer.rate.rate(now),
        // it has pieces we want, or is sending some: worth keeping whatever it takes
        useful: () => peer.useful || peer.requests.size > 0,
      };
      this.slots.add(peer.holder);
    }
    this.peers.set(key, peer);
    conn.on('handshake', () => this.onHandshake(peer));
    conn.on('message', (m) => this.onMessage(peer, m));
    conn.on('extended-handshake', (d) => takeReqq(peer, d));
    conn.on('close', (reason) => this.onClose(peer, reason));
    return peer;
  }

  /** Serve mode: piece `index` is now on disk; offer it to everyone. */
  markWritten(index: number): void {
    if (!this.servable.set(index)) return;
    this.emit('written', index);
    for (const peer of this.peers.values()) if (peer.conn.remote && !peer.bits.has(index)) peer.conn.send({ type: 'have', index });
  }

  /** Bytes uploaded to peers (serve mode). */
  get uploaded(): number {
    let n = this.uploadedClosed;
    for (const p of this.peers.values()) n += p.conn.uploaded;
    return n;
  }

  uploadRate(): number {
    let r = 0;
    for (const p of this.peers.values()) r += p.holder?.uploader.rate.rate() ?? 0;
    return r;
  }

  private onHandshake(peer: Peer): void {
    const c = peer.conn;
    // in serve mode only what is on disk is offered
    const bits = this.o.serve ? this.servable : this.have;
    if (bits.size > 0) {
      if (c.fast && bits.complete) c.send({ type: 'have-all' });
      else c.send({ type: 'bitfield', bits: bits.toBuffer() });
    } else if (c.fast) {
      c.send({ type: 'have-none' });
    }
  }

  private onClose(peer: Peer, reason: CloseReason | null): void {
    if (this.peers.get(peer.key) !== peer) return;
    this.peers.delete(peer.key);
    if (peer.holder) this.slots.remove(peer.holder);
    this.uploadedClosed += peer.conn.uploaded;
    this.scheduler.forget(peer);
    this.picker.addBitfield((i) => peer.bits.has(i), -1);
    if (reason?.kind === 'ourselves') {
      this.connector.ban(peer.key); // our own address, as a tracker lists us: not worth a line
      reason = null;
    }
    // a ban has its own line (strike), said once: its close would say it again; a leecher
    // leaving a seed (closed, reset, broken pipe) is the normal end of its download
    const routine = reason?.kind === 'banned' || (this.finished && reason?.kind === 'hang-up');
    if (reason !== null && !routine && !this.destroyed) this.emit('log', `${peer.name}: ${describeClose(reason)}`, 'peer');
    // whatever ended it (a hang-up, a timeout, even a violation: our own bookkeeping once took
    // honest answers for one), the peer is dialled again with back-off; only a ban is final.
    // An incoming connection's address is not one to dial (its port is the peer's own pick).
    this.connector.release(peer.key, peer.rec, {
      retry: peer.conn.outgoing && reason !== null && !this.finished && !this.destroyed,
      handshook: peer.conn.remote !== null,
      useful: peer.conn.downloaded > 0,
      hungUp: reason?.kind === 'hang-up',
    });
    this.layers?.onClose(peer.conn);
    this.pins.onClose(peer.key);
    // others may now take the released blocks
    this.scheduler.fillAll();
  }

  private onMessage(peer: Peer, m: WireMessage): void {
    switch (m.type) {
      case 'bitfield': {
        this.picker.addBitfield((i) => peer.bits.has(i), -1);
        const bits = new Bitfield(this.torrent.pieceCount, m.bits);
        peer.bits = bits;
        this.picker.addBitfield((i) => bits.has(i), 1);
        this.updateInterest(peer);
        this.dropIfSeed(peer);
        break;
      }
      case 'have-all':
        peer.bits.setAll();
        this.picker.addBitfield(() => true, 1);
        this.updateInterest(peer);
        this.dropIfSeed(peer);
        break;
      case 'have-none':
        break;
      case 'have':
        if (peer.bits.set(m.index)) {
          this.picker.addHave(m.index);
          if (!peer.conn.amInterested && this.picker.isWanted(m.index)) this.updateInterest(peer);
          else this.scheduler.fill(peer);
          this.dropIfSeed(peer);
        }
        break;
      case 'unchoke':
        this.scheduler.fill(peer);
        break;
      case 'choke':
        // without BEP 6 a choke drops every request; with it each is still answered or
        // rejected (BEP 6), so they stay ours until then
        if (!peer.conn.fast) this.scheduler.releaseAll(peer);
        break;
      case 'reject':
        this.scheduler.rejected(peer, m.index, m.begin);
        break;
      case 'allowed-fast':
        peer.allowedFast.add(m.index);
        break;
      case 'port':
        if (m.port > 0) this.emit('dht-node', { ip: peer.conn.socket.remoteAddress ?? peer.rec.ip, port: m.port });
        break;
      case 'piece':
        this.onBlock(peer, m.index, m.begin, m.block);
        break;
      case 'hashes':
        this.onHashes(peer, m);
        break;
      case 'hash-reject':
        if (this.pins.onReject(peer.key, m)) break;
        this.layers?.onReject(peer.conn, m);
        this.askLayers(peer);
        break;
      default:
        break; // requests are the uploader's business (seed, --serve-from)
    }
    if (this.layers !== null && (m.type === 'bitfield' || m.type === 'have-all' || m.type === 'have')) this.askLayers(peer);
  }

  private askLayers(peer: Peer): void {
    const v2 = this.torrent.infoHashV2?.subarray(0, 20);
    if (v2 !== undefined && isV2Connection(peer.conn, v2)) this.layers?.ask(peer.conn, (i) => peer.bits.has(i));
  }

  private onHashes(peer: Peer, m: WireMessage & { type: 'hashes' }): void {
    const pinned = this.pins.onHashes(peer.key, m);
    if (pinned === 'bad') peer.conn.close(closeReason('violation', 'leaf hashes that do not prove the piece-layer node'));
    if (pinned !== null || this.layers === null) return;
    const r = this.layers.onHashes(peer.conn, m);
    if (r.kind === 'bad') {
      peer.conn.close(closeReason('violation', r.why));
      return;
    }
    if (r.kind === 'stored' && r.done !== null) {
      this.emit('log', `piece layer of ${r.done.path.join('/')} fetched by hash requests`, 'detail');
      if (!this.layers.missing) {
        this.layers = null;
        this.emit('layers');
      }
      this.scheduler.fillAll();
    }
    if (this.layers !== null) this.askLayers(peer);
  }

  private updateInterest(peer: Peer): void {
    let wants = false;
    for (let i = 0; i < this.torrent.pieceCount && !wants; i++) if (peer.bits.has(i) && this.picker.isWanted(i)) wants = true;
    peer.useful = wants;
    if (wants && !peer.conn.amInterested) peer.conn.send({ type: 'interested' });
    else if (!wants && peer.conn.amInterested) peer.conn.send({ type: 'not-interested' });
    this.scheduler.fill(peer);
  }

  private onBlock(peer: Peer, index: number, begin: number, block: Buffer): void {
    const mine = this.scheduler.answer(peer, index, begin, block.length);
    if (typeof mine === 'string' && mine !== 'late') {
      peer.conn.close(closeReason('violation', mine));
      return;
    }
    const now = Date.now();
    peer.rate.add(block.length, now);
    this.rate.add(block.length, now);
    peer.lastBlock = now;
    peer.snubbed = false;
    if (mine !== 'late') peer.queue.onBlock();
    this.downloadedBytes += block.length;
    peer.tally.bytes += block.length;
    const r = this.picker.receive(index, begin, block, peer.key);
    // the first copy in wins: end-game copies, or a request this late answer overtook, go
    if (r !== 'dup' && r !== 'unwanted' && (mine === 'late' || this.picker.prioritized || this.picker.endgame)) {
      this.scheduler.cancelDuplicates(peer, { index, begin, length: block.length });
    }
    if (r !== null && typeof r === 'object') this.onPieceComplete(r);
    this.scheduler.fillSoon(peer);
  }

  /** The last block is in: hash the piece on the hashing thread, then judge it. */
  private onPieceComplete(p: PartialPiece): void {
    const check = pieceCheck(this.torrent, p.index);
    if (check.kind === 'pending') {
      // nothing to judge it by yet (a v2 piece layer not fetched): fetch it again later
      this.emit('log', `piece ${p.index}: ${check.why}; fetching it again`, 'detail');
      this.buffers.give(p.buf);
      this.picker.reset(p);
      return;
    }
    // a merkle piece's leaf hashes come back too: if it fails, they pin the bad block
    this.hasher.digest(p.buf, check.digest, check.kind === 'merkle').then(
      ({ digest, data, leaves }) => {
        p.buf = data;
        if (!this.destroyed) this.onPieceHashed(p, digest.equals(check.want), leaves);
      },
      (e: Error) => {
        // the hashing thread died with the bytes: fetch the piece again
        if (this.destroyed) return;
        this.emit('log', `hashing thread: ${e.message}; fetching piece ${p.index} again`, 'notice');
        this.picker.reset(p);
        this.scheduler.fillAll();
      },
    );
  }

  private onPieceHashed(p: PartialPiece, ok: boolean, leaves?: Buffer): void {
    if (!ok) {
      this.hashFailures++;
      const senders = new Set(p.from.filter((x): x is string => x !== undefined));
      // the pieces a liar had in flight when it was banned fail one by one after its ban: news
      // only with -v (a liar with 40 pieces in flight was 40 notices)
      const news = senders.size === 0 || [...senders].some((k) => !this.connector.isBanned(k));
      // several senders of a v2 piece: its leaf hashes, from a peer, say whose block was bad
      const pinning = senders.size > 1 && leaves !== undefined && this.pins.start(p, leaves);
      this.emit('log', `piece ${p.index} failed its hash check (blocks from ${[...new Set(p.from)].map((k) => (k === undefined ? k : this.nameOf(k))).join(', ')}); ${pinning ? 'asking a peer for its leaf hashes' : 'fetching it again'}`, news ? 'notice' : 'detail');
      if (!pinning) this.restart(p, senders);
      return;
    }
    this.picker.finish(p);
    // its buffer no longer counts against the in-flight bound: a new piece may start now, not
    // at the next block or tick (with every started piece complete and hashing, none comes)
    if (!this.picker.finished) this.scheduler.fillAllSoon();
    const failed = this.failedCopies.get(p.index);
    if (failed) {
      // the good copy is here: whoever sent a block that differs sent bad data
      this.failedCopies.delete(p.index);
      for (let b = 0; b < failed.from.length; b++) {
        const a = b * BLOCK;
        const end = Math.min(a + BLOCK, p.size);
        if (!failed.buf.subarray(a, end).equals(p.buf.subarray(a, end)) && failed.from[b]) this.strike(failed.from[b]!, 2);
      }
      this.buffers.give(failed.buf);
    }
    this.have.set(p.index);
    this.doneCount++;
    // no `have` to a peer that has the piece (libtorrent's default too): to seeds it is only a
    // syscall per piece per peer
    if (!this.o.serve) for (const peer of this.peers.values()) if (peer.conn.remote && !peer.bits.has(p.index)) peer.conn.send({ type: 'have', index: p.index });
    this.emit('piece', { index: p.index, piece: this.buffers.lease(p.buf) });
    if (this.picker.finished) this.finish();
  }

  /** A failed piece starts again; with several senders its copy is kept to compare with the good one. */
  private restart(p: PartialPiece, senders: Set<string>): void {
    if (senders.size === 1) this.strike([...senders][0]!, 2);
    if (senders.size > 1 && !this.failedCopies.has(p.index)) this.failedCopies.set(p.index, { buf: p.buf, from: [...p.from] });
    else this.buffers.give(p.buf);
    this.picker.reset(p);
    this.scheduler.fillAll();
  }

  /** The leaf hashes proved blocks `bad` of held piece `p` wrong: their senders are to blame, the rest is kept. */
  private onPinned(p: PartialPiece, bad: number[], by: string): void {
    for (const b of bad) {
      const from = p.from[b];
      this.emit('log', `piece ${p.index}: block ${b} from ${from === undefined ? 'nobody' : this.nameOf(from)} does not match its leaf hash (proved by ${this.nameOf(by)}); fetching that block again`, 'detail');
      if (from !== undefined) this.strike(from, 2);
    }
    this.picker.refetch(p, bad);
    this.scheduler.fillAll();
  }

  /**
   * Counts bad data against `key`; enough of it bans the peer, once: its other pieces in flight
   * fail after the ban, and each would otherwise ban it again (one line and one count each).
   */
  private strike(key: string, weight: number): void {
    if (this.connector.isBanned(key)) return;
    const n = (this.strikes.get(key) ?? 0) + weight;
    this.strikes.set(key, n);
    if (n >= 2) {
      this.connector.ban(key);
      this.bannedCount++;
      this.emit('log', `${this.nameOf(key)}: banned: sent data that failed the hash check`, 'notice');
      this.peers.get(key)?.conn.close(closeReason('banned', 'banned'));
    }
  }

  /** How a peer is named in logs: a web seed by its URL (kept after it is gone: a ban names it). */
  private nameOf(key: string): string {
    return this.tallies.get(key)?.peer ?? key;
  }

  /** Payload bytes per source in this run, web seeds named by URL, largest first. */
  sources(): SourceBytes[] {
    return [...this.tallies.values()].filter((s) => s.bytes > 0).sort((a, b) => b.bytes - a.bytes).map((s) => ({ ...s }));
  }

  /** Once a second: resize queues from measured rates, detect snubs, drop useless peers. */
  private tick(): void {
    const now = Date.now();
    this.pins.tick(now);
    const snubMs = this.o.snubMs ?? 15_000;
    for (const p of this.peers.values()) {
      p.queue.onTick(p.rate.rate(now));
      if (p.requests.size > 0 && now - p.lastBlock > snubMs && !p.snubbed) {
        p.snubbed = true;
        this.emit('log', `${p.name}: snubbed (no data for ${Math.round(snubMs / 1000)} s); its requests go to others`, 'peer');
        this.scheduler.releaseAll(p);
      }
      this.scheduler.fill(p);
      // a layer chunk whose peer went quiet goes to another
      if (this.layers !== null) this.askLayers(p);
    }
  }
}

/** The request queue the peer says it keeps (BEP 10 `reqq`), believed up to 500. */
function takeReqq(peer: Peer, handshake: BDict): void {
  const q = handshake.get('reqq');
  if (typeof q === 'number' && q > 0) peer.reqq = Math.min(q, 500);
}
