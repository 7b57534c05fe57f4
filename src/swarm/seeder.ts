/**
 * Serving a torrent to many peers: a listening socket, one Uploader per connection, and the
 * upload slots (upload-slots.ts) deciding who is unchoked: at once when a slot is free, by
 * BEP 3 rounds otherwise, never for long to a peer that does not read. Memory per peer is
 * bounded (a few blocks read ahead, a capped socket buffer), so the number of peers, not the
 * torrent size, sets the footprint; the peer count is capped, and when it is full a useless
 * connection makes room for a newcomer.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { pieceSize } from '../metainfo/pieces.js';
import type { Torrent } from '../metainfo/torrent.js';
import type { FileStore } from '../storage/file-store.js';
import { ReadCache } from '../storage/read-cache.js';
import { describeClose } from '../wire/close-reason.js';
import { PeerConnection, type WireExtension } from '../wire/peer-connection.js';
import { CLIENT_VERSION, makePeerId } from '../wire/protocol.js';
import { UtMetadata } from '../wire/ut-metadata.js';
import { PexExchange } from './pex.js';
import type { Bitfield } from './bitfield.js';
import { MAX_QUEUED_REQUESTS, Uploader, type Fault } from './uploader.js';
import { UploadSlots, type SlotHolder } from './upload-slots.js';
import type { LogLevel } from '../log.js';

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
  log: [line: string, level: LogLevel];
  peer: [PeerConnection];
}

export class Seeder extends EventEmitter<SeederEvents> {
  readonly peerId: Buffer;
  private readonly o: SeederOptions;
  private readonly holders = new Set<SlotHolder>();
  private readonly slots: UploadSlots;
  private readonly servers: Server[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly pex: PexExchange | null;
  private readonly reads: ReadCache;
  private closedUploaded = 0;

  constructor(options: SeederOptions) {
    super();
    this.o = options;
    this.peerId = options.peerId ?? makePeerId(randomBytes);
    this.slots = new UploadSlots({ slots: options.slots ?? 4, roundMs: (options.roundSeconds ?? 10) * 1000, seeding: () => true });
    this.reads = new ReadCache(options.store);
    // often enough that a slot whose holder stopped reading goes to the next peer within ~1 s
    this.timer = setInterval(() => this.slots.tick(), 250);
    this.timer.unref();
    this.pex = options.torrent.private ? null : new PexExchange({ onPeer: () => {}, isSeed: () => true });
  }

  get peers(): number {
    return this.holders.size;
  }

  get uploaded(): number {
    let n = 0;
    for (const h of this.holders) n += h.uploader.conn.uploaded;
    return n + this.closedUploaded;
  }

  uploadRate(): number {
    let r = 0;
    for (const h of this.holders) r += h.uploader.rate.rate();
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
    server.on('error', (e) => this.emit('log', `listen: ${e.message}`, 'notice'));
    const addr = server.address();
    return typeof addr === 'object' && addr !== null ? addr.port : port;
  }

  /** Serves an already connected socket (an incoming connection accepted elsewhere). */
  accept(socket: Socket): void {
    // full: an idle or useless connection makes room, else the newcomer is turned away
    if (this.holders.size >= (this.o.maxPeers ?? 100) && !this.slots.dropForNewcomer()) {
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
    const holder: SlotHolder = {
      id: conn.name,
      uploader: new Uploader(conn, this.reads, this.o.have, this.o.fault),
      downloadRate: () => 0,
      useful: () => false,
    };
    this.holders.add(holder);
    this.slots.add(holder);
    conn.on('handshake', () => {
      if (this.o.have.complete && conn.fast) conn.send({ type: 'have-all' });
      else if (this.o.have.size === 0 && conn.fast) conn.send({ type: 'have-none' });
      else conn.send({ type: 'bitfield', bits: this.o.have.toBuffer() });
      this.emit('peer', conn);
    });
    conn.on('close', (reason) => {
      this.holders.delete(holder);
      this.slots.remove(holder);
      this.closedUploaded += conn.uploaded;
      // peers leaving (closed, reset, broken pipe) is the normal end of a download
      if (reason !== null && reason.kind !== 'hang-up') this.emit('log', `${conn.name}: ${describeClose(reason)}`, 'peer');
    });
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.pex?.destroy();
    for (const h of this.holders) h.uploader.conn.close(null);
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}
