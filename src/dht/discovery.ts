/**
 * Peer discovery through the DHT for one torrent while a download runs: a get_peers lookup
 * (with announce_peer when we listen for peers) at once, again after 15 s while it found
 * nothing, then every 5 minutes, until stopped. Peers go to `onPeer` with source "dht".
 */
import type { PeerRecord } from '../peers/record.js';
import type { DhtNode } from './node.js';

export interface DhtDiscoveryOptions {
  /** our peer port, announced to the DHT; null to only look */
  port: number | null;
  onPeer: (rec: PeerRecord) => void;
  onLog?: (message: string) => void;
}

export class DhtDiscovery {
  private readonly node: DhtNode;
  private readonly infoHash: Buffer;
  private readonly o: DhtDiscoveryOptions;
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private found = 0;

  constructor(node: DhtNode, infoHash: Buffer, options: DhtDiscoveryOptions) {
    this.node = node;
    this.infoHash = infoHash;
    this.o = options;
  }

  start(): void {
    void this.round();
  }

  /** Our port changed (the listening socket is bound now): announce it from the next round. */
  setPort(port: number): void {
    const first = this.o.port === null;
    this.o.port = port;
    if (first && !this.controller.signal.aborted) {
      if (this.timer) clearTimeout(this.timer);
      void this.round();
    }
  }

  stop(): void {
    this.controller.abort();
    if (this.timer) clearTimeout(this.timer);
  }

  private async round(): Promise<void> {
    const signal = this.controller.signal;
    if (signal.aborted) return;
    const onPeer = (p: { ip: string; port: number }): void => {
      this.found++;
      this.o.onPeer({ ip: p.ip, port: p.port, source: 'dht' });
    };
    try {
      if (this.o.port !== null) await this.node.announce(this.infoHash, this.o.port, { signal, onPeer });
      else await this.node.getPeers(this.infoHash, onPeer, { signal });
    } catch (e) {
      this.o.onLog?.(`dht: ${(e as Error).message}`);
    }
    if (signal.aborted) return;
    this.timer = setTimeout(() => void this.round(), this.found === 0 ? 15_000 : 5 * 60_000);
    this.timer.unref();
  }
}
