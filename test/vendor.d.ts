// Minimal types for test-only dependencies that ship none.
declare module 'bittorrent-tracker/server' {
  import { EventEmitter } from 'node:events';
  import type { Server as HttpServer } from 'node:http';
  import type { Socket } from 'node:dgram';
  export default class Server extends EventEmitter {
    constructor(opts: { http?: boolean; udp?: boolean; ws?: boolean; stats?: boolean; interval?: number; filter?: unknown });
    http: HttpServer | null;
    udp4: Socket | null;
    udp6: Socket | null;
    listen(port: number | { http?: number; udp?: number }, hostname: string | { http?: string; udp?: string; udp6?: string }, cb?: () => void): void;
    close(cb?: () => void): void;
  }
}

declare module 'bittorrent-dht' {
  import { EventEmitter } from 'node:events';
  export interface DhtPeer {
    host: string;
    port: number;
  }
  export default class DHT extends EventEmitter {
    constructor(opts?: { bootstrap?: string[] | false; host?: string | false; nodeId?: Uint8Array; timeBucketOutdated?: number; maxAge?: number });
    nodeId: Uint8Array;
    listen(port: number, address: string, cb?: () => void): void;
    address(): { address: string; port: number };
    addNode(node: { host: string; port: number }): void;
    lookup(infoHash: string | Uint8Array, cb?: (err: Error | null, nodesFound: number) => void): () => void;
    announce(infoHash: string | Uint8Array, port: number, cb?: (err: Error | null) => void): void;
    on(event: 'peer', listener: (peer: DhtPeer, infoHash: Uint8Array, from: DhtPeer) => void): this;
    on(event: 'ready' | 'listening', listener: () => void): this;
    on(event: 'error' | 'warning', listener: (err: Error) => void): this;
    destroy(cb?: () => void): void;
    _rpc: { queries?: number };
  }
}
