/**
 * What the torrents of one process share: the peer id, one listening port (incoming handshakes
 * routed by info hash, listener.ts), one UDP socket on the same port number (the DHT node, UDP
 * tracker announces and uTP, net/udp-socket.ts), one DHT node, one hashing thread, and caps on
 * connections and on open files, and the global rate limits. Each torrent is a Swarm built with `swarmOptions()` and hosted on the port
 * while it runs; the session outlives them and is closed last.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { DhtNode } from '../dht/node.js';
import type { LogLevel } from '../log.js';
import { SharedUdp } from '../net/udp-socket.js';
import { TCP_ONLY, type Transports } from '../swarm/connector.js';
import type { UtpEndpoint, UtpStats } from '../utp/endpoint.js';
import { utpOnUdp } from '../utp/on-udp.js';
import { HashPool } from '../storage/hash-pool.js';
import { OpenFiles } from '../storage/open-files.js';
import { Turns } from '../turns.js';
import { TokenBucket, type Bandwidth } from '../wire/bandwidth.js';
import type { SwarmOptions } from '../swarm/swarm.js';
import { makePeerId } from '../wire/protocol.js';
import { ConnectionBudget } from './budget.js';
import { PeerListener, type IncomingRoute } from './listener.js';
import type { WireSocket } from '../wire/memory-pipe.js';

export interface SessionOptions {
  /** our BEP 20 peer id, the same for every torrent (default: -TK0100- and 12 random bytes) */
  peerId?: Buffer;
  /** a started DHT node the torrents share (the caller closes it; or useDht after listen) */
  dht?: DhtNode | null;
  /** connections at most, all torrents together (default 500) */
  maxConnections?: number;
  /** files (and held directories) open at most, all torrents together (default 512) */
  maxOpenFiles?: number;
  /** bytes/s received from peers at most, all torrents together (default 0: unlimited) */
  maxDownloadRate?: number;
  /** bytes/s sent to peers at most, all torrents together (default 0: unlimited) */
  maxUploadRate?: number;
  /** dial and accept TCP (default true) */
  tcp?: boolean;
  /** dial and accept uTP over the UDP socket (default true) */
  utp?: boolean;
  log?: (line: string, level: LogLevel) => void;
}

/** binds with port 0 tried when the UDP port of the TCP port's number is taken */
const PORT_TRIES = 5;

export class Session {
  readonly peerId: Buffer;
  private dhtNode: DhtNode | null;
  /**
   * The process's UDP socket, bound by listen() on the TCP port's number (null before, or when
   * that port is taken for UDP). Closed last by close(): a uTP endpoint on it closes first.
   */
  udp: SharedUdp | null = null;
  /** its IPv6 twin on the same port number, for uTP alone (utp/on-udp.ts); null where IPv6 cannot bind */
  udp6: SharedUdp | null = null;
  private readonly log: ((line: string, level: LogLevel) => void) | undefined;
  readonly hasher = new HashPool();
  readonly budget: ConnectionBudget;
  /** the open-file budget every torrent's file stores draw from */
  readonly openFiles: OpenFiles;
  /**
   * pieces being written at once, all torrents together: one disk writer, whose queue bounds
   * the verified pieces waiting for the disk (each holds its buffer) however many torrents run.
   * Two, as one assemble stage has: two direct writes in flight keep a device busier than one.
   */
  readonly writeTurns = new Turns(2);
  /** the global rate limits; each torrent's buckets are chained under them (bandwidthFor) */
  readonly downloadLimit: TokenBucket;
  readonly uploadLimit: TokenBucket;
  readonly listener: PeerListener;
  /** uTP connections over `udp` and `udp6` (BEP 29): null before listen, with uTP off, or without a UDP socket */
  utp: UtpEndpoint | null = null;
  private readonly useTcp: boolean;
  private readonly useUtp: boolean;
  private closed = false;

