/**
 * Stand-ins for the network, so that a fuzz input can be a tracker's reply or a peer's bytes
 * without a socket: node:http's request() and node:dgram's createSocket() are replaced (through
 * syncBuiltinESMExports, which also updates the named ESM imports of src/tracker) by fakes that
 * answer from the input, and a peer connection gets a fake socket.
 */
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import { syncBuiltinESMExports } from 'node:module';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';

// ---- HTTP ----

export interface FakeHttpReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Replies the next requests get, in order (then a 404). */
const httpReplies: FakeHttpReply[] = [];
let httpInstalled = false;

class FakeClientRequest extends EventEmitter {
  private destroyed = false;
  end(): void {
    const reply = httpReplies.shift() ?? { status: 404, headers: {}, body: Buffer.alloc(0) };
    setImmediate(() => {
      if (this.destroyed) return;
      const res = Readable.from(reply.body.length > 0 ? [reply.body] : []) as Readable & { statusCode: number; headers: Record<string, string> };
      res.statusCode = reply.status;
      res.headers = reply.headers;
      this.emit('response', res);
    });
  }
  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    if (err) setImmediate(() => this.emit('error', err));
    return this;
  }
}

/** From now on, node:http requests are answered with `replies` (queued by setHttpReplies). */
export function installFakeHttp(): void {
  if (httpInstalled) return;
  httpInstalled = true;
  const fake = (): FakeClientRequest => new FakeClientRequest();
  (http as unknown as { request: unknown }).request = fake;
  syncBuiltinESMExports();
}

export function setHttpReplies(replies: FakeHttpReply[]): void {
  httpReplies.length = 0;
  httpReplies.push(...replies);
}

// ---- UDP ----

export interface FakeDatagram {
  /** give it the transaction id of the request it answers (else it keeps its own bytes 4..8) */
  matchTid: boolean;
  bytes: Buffer;
}

const datagrams: FakeDatagram[] = [];
let udpInstalled = false;

class FakeUdpSocket extends EventEmitter {
  private closed = false;
  send(packet: Buffer, port: number, host: string): void {
    const tid = packet.length >= 16 ? packet.readUInt32BE(12) : 0;
    // a reply never arrives inside send(): deliver on a later turn, one datagram at a time,
    // until the waiting exchange takes one (it stops listening) or none are left
    const deliver = (): void => {
      if (this.closed || this.listenerCount('message') === 0) return;
      const d = datagrams.shift();
      if (d === undefined) return;
      const msg = Buffer.from(d.bytes);
      if (d.matchTid && msg.length >= 8) msg.writeUInt32BE(tid, 4);
      this.emit('message', msg, { address: host, port, family: host.includes(':') ? 'IPv6' : 'IPv4', size: msg.length });
      setImmediate(deliver);
    };
    setImmediate(deliver);
  }
  close(): void {
    this.closed = true;
  }
}

export function installFakeUdp(): void {
  if (udpInstalled) return;
  udpInstalled = true;
  (dgram as unknown as { createSocket: unknown }).createSocket = (): FakeUdpSocket => new FakeUdpSocket();
  syncBuiltinESMExports();
}

export function setDatagrams(list: FakeDatagram[]): void {
  datagrams.length = 0;
  datagrams.push(...list);
}

export function datagramsLeft(): number {
  return datagrams.length;
}

// ---- a peer's socket ----

/** Enough of net.Socket for PeerConnection: what it writes is dropped. */
export class FakePeerSocket extends EventEmitter {
  remoteAddress = '203.0.113.7';
  remotePort = 51413;
  writableLength = 0;
  written = 0;
  setNoDelay(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  write(b: Uint8Array, cb?: (e?: Error | null) => void): boolean {
    this.written += b.length;
    if (cb) queueMicrotask(() => cb(null));
    return true;
  }
  destroy(): this {
    return this;
  }
  end(): this {
    return this;
  }
  asSocket(): Socket {
    return this as unknown as Socket;
  }
}
