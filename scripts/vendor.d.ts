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
