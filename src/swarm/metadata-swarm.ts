/**
 * Getting a magnet's metadata: dial the peers we are given (and those PEX tells of), speak
 * ut_metadata to every one that offers it, and stop as soon as the MetadataFetcher has a copy
 * that matches the info hash. Knows nothing of pieces: until the metadata is here the piece
 * count is unknown, so wire messages are only checked for framing.
 */
import type { LogLevel } from '../log.js';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { peerKey, type PeerRecord } from '../peers/record.js';
import { CRYPTO_PLAINTEXT, CRYPTO_RC4 } from '../wire/mse.js';
import { closeReason, describeClose, type CloseReason } from '../wire/close-reason.js';
import type { WireSocket } from '../wire/memory-pipe.js';
import { PeerConnection, type ReadFeed } from '../wire/peer-connection.js';
import type { WireLimits } from '../wire/frame-decoder.js';
import { CLIENT_VERSION, makePeerId } from '../wire/protocol.js';
import { Connector, type Transports } from './connector.js';
import { MetadataFetcher } from './metadata-fetcher.js';
import { PexExchange } from './pex.js';
import { HandedPeer, PieceRecorder } from './hand-over.js';
import type { ConnectionBudget } from '../session/budget.js';
import type { Bandwidth } from '../wire/bandwidth.js';

export interface MetadataSwarmOptions {
  infoHash: Buffer;
  infoHashV2?: Buffer;
  peerId?: Buffer;
  maxPeers?: number;
  /** largest metadata_size believed (default 8 MiB) */
  maxSize?: number;
  /** our listening port, advertised in the extended handshake */
  port?: number;
  /** learn peers by PEX meanwhile (default true) */
  pex?: boolean;
  /** connections at most across the torrents of a session */
  budget?: ConnectionBudget | null;
  /** the rate limits its connections are charged to */
  bandwidth?: Bandwidth;
  /** how peers are dialled (default TCP only) */
  transports?: Transports;
}

export interface MetadataSwarmEvents {
  metadata: [Buffer];
  /** a peer added as a candidate (given, or learnt by PEX) */
  peer: [PeerRecord];
  log: [line: string, level: LogLevel];
}

export class MetadataSwarm extends EventEmitter<MetadataSwarmEvents> {
  readonly peerId: Buffer;
  private readonly o: MetadataSwarmOptions;
  private readonly connector: Connector;
  private readonly fetcher: MetadataFetcher;
  private readonly pex: PexExchange | null;
  /** open connections, and how to let go of one without closing it (handOver) */
  private readonly conns = new Map<PeerConnection, { key: string; rec: PeerRecord; recorder: PieceRecorder; detach: () => void }>();
  /** peer → what became of it, for the summary when nobody delivered */
  private readonly outcomes = new Map<string, string>();
  destroyed = false;

  constructor(options: MetadataSwarmOptions) {
    super();
    this.o = options;
    this.peerId = options.peerId ?? makePeerId(randomBytes);
    this.fetcher = new MetadataFetcher({ infoHash: options.infoHash, infoHashV2: options.infoHashV2, maxSize: options.maxSize });
    this.fetcher.on('log', (m, level) => this.emit('log', m, level));
    this.fetcher.once('metadata', (buf) => {
      // no more dials; the connections stay until handed over to the torrent, or destroy()
      this.connector.stop();
      this.emit('metadata', buf);
    });
    this.pex = options.pex === false ? null : new PexExchange({ onPeer: (rec) => this.addPeer(rec) });
    this.connector = new Connector(
      { maxPeers: options.maxPeers ?? 50, halfOpen: 16, connectTimeoutMs: 5000, maxAttempts: 2, budget: options.budget, transports: options.transports },
      (socket, rec, reads, encrypt) => this.onSocket(socket, rec, reads, encrypt),
      (rec, reason) => this.outcomes.set(peerKey(rec), reason),
    );
  }

  get metadata(): Buffer | null {
    return this.fetcher.metadata;
  }

  /** Candidates queued, connections open or being opened. */
  get hasPeersLeft(): boolean {
    return this.conns.size > 0 || this.connector.pending > 0 || this.connector.connecting > 0;
  }

  addPeer(rec: PeerRecord): void {
    if (this.destroyed) return;
    if (this.connector.add(rec)) {
      this.outcomes.set(peerKey(rec), 'not reached yet');
      this.emit('peer', rec);
    }
  }

  /** e.g. "3 peers tried: 127.0.0.1:6881: ECONNREFUSED; …" */
  summary(): string {
    if (this.outcomes.size === 0) return 'no peers were given';
    const list = [...this.outcomes].slice(0, 8).map(([k, v]) => `${k}: ${v}`);
    const more = this.outcomes.size > 8 ? `; and ${this.outcomes.size - 8} more` : '';
    return `${this.outcomes.size} peer${this.outcomes.size === 1 ? '' : 's'} tried: ${list.join('; ')}${more}`;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.connector.stop();
    this.fetcher.destroy();
    this.pex?.destroy();
    for (const c of [...this.conns.keys()]) c.close(null);
  }

