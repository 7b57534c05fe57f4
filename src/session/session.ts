/**
 * What the torrents of one process share: the peer id, one listening port (incoming handshakes
 * routed by info hash, listener.ts), one DHT node, one hashing thread, and caps on
 * connections and on open files, and the global rate limits. Each torrent is a Swarm built with `swarmOptions()` and hosted on the port
 * while it runs; the session outlives them and is closed last.
 */
import { randomBytes } from 'node:crypto';
import type { DhtNode } from '../dht/node.js';
import type { LogLevel } from '../log.js';
import { HashPool } from '../storage/hash-pool.js';
import { OpenFiles } from '../storage/open-files.js';
import { Turns } from '../turns.js';
import { TokenBucket, type Bandwidth } from '../wire/bandwidth.js';
import type { SwarmOptions } from '../swarm/swarm.js';
import { makePeerId } from '../wire/protocol.js';
import { ConnectionBudget } from './budget.js';
import { PeerListener, type IncomingRoute } from './listener.js';

export interface SessionOptions {
  /** our BEP 20 peer id, the same for every torrent (default: -TK0100- and 12 random bytes) */
  peerId?: Buffer;
  /** a started DHT node the torrents share (the caller closes it) */
  dht?: DhtNode | null;
  /** connections at most, all torrents together (default 500) */
  maxConnections?: number;
  /** files (and held directories) open at most, all torrents together (default 512) */
  maxOpenFiles?: number;
  /** bytes/s received from peers at most, all torrents together (default 0: unlimited) */
  maxDownloadRate?: number;
  /** bytes/s sent to peers at most, all torrents together (default 0: unlimited) */
  maxUploadRate?: number;
  log?: (line: string, level: LogLevel) => void;
}

export class Session {
  readonly peerId: Buffer;
  readonly dht: DhtNode | null;
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
  private closed = false;

  constructor(options: SessionOptions = {}) {
    this.peerId = options.peerId ?? makePeerId(randomBytes);
    this.dht = options.dht ?? null;
    this.budget = new ConnectionBudget(options.maxConnections ?? 500);
    this.openFiles = new OpenFiles(options.maxOpenFiles ?? 512);
    this.downloadLimit = new TokenBucket(options.maxDownloadRate ?? 0);
    this.uploadLimit = new TokenBucket(options.maxUploadRate ?? 0);
    this.listener = new PeerListener({ peerId: this.peerId, budget: this.budget, dhtPort: this.dhtPort });
    const log = options.log;
    if (log) this.listener.on('log', log);
  }

  /** The port we listen on, once listening. */
  get port(): number | null {
    return this.listener.port;
  }

  get dhtPort(): number | undefined {
    return this.dht?.address().port;
  }

  /** Listens for peers of every hosted torrent on `port` (0: any free one); resolves with it. */
  listen(port: number, host?: string): Promise<number> {
    return this.listener.listen(port, host);
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
  swarmOptions(bandwidth?: Bandwidth): Pick<SwarmOptions, 'peerId' | 'hasher' | 'budget' | 'port' | 'dhtPort' | 'bandwidth'> {
    return { peerId: this.peerId, hasher: this.hasher, budget: this.budget, port: this.port ?? undefined, dhtPort: this.dhtPort, bandwidth: bandwidth ?? this.bandwidthFor() };
  }

  /** Incoming connections for this torrent come to it from now on. */
  host(route: IncomingRoute): void {
    this.listener.add(route);
  }

  unhost(route: IncomingRoute): void {
    this.listener.remove(route);
  }

  /** Stops listening and the hashing thread; the torrents are stopped by their owners first. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.listener.close();
    await this.hasher.close();
  }
}
