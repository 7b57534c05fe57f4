/**
 * UDP trackers (BEP 15): connect, then announce or scrape with the connection id, reused for its
 * 60 s. A lost packet is sent again after 15·2^n s, but never past the total deadline, so a dead
 * tracker costs at most `timeoutMs`. Replies are matched by transaction id and checked for
 * length. A datagram with another transaction id is ignored and the wait goes on (a spoofed or
 * stray datagram cannot end a valid exchange), only counted so that the timeout can say so. The
 * socket's receive buffer is enlarged and junk costs one comparison, so that a burst of junk
 * cannot push the real reply out of the kernel's queue.
 *
 * The exchange runs over a SharedUdp: the session's (`udp` option: the announce leaves from the
 * port our DHT and uTP use, and replies are routed to it by transaction id), or, without one
 * or for an IPv6 tracker (the shared socket is IPv4), one of its own for the request.
 */
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { BValue } from '../bencode/types.js';
import { SharedUdp } from '../net/udp-socket.js';
import { clampInterval, compactPeers, TrackerError, type AnnounceParams, type AnnounceReply, type ScrapeReply } from './reply.js';

const PROTOCOL_ID = 0x41727101980n;
const A_CONNECT = 0;
const A_ANNOUNCE = 1;
const A_SCRAPE = 2;
const A_ERROR = 3;
const EVENTS = { none: 0, completed: 1, started: 2, stopped: 3 } as const;

export interface UdpOptions {
  timeoutMs: number;
  /** first retransmission wait (BEP 15: 15 s); tests shorten it */
  retransmitBaseMs?: number;
  signal?: AbortSignal;
  /** the process's UDP socket (IPv4 trackers use it; without it each request binds its own) */
  udp?: SharedUdp | null;
}

/** connection ids by "host:port", valid 60 s (BEP 15) */
const connections = new Map<string, { id: Buffer; until: number }>();

interface Target {
  host: string;
  port: number;
  key: string;
}

async function target(url: string): Promise<Target> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TrackerError(`bad URL ${JSON.stringify(url)}`);
  }
  const port = Number(u.port);
  if (!port) throw new TrackerError('UDP tracker URL has no port');
  let host = u.hostname.replace(/^\[|\]$/g, '');
  if (!isIP(host)) {
    try {
      host = (await lookup(host)).address;
    } catch (e) {
      throw new TrackerError(`cannot resolve ${host}: ${(e as NodeJS.ErrnoException).code ?? ''}`);
    }
  }
  return { host, port, key: `${host}:${port}` };
}

/** Datagrams ignored during one request, for the timeout's message. */
interface Ignored {
  wrongTid: number;
}

function ignoredText(n: Ignored): string {
  return n.wrongTid === 0 ? '' : ` (${n.wrongTid} datagram${n.wrongTid === 1 ? '' : 's'} with a wrong transaction id ignored)`;
}

/**
 * Sends `packet` until a reply with its transaction id (and at least `minLen` bytes) arrives.
 * Datagrams with another transaction id, or from another port, are ignored: the wait goes on.
 * The transaction id is drawn again if another request on the socket waits for the same one.
 */
function exchange(udp: SharedUdp, t: Target, packet: Buffer, minLen: number, deadline: number, o: UdpOptions, ignored: Ignored): Promise<Buffer> {
  let unexpect: (() => void) | null = null;
  return new Promise((resolve, reject) => {
    let tries = 0;
    let timer: NodeJS.Timeout | null = null;
    // strays are counted by the socket: what arrived for no one while we waited
    const since = udp.counters.trackerUnmatched;
    const strays = (): number => udp.counters.trackerUnmatched - since;
    const done = (err: Error | null, msg?: Buffer): void => {
      if (timer) clearTimeout(timer);
      unexpect?.();
      o.signal?.removeEventListener('abort', onAbort);
      ignored.wrongTid += strays();
      if (err) reject(err);
      else resolve(msg!);
    };
    const onAbort = (): void => done(Object.assign(new Error('aborted'), { name: 'AbortError' }));
    const onMessage = (msg: Buffer, _address: string, port: number): void => {
      if (port !== t.port) return;
      const action = msg.readUInt32BE(0);
      if (action === A_ERROR) return done(new TrackerError(`failure: ${msg.subarray(8, 308).toString('utf8').replace(/[\x00-\x1f\x7f]/g, '?')}`));
      if (msg.length < minLen) return done(new TrackerError(`reply of ${msg.length} bytes, expected at least ${minLen}`));
      done(null, msg);
    };
    const send = (): void => {
      const left = deadline - Date.now();
      if (left <= 0) return done(new TrackerError(`no reply within ${o.timeoutMs} ms${ignoredText({ wrongTid: ignored.wrongTid + strays() })}`));
      udp.send(packet, t.port, t.host);
      const wait = Math.min(left, (o.retransmitBaseMs ?? 15_000) * 2 ** tries++);
      timer = setTimeout(send, wait);
    };
    if (o.signal?.aborted) return onAbort();
    for (let i = 0; unexpect === null; i++) {
      if (i > 0) randomBytes(4).copy(packet, 12);
      unexpect = udp.expect(packet.readUInt32BE(12), onMessage);
    }
    o.signal?.addEventListener('abort', onAbort, { once: true });
    send();
  });
}

