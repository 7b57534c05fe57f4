/**
 * Stand-ins for the network, so that a fuzz input can be a tracker's reply or a peer's bytes
 * without a socket: node:http's request() and node:dgram's createSocket() are replaced (through
 * syncBuiltinESMExports, which also updates the named ESM imports of src/tracker) by fakes that
 * answer from the input, and a peer connection gets a fake socket.
 */
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { syncBuiltinESMExports } from 'node:module';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';

// ---- HTTP ----

export interface FakeHttpReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** the body as it arrives, in these pieces (default: whole) */
  chunks?: Buffer[];
  /** the connection fails: before any reply (the request's 'error'), or after the body's chunks (the reply's 'error') */
  fails?: 'request' | 'body';
}

/** What a faked request asked for: its URL and headers. */
export interface FakeHttpRequest {
  url: string;
  headers: Record<string, string>;
}

/** Replies the next requests get, in order (then a 404). */
const httpReplies: FakeHttpReply[] = [];
/** the requests made since the last setHttpReplies */
export const httpRequests: FakeHttpRequest[] = [];
let httpInstalled = false;

class FakeClientRequest extends EventEmitter {
  private destroyed = false;
  end(): void {
    const reply = httpReplies.shift() ?? { status: 404, headers: {}, body: Buffer.alloc(0) };
    setImmediate(() => {
      if (this.destroyed) return;
      if (reply.fails === 'request') {
        this.emit('error', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:80'), { code: 'ECONNREFUSED' }));
        return;
      }
      const body = reply.chunks ?? (reply.body.length > 0 ? [reply.body] : []);
      const cut = async function* (): AsyncGenerator<Buffer> {
        yield* body;
        throw Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
      };
      // a Readable like an IncomingMessage: pause/resume, destroy() and its 'close'
      const res = Readable.from(reply.fails === 'body' ? cut() : body) as Readable & { statusCode: number; headers: Record<string, string> };
      // as IncomingMessage does: a reply that fails emits 'error' only to a listener (a reply
      // nobody reads, e.g. one kept paused, just closes)
      const own = res._destroy.bind(res);
      res._destroy = (err, cb): void => own(err, (e) => cb(res.listenerCount('error') === 0 ? null : (e ?? null)));
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

/**
 * From now on, node:http and node:https requests are answered with `replies` (queued by
 * setHttpReplies): a redirect to https: gets the next fake reply, never the network.
 */
export function installFakeHttp(): void {
  if (httpInstalled) return;
  httpInstalled = true;
  const fake = (url: unknown, opts?: { headers?: Record<string, string> }): FakeClientRequest => {
    httpRequests.push({ url: String(url), headers: { ...(opts?.headers ?? {}) } });
    return new FakeClientRequest();
  };
  (http as unknown as { request: unknown }).request = fake;
  (https as unknown as { request: unknown }).request = fake;
  syncBuiltinESMExports();
}

export function setHttpReplies(replies: FakeHttpReply[]): void {
  httpRequests.length = 0;
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

/** Enough of dgram.Socket for a SharedUdp (tracker/udp.ts binds one per request). */
class FakeUdpSocket extends EventEmitter {
  private closed = false;
  private sends = 0;
  bind(_o: unknown, cb: () => void): void {
    queueMicrotask(cb);
  }
  address(): { address: string; port: number; family: string } {
    return { address: '0.0.0.0', port: 40000, family: 'IPv4' };
  }
  send(packet: Buffer, port: number, host: string): void {
    const tid = packet.length >= 16 ? packet.readUInt32BE(12) : 0;
    const sent = ++this.sends;
    // a reply never arrives inside send(): deliver on a later turn, one datagram at a time,
    // until the exchange sends again (its next request goes out in the turn its reply came)
    // or none are left
    const deliver = (): void => {
      if (this.closed || sent !== this.sends) return;
      const d = datagrams.shift();
      if (d === undefined) return;
      const msg = Buffer.from(d.bytes);
      if (d.matchTid && msg.length >= 8) msg.writeUInt32BE(tid, 4);
      this.emit('message', msg, { address: host, port, family: host.includes(':') ? 'IPv6' : 'IPv4', size: msg.length });
      setImmediate(deliver);
    };
    setImmediate(deliver);
  }
  close(cb?: () => void): void {
    this.closed = true;
    if (cb) queueMicrotask(cb);
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