  /**
   * The handshaken connections, for the torrent's swarm to take over (hand-over.ts), with what
   * each peer said of its pieces so far; this swarm lets go of them without closing them.
   */
  handOver(): HandedPeer[] {
    const out: HandedPeer[] = [];
    for (const [conn, c] of [...this.conns]) {
      if (conn.remote === null || conn.closed) continue;
      c.detach();
      this.conns.delete(conn);
      const budgeted = this.connector.handOff(c.key);
      out.push(new HandedPeer({ conn, rec: c.rec, recorder: c.recorder, budgeted, budget: this.o.budget ?? null }));
    }
    return out;
  }

  private onSocket(socket: WireSocket, rec: PeerRecord, reads: ReadFeed | undefined, encrypt: boolean): void {
    const key = peerKey(rec);
    if (this.destroyed) {
      socket.destroy();
      this.connector.release(key, rec, { retry: false, handshook: false, useful: false, hungUp: false });
      return;
    }
    const v2 = this.o.infoHashV2?.subarray(0, 20);
    const conn = new PeerConnection(socket, {
      peerId: this.peerId,
      infoHash: this.o.infoHash,
      // a hybrid's magnet (btih and btmh): offer the v2 upgrade, so that a v2 peer's connection
      // can carry BEP 52 hash requests for the piece layers afterwards
      v2InfoHash: v2 !== undefined && !v2.equals(this.o.infoHash) ? v2 : undefined,
      reads,
      outgoing: true,
      name: key,
      encrypt: encrypt ? CRYPTO_PLAINTEXT | CRYPTO_RC4 : undefined,
      extendedHandshake: { v: Buffer.from(CLIENT_VERSION), ...(this.o.port ? { p: this.o.port } : {}) },
      bandwidth: this.o.bandwidth,
    });
    this.watch(conn, key, rec);
  }

  /** The hash incoming handshakes name (the session's listener routes by it). */
  get infoHash(): Buffer {
    return this.o.infoHash;
  }

  /**
   * An incoming connection for this magnet (a peer that found us by the DHT or a tracker): it
   * may have the metadata, so it is asked like the peers we dial. Limits: none known yet.
   */
  adopt(conn: PeerConnection, rec: PeerRecord): WireLimits | null {
    const key = peerKey(rec);
    if (this.destroyed || this.fetcher.metadata !== null || !this.connector.claim(key)) return null;
    conn.setBandwidth(this.o.bandwidth);
    this.watch(conn, key, rec);
    return {};
  }

  /** Metadata exchange (and PEX) on a connection, ours or incoming, until it closes or is handed over. */
  private watch(conn: PeerConnection, key: string, rec: PeerRecord): void {
    this.outcomes.set(key, 'connected');
    conn.use(this.fetcher.extension(conn));
    if (this.pex) conn.use(this.pex.extension(conn, rec));
    const onHandshake = (): void => {
      this.outcomes.set(key, 'handshake done');
      if (!conn.extended) conn.close(closeReason('dropped', 'does not support the extension protocol (BEP 10), so cannot send metadata'));
      // we have nothing; once the torrent takes the connection over it says what it has by
      // `have` messages, valid at any time (a bitfield is only valid right after the handshake)
      else if (conn.fast) conn.send({ type: 'have-none' });
    };
    const onExtended = (d: Map<string, unknown>): void => {
      const offers = conn.remoteExtensionId('ut_metadata') !== undefined && d.has('metadata_size');
      this.outcomes.set(key, offers ? 'offered metadata' : 'has no metadata to offer');
      // a peer without metadata may still tell us of others by PEX
      if (!offers && (this.pex === null || conn.remoteExtensionId('ut_pex') === undefined)) conn.close(null);
    };
    const onClose = (reason: CloseReason | null): void => {
      this.conns.get(conn)?.recorder.stop();
      this.conns.delete(conn);
      if (reason !== null) this.outcomes.set(key, describeClose(reason));
      // only a connection that failed before the handshake is worth another dial here (a
      // hang-up on plaintext is retried with MSE at once); the metadata either came or not
      this.connector.release(key, rec, { retry: conn.remote === null && reason !== null && !this.destroyed, handshook: conn.remote !== null, useful: false, hungUp: reason?.kind === 'hang-up' });
    };
    conn.on('handshake', onHandshake);
    conn.on('extended-handshake', onExtended);
    conn.on('close', onClose);
    const detach = (): void => {
      conn.off('handshake', onHandshake);
      conn.off('extended-handshake', onExtended);
      conn.off('close', onClose);
    };
    this.conns.set(conn, { key, rec, recorder: new PieceRecorder(conn), detach });
  }
}