  constructor(options: SessionOptions = {}) {
    this.peerId = options.peerId ?? makePeerId(randomBytes);
    this.dhtNode = options.dht ?? null;
    this.budget = new ConnectionBudget(options.maxConnections ?? 500);
    this.openFiles = new OpenFiles(options.maxOpenFiles ?? 512);
    this.downloadLimit = new TokenBucket(options.maxDownloadRate ?? 0);
    this.uploadLimit = new TokenBucket(options.maxUploadRate ?? 0);
    this.useTcp = options.tcp ?? true;
    this.useUtp = options.utp ?? true;
    if (!this.useTcp && !this.useUtp) throw new Error('Session: neither TCP nor uTP');
    // the DHT node may come after listen (on the UDP socket it binds): the port is read late
    const session = this;
    this.listener = new PeerListener({ peerId: this.peerId, budget: this.budget, get dhtPort() { return session.dhtPort; } });
    const log = options.log;
    this.log = log;
    if (log) this.listener.on('log', log);
  }

  /** The port we listen on, once listening. */
  get port(): number | null {
    return this.listener.port;
  }

  get dht(): DhtNode | null {
    return this.dhtNode;
  }

  /** The DHT node the torrents share from now on (started, typically on `udp`; the caller closes it). */
  useDht(node: DhtNode | null): void {
    this.dhtNode = node;
  }

  get dhtPort(): number | undefined {
    return this.dhtNode?.address().port;
  }

  /**
   * Listens for peers of every hosted torrent on `port` (0: any free one) and binds the UDP
   * sockets on the same number (bindUdp); resolves with it. With port 0, a UDP port already
   * taken has the TCP one given back and another drawn (PORT_TRIES in all). A given port whose
   * UDP half is taken leaves `udp` null with a warning: the DHT and trackers then bind their own.
   */
  async listen(port: number, host?: string): Promise<number> {
    if (!this.useTcp) return this.listenUdpOnly(port, host);
    for (let attempt = 1; ; attempt++) {
      const bound = await this.listener.listen(port, host);
      try {
        await this.bindUdp(bound, host);
        return bound;
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (port !== 0 || err.code !== 'EADDRINUSE' || attempt >= PORT_TRIES) {
          this.log?.(`warning: cannot bind UDP port ${bound} (${err.message}): the DHT and UDP trackers use ports of their own`, 'notice');
          return bound;
        }
        await this.listener.close(); // nothing is hosted on it yet: drawn again
      }
    }
  }

  /**
   * --no-tcp: the UDP sockets alone, on `port`; the number is the one advertised (extended
   * handshake, trackers) as a TCP port would be. Without them no peer can be reached: rejects.
   */
  private async listenUdpOnly(port: number, host?: string): Promise<number> {
    await this.bindUdp(port, host);
    const bound = (this.udp ?? this.udp6)!.port;
    this.listener.port = bound;
    return bound;
  }

  /**
   * For a session that serves no one (fetch-pieces without --serve-from): UDP sockets on any
   * port to dial uTP from. Incoming connections find no torrent hosted and are closed.
   */
  async dialOnly(): Promise<void> {
    if (!this.useUtp || this.udp !== null) return;
    try {
      await this.bindUdp(0, undefined);
    } catch (e) {
      if (!this.useTcp) throw e;
      this.log?.(`warning: no UDP socket (${(e as Error).message}): TCP only`, 'notice');
    }
  }

