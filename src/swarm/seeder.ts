/**
 * Serving a torrent to many peers: a listening socket, one Uploader per connection, and the
 * BEP 3 choking algorithm deciding who gets upload slots (every 10 s; optimistic every 30 s).
 * Memory per peer is bounded (a few blocks read ahead, a capped socket buffer), so the number
 * of peers, not the torrent size, sets the footprint, and the peer count is capped.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { pieceSize } from '../metainfo/pieces.js';
import type { Torrent } from '../metainfo/torrent.js';
import type { FileStore } from '../storage/file-store.js';
import { ReadCache } from '../storage/read-cache.js';
import { PeerConnection, isHangUp, type WireExtension } from '../wire/peer-connection.js';
import { CLIENT_VERSION, makePeerId } from '../wire/protocol.js';
import { UtMetadata } from '../wire/ut-metadata.js';
import { PexExchange } from './pex.js';
import type { Bitfield } from './bitfield.js';
import { Choker } from './choker.js';
import { MAX_QUEUED_REQUESTS, Uploader, type Fault } from './uploader.js';

export interface SeederOptions {
  torrent: Torrent;
  store: FileStore;
  have: Bitfield;
  peerId?: Buffer;
  maxPeers?: number;
  /** regular unchoke slots (default 4) */
  slots?: number;
  /** seconds between choking rounds (default 10) */
  roundSeconds?: number;
  /** extensions each connection gets besides ut_metadata (serving this torrent) and ut_pex */
  extensions?: (conn: PeerConnection) => WireExtension[];
  fault?: Fault;
}

export interface SeederEvents {
  log: [string];
  peer: [PeerConnection];
}

export class Seeder extends EventEmitter<SeederEvents> {
  readonly peerId: Buffer;
  private readonly o: SeederOptions;
  private readonly uploaders = new Set<Uploader>();
  private readonly choker: Choker;
  private readonly servers: Server[] = [];
  private timer: NodeJS.Timeout | null = null;
  private connectedAt = new WeakMap<Uploader, number>();
  private readonly pex: PexExchange | null;
  private readonly reads: ReadCache;

  constructor(options: SeederOptions) {
    super();
    this.o = options;
    this.peerId = options.peerId ?? makePeerId(randomBytes);
    this.choker = new Choker({ slots: options.slots ?? 4 });
    this.reads = new ReadCache(options.store);
    this.timer = setInterval(() => this.round(), (options.roundSeconds ?? 10) * 1000);
    this.timer.unref();
    this.pex = options.torrent.private ? null : new PexExchange({ onPeer: () => {}, isSeed: () => true });
  }

  get peers(): number {
    return this.uploaders.size;
  }

  get uploaded(): number {
    let n = 0;
    for (const u of this.uploaders) n += u.conn.uploaded;
    return n + this.closedUploaded;
  }

  private closedUploaded = 0;

  uploadRate(): number {
    let r = 0;
    for (const u of this.uploaders) r += u.rate.rate();
    return r;
  }

  /** Listens on `port` on every address (IPv6 and IPv4); resolves with the port bound. */
  async listen(port: number, host?: string): Promise<number> {
    const server = createServer((s) => this.accept(s));
    this.servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host, ipv6Only: false }, () => resolve());
    });
    server.on('error', (e) => this.emit('log', `listen: ${e.message}`));
    const addr = server.address();
    return typeof addr === 'object' && addr !== null ? addr.port : port;
  }

  /** Serves an already connected socket (an incoming connection accepted elsewhere). */
  accept(socket: Socket): void {
    if (this.uploaders.size >= (this.o.maxPeers ?? 100)) {
      socket.destroy();
      return;
    }
    const t = this.o.torrent;
    const conn = new PeerConnection(socket, {
      peerId: this.peerId,
      outgoing: false,
      skeys: [t.infoHash],
      accept: (h) => (h.equals(t.infoHash) ? { pieceCount: t.pieceCount, pieceSize: (i) => pieceSize(t, i) } : null),
      extendedHandshake: { v: Buffer.from(CLIENT_VERSION), reqq: MAX_QUEUED_REQUESTS },
    });
    conn.use(new UtMetadata({ info: () => t.infoRaw }));
    // a seed dials nobody, but telling leechers of each other helps them (never for private torrents)
    if (this.pex) conn.use(this.pex.extension(conn, null));
    for (const ext of this.o.extensions?.(conn) ?? []) conn.use(ext);
    const up = new Uploader(conn, this.reads, this.o.have, this.o.fault);
    this.uploaders.add(up);
    this.connectedAt.set(up, Date.now());
    conn.on('handshake', () => {
      if (this.o.have.complete && conn.fast) conn.send({ type: 'have-all' });
      else if (this.o.have.size === 0 && conn.fast) conn.send({ type: 'have-none' });
      else conn.send({ type: 'bitfield', bits: this.o.have.toBuffer() });
      this.emit('peer', conn);
    });
    conn.on('message', (m) => {
      // a newly interested peer gets a free slot at once rather than waiting for the round
      if (m.type === 'interested' && conn.amChoking && this.unchokedCount() < (this.o.slots ?? 4) + 1) up.unchoke();
    });
    conn.on('close', (reason) => {
      this.uploaders.delete(up);
      this.closedUploaded += conn.uploaded;
      // peers leaving (closed, reset, broken pipe) is the normal end of a download
      if (reason !== null && !isHangUp(reason)) this.emit('log', `${conn.name}: ${reason}`);
    });
  }

  private unchokedCount(): number {
    let n = 0;
    for (const u of this.uploaders) if (!u.conn.amChoking) n++;
    return n;
  }

  /** One choking round. */
  round(): void {
    const now = Date.now();
    const list = [...this.uploaders];
    const unchoke = this.choker.decide(
      list.map((u) => ({
        id: u.conn.name,
        interested: u.conn.peerInterested,
        downloadRate: 0,
        uploadRate: u.rate.rate(now),
        isNew: now - (this.connectedAt.get(u) ?? 0) < 60_000,
      })),
      true,
    );
    for (const u of list) (unchoke.has(u.conn.name) ? u.unchoke() : u.choke());
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.pex?.destroy();
    for (const u of this.uploaders) u.conn.close(null);
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}