async function withSocket<T>(t: Target, o: UdpOptions, fn: (udp: SharedUdp) => Promise<T>): Promise<T> {
  if (o.udp && !o.udp.isClosed && isIP(t.host) === 4) return fn(o.udp);
  // ICMP unreachable etc. are ignored: the deadline reports it
  const own = await SharedUdp.bind(0, undefined, { type: isIP(t.host) === 6 ? 'udp6' : 'udp4' });
  try {
    return await fn(own);
  } finally {
    await own.close();
  }
}

async function connectionId(sock: SharedUdp, t: Target, deadline: number, o: UdpOptions, ignored: Ignored): Promise<Buffer> {
  const cached = connections.get(t.key);
  if (cached && cached.until > Date.now()) return cached.id;
  const p = Buffer.alloc(16);
  p.writeBigUInt64BE(PROTOCOL_ID, 0);
  p.writeUInt32BE(A_CONNECT, 8);
  randomBytes(4).copy(p, 12);
  const r = await exchange(sock, t, p, 16, deadline, o, ignored);
  if (r.readUInt32BE(0) !== A_CONNECT) throw new TrackerError('connect reply with the wrong action');
  const id = Buffer.from(r.subarray(8, 16));
  connections.set(t.key, { id, until: Date.now() + 60_000 });
  return id;
}

export async function udpAnnounce(url: string, p: AnnounceParams, o: UdpOptions): Promise<AnnounceReply> {
  const t = await target(url);
  const deadline = Date.now() + o.timeoutMs;
  return withSocket(t, o, async (sock) => {
    const ignored: Ignored = { wrongTid: 0 };
    const cid = await connectionId(sock, t, deadline, o, ignored);
    const b = Buffer.alloc(98);
    cid.copy(b, 0);
    b.writeUInt32BE(A_ANNOUNCE, 8);
    randomBytes(4).copy(b, 12);
    p.infoHash.copy(b, 16);
    p.peerId.copy(b, 36);
    b.writeBigUInt64BE(BigInt(p.downloaded), 56);
    b.writeBigUInt64BE(BigInt(p.left), 64);
    b.writeBigUInt64BE(BigInt(p.uploaded), 72);
    b.writeUInt32BE(EVENTS[p.event], 80);
    b.writeUInt32BE(0, 84); // IP: the sender's
    b.writeUInt32BE(p.key >>> 0, 88);
    b.writeInt32BE(p.numwant, 92);
    b.writeUInt16BE(p.port, 96);
    const r = await exchange(sock, t, b, 20, deadline, o, ignored);
    if (r.readUInt32BE(0) !== A_ANNOUNCE) throw new TrackerError('announce reply with the wrong action');
    const interval = r.readUInt32BE(8);
    const leechers = r.readUInt32BE(12);
    const seeders = r.readUInt32BE(16);
    // BEP 15: IPv6 trackers answer with 18-byte peers over IPv6
    const peers = compactPeers(r.subarray(20), isIP(t.host) === 6, url);
    return {
      tracker: url,
      interval: clampInterval(interval),
      complete: seeders,
      incomplete: leechers,
      peers,
      raw: new Map<string, BValue>([['interval', interval], ['leechers', leechers], ['seeders', seeders], ['peers', Buffer.from(r.subarray(20))]]),
    };
  });
}

export async function udpScrape(url: string, infoHash: Buffer, o: UdpOptions): Promise<ScrapeReply> {
  const t = await target(url);
  const deadline = Date.now() + o.timeoutMs;
  return withSocket(t, o, async (sock) => {
    const ignored: Ignored = { wrongTid: 0 };
    const cid = await connectionId(sock, t, deadline, o, ignored);
    const b = Buffer.alloc(36);
    cid.copy(b, 0);
    b.writeUInt32BE(A_SCRAPE, 8);
    randomBytes(4).copy(b, 12);
    infoHash.copy(b, 16);
    const r = await exchange(sock, t, b, 20, deadline, o, ignored);
    if (r.readUInt32BE(0) !== A_SCRAPE) throw new TrackerError('scrape reply with the wrong action');
    return { tracker: url, seeders: r.readUInt32BE(8), downloaded: r.readUInt32BE(12), leechers: r.readUInt32BE(16) };
  });
}

/** Forgets cached connection ids (tests). */
export function resetUdpConnections(): void {
  connections.clear();
}