  /**
   * The UDP sockets on `port`, and uTP on them: IPv4 (`udp`, shared with the DHT and trackers)
   * unless `host` is an IPv6 address, and IPv6 (`udp6`, uTP's alone, on the number the IPv4
   * one got) unless `host` is an IPv4 address. The one `host` names must bind (rejects); with
   * no host ('::' or none: every address) IPv6 is best effort, for a machine without it.
   */
  private async bindUdp(port: number, host: string | undefined): Promise<void> {
    const everyAddress = host === undefined || host === '::';
    const family = everyAddress ? 0 : isIP(host);
    if (family !== 6) this.udp = await SharedUdp.bind(port, everyAddress ? undefined : host, { onError: (e) => this.log?.(`udp: ${e.message}`, 'peer') });
    else this.log?.(`no IPv4 UDP socket on ${host}: the DHT and UDP trackers bind their own`, 'detail');
    if (this.useUtp && family !== 4) {
      const number = this.udp?.port ?? port;
      try {
        this.udp6 = await SharedUdp.bind(number, everyAddress ? '::' : host, { type: 'udp6', onError: (e) => this.log?.(`udp6: ${e.message}`, 'peer') });
      } catch (e) {
        if (family === 6) throw e;
        this.log?.(`no IPv6 UDP socket on port ${number} (${(e as Error).message}): uTP reaches IPv4 peers only`, 'peer');
      }
    }
    if (this.useUtp && this.utp === null && (this.udp !== null || this.udp6 !== null)) {
      this.utp = utpOnUdp(this.udp, this.udp6);
      // an incoming uTP stream takes the TCP socket's path: routed by the info hash it names
      this.utp.on('connection', (stream: WireSocket) => this.listener.accept(stream, 'utp'));
    }
  }

  /**
   * How torrents dial (SwarmOptions.transports): uTP over our endpoint (first; connector.ts)
   * and TCP, as the options say. Before listen, or without a UDP socket, TCP alone.
   */
  get transports(): Transports {
    const utp = this.utp;
    if (utp === null) {
      if (!this.useTcp) throw new Error('Session: uTP only, and no UDP socket to speak it on');
      return TCP_ONLY;
    }
    const utpFamilies: Array<4 | 6> = [];
    if (this.udp !== null) utpFamilies.push(4);
    if (this.udp6 !== null) utpFamilies.push(6);
    return { tcp: this.useTcp, utp: (ip, port) => utp.connect(ip, port), utpFamilies };
  }

  /** uTP packet counts (for --stats and summaries); null without uTP. */
  utpStats(): UtpStats | null {
    return this.utp?.stats() ?? null;
  }

  /**
   * One torrent's rate limits (bytes/s, 0: none of its own), chained under the global ones;
   * undefined when nothing is limited, so that its connections pay nothing for metering.
   */
  bandwidthFor(rates: { down?: number; up?: number } = {}): Bandwidth | undefined {
    const down = rates.down ?? 0;
    const up = rates.up ?? 0;
    if (down === 0 && up === 0 && !this.downloadLimit.limited && !this.uploadLimit.limited) return undefined;
    return {
      down: new TokenBucket(down, { parent: this.downloadLimit }),
      up: new TokenBucket(up, { parent: this.uploadLimit }),
    };
  }

  /** What a torrent's Swarm takes from the session (its own limits: bandwidthFor). */
  swarmOptions(bandwidth?: Bandwidth): Pick<SwarmOptions, 'peerId' | 'hasher' | 'budget' | 'port' | 'dhtPort' | 'bandwidth' | 'transports'> {
    return { peerId: this.peerId, hasher: this.hasher, budget: this.budget, port: this.port ?? undefined, dhtPort: this.dhtPort, bandwidth: bandwidth ?? this.bandwidthFor(), transports: this.transports };
  }

  /** Incoming connections for this torrent come to it from now on. */
  host(route: IncomingRoute): void {
    this.listener.add(route);
  }

  unhost(route: IncomingRoute): void {
    this.listener.remove(route);
  }

  /**
   * Stops listening, the hashing thread and the UDP socket (last: the stopped announces of the
   * torrents, already stopped by their owners, may still be waiting on it). A DHT node on the
   * socket is the caller's to close: after this it only saves its table.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.listener.close();
    // RESETs to the uTP peers go out before the socket closes
    this.utp?.close();
    await this.hasher.close();
    await this.udp?.close();
    await this.udp6?.close();
  }
}
