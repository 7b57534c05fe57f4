/**
 * One listening port for every torrent of a session. An incoming connection is only a socket
 * until its handshake names an info hash (in the clear, or inside MSE, whose responder tries
 * every hosted hash as a shared secret); the torrent that has it then adopts the connection,
 * or turns it away (full, banned, a second connection from the same peer) and the handshake
 * is refused.
 */
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { LogLevel } from '../log.js';
import { normalizeIp, peerKey, type PeerRecord } from '../peers/record.js';
import type { WireLimits } from '../wire/frame-decoder.js';
import { PeerConnection } from '../wire/peer-connection.js';
import { CLIENT_VERSION } from '../wire/protocol.js';
import { MAX_QUEUED_REQUESTS } from '../swarm/uploader.js';
import type { ConnectionBudget } from './budget.js';

/** A torrent that takes incoming connections. */
export interface IncomingRoute {
  readonly infoHash: Buffer;
  /** more hashes naming the same torrent: a hybrid's truncated v2 hash (BEP 52) */
  readonly aliases?: readonly Buffer[];
  /** the connection's handshake names this torrent: take it (its limits), or null to refuse */
  adopt(conn: PeerConnection, rec: PeerRecord): WireLimits | null;
}

export interface PeerListenerOptions {
  peerId: Buffer;
  /** our DHT node's port, for peers that support BEP 5 */
  dhtPort?: number;
  /** connections at most, shared with the torrents' dialling */
  budget?: ConnectionBudget | null;
}

export class PeerListener extends EventEmitter<{ log: [line: string, level: LogLevel] }> {
  private readonly o: PeerListenerOptions;
  private readonly routes = new Map<string, IncomingRoute>();
  /** the hosted info hashes, for MSE responders: the same array, kept up to date */
  private readonly skeys: Buffer[] = [];
  private readonly servers: Server[] = [];
  private readonly open = new Set<PeerConnection>();
  port: number | null = null;

  constructor(options: PeerListenerOptions) {
    super();
    this.o = options;
  }

  get torrents(): number {
    return new Set(this.routes.values()).size;
  }

  /** Routes every hash of the torrent to it; a peer gets its handshake answered with the hash it sent. */
  add(route: IncomingRoute): void {
    for (const h of [route.infoHash, ...(route.aliases ?? [])]) {
      const key = h.toString('hex');
      if (!this.routes.has(key)) this.skeys.push(h);
      this.routes.set(key, route);
    }
  }

  remove(route: IncomingRoute): void {
    for (const h of [route.infoHash, ...(route.aliases ?? [])]) {
      const key = h.toString('hex');
      if (this.routes.get(key) !== route) continue;
      this.routes.delete(key);
      const i = this.skeys.findIndex((k) => k.equals(h));
      if (i >= 0) this.skeys.splice(i, 1);
    }
  }

  /** Listens on `port` (0: any free one) on every address, IPv6 and IPv4; resolves with the port. */
  async listen(port: number, host?: string): Promise<number> {
    const server = createServer((s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host, ipv6Only: false }, () => resolve());
    });
    this.servers.push(server);
    server.on('error', (e) => this.emit('log', `listen: ${e.message}`, 'notice'));
    const addr = server.address();
    this.port = typeof addr === 'object' && addr !== null ? addr.port : port;
    return this.port;
  }

  /** An incoming connection (from our server, or accepted elsewhere). */
  accept(socket: Socket): void {
    if (this.routes.size === 0 || (this.o.budget && !this.o.budget.take())) {
      socket.destroy();
      return;
    }
    const rec: PeerRecord = { ip: normalizeIp(socket.remoteAddress ?? '') ?? '?', port: socket.remotePort ?? 0, source: 'incoming' };
    const conn: PeerConnection = new PeerConnection(socket, {
      peerId: this.o.peerId,
      outgoing: false,
      skeys: this.skeys,
      name: peerKey(rec),
      accept: (infoHash) => {
        return this.routes.get(infoHash.toString('hex'))?.adopt(conn, rec) ?? null;
      },
      extendedHandshake: { v: Buffer.from(CLIENT_VERSION), reqq: MAX_QUEUED_REQUESTS, ...(this.port ? { p: this.port } : {}) },
      dhtPort: this.o.dhtPort,
    });
    this.open.add(conn);
    conn.once('close', () => {
      this.open.delete(conn);
      this.o.budget?.give();
    });
  }

  /** Stops listening and closes connections no torrent adopted. */
  async close(): Promise<void> {
    for (const c of [...this.open]) if (c.remote === null) c.close(null);
    await Promise.all(this.servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}
