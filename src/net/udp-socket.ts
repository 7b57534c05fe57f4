/**
 * One UDP socket for everything a process says over UDP: the DHT (BEP 5), UDP tracker replies
 * (BEP 15) and uTP (BEP 29), told apart by the first byte of a datagram, as libtorrent's
 * utp_socket_manager does: 'd' (0x64) opens a bencoded KRPC dictionary; 0x00 is the high byte of
 * a tracker reply's 32-bit big-endian action (0..3); a uTP header's first byte is
 * `type << 4 | version 1` with type 0..4 (0x01, 0x11, …, 0x41), never 0x00 nor 0x64. Anything
 * else is counted and dropped. Sharing the socket means one port to forward, one NAT mapping,
 * and the port a peer learns from our TCP connections is the one our DHT and uTP answer on.
 *
 * One family a socket (no dual stack: it would hand every IPv4 sender over as ::ffff:a.b.c.d
 * to handlers that key peers by address). The DHT node speaks BEP 5's IPv4 compact formats, so
 * the shared socket is IPv4; a session binds an IPv6 twin on the same number for uTP alone
 * (utp/on-udp.ts), and an IPv6 UDP tracker gets a SharedUdp of its own for the exchange.
 *
 * Tracker replies are routed by transaction id (`expect`), so many announces can wait on the
 * one socket at once and a datagram nobody waits for costs a map lookup. The demux is not
 * what a uTP transfer pays for: 300,000 datagrams of 1400 bytes over loopback cost the
 * receiving process 2.5-2.6 µs each through a SharedUdp and through a bare dgram socket alike.
 */
import { createSocket, type Socket } from 'node:dgram';

export type DatagramHandler = (buf: Buffer, address: string, port: number) => void;

/**
 * The receive buffer asked for: the kernel caps it at net.core.rmem_max and doubles it, and
 * counts ~830 bytes per small datagram, so 4 MiB holds ~10,000 junk datagrams queued ahead of
 * a real reply (the default, 212,992 bytes, holds 256) and absorbs a burst of uTP packets
 * between two turns of the event loop.
 */
export const RECV_BUFFER = 4 * 1024 * 1024;
/** the send buffer: a uTP window's worth of packets written in one turn of the loop */
export const SEND_BUFFER = 1024 * 1024;

const FIRST_KRPC = 0x64; // 'd'
const FIRST_TRACKER = 0x00;

/** A uTP header: `type << 4 | 1` with type 0..4, 20 bytes at least (BEP 29). */
function utpShape(buf: Buffer): boolean {
  const b = buf[0]!;
  return buf.length >= 20 && (b & 0x0f) === 1 && b >> 4 <= 4;
}

export interface UdpCounters {
  received: number;
  dht: number;
  utp: number;
  tracker: number;
  /** tracker-shaped replies whose transaction id nobody waits for */
  trackerUnmatched: number;
  /** datagrams of no known shape, or of a kind no one here handles */
  dropped: number;
  sent: number;
  /** failed sends and socket errors (an ICMP unreachable reported on a later send) */
  errors: number;
}

export interface SharedUdpOptions {
  type?: 'udp4' | 'udp6';
  /** socket errors and failed sends (an ICMP unreachable, a full buffer); the datagram is lost either way */
  onError?: (e: Error) => void;
}

export class SharedUdp {
  readonly port: number;
  readonly address: string;
  readonly counters: UdpCounters = { received: 0, dht: 0, utp: 0, tracker: 0, trackerUnmatched: 0, dropped: 0, sent: 0, errors: 0 };
  private dht: DatagramHandler | null = null;
  private utp: DatagramHandler | null = null;
  private readonly transactions = new Map<number, DatagramHandler>();
  private closed = false;
  private readonly onSendError: (e: Error | null) => void;

  private constructor(private readonly socket: Socket, private readonly o: SharedUdpOptions) {
    const a = socket.address();
    this.port = a.port;
    this.address = a.address;
    socket.on('message', (buf, rinfo) => this.dispatch(buf, rinfo.address, rinfo.port));
    socket.on('error', (e) => this.failed(e));
    // one closure for every send: no allocation per datagram
    this.onSendError = (e) => {
      if (e) this.failed(e);
    };
  }

  /** Binds a socket on `port` (0: any free one). Rejects with the bind error (EADDRINUSE…). */
  static async bind(port: number, host?: string, o: SharedUdpOptions = {}): Promise<SharedUdp> {
    // IPv6 only: the IPv4 socket may hold the same port number (utp/on-udp.ts)
    const socket = createSocket({ type: o.type ?? 'udp4', ipv6Only: o.type === 'udp6', recvBufferSize: RECV_BUFFER, sendBufferSize: SEND_BUFFER });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ port, address: host }, () => {
        socket.off('error', reject);
        resolve();
      });
    }).catch((e: unknown) => {
      socket.close();
      throw e;
    });
    return new SharedUdp(socket, o);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Sends one datagram; after close() it is dropped (a late retransmission of a closing job).
   * The kernel usually takes the bytes within the call, but with its send buffer full libuv
   * queues `buf` itself: a caller that reuses its buffers passes `sent` and rewrites `buf` only
   * once it is called.
   */
  send(buf: Uint8Array, port: number, address: string, sent?: (e: Error | null) => void): void {
    if (this.closed) {
      sent?.(null);
      return;
    }
    this.counters.sent++;
    if (sent === undefined) this.socket.send(buf, port, address, this.onSendError);
    else {
      this.socket.send(buf, port, address, (e) => {
        this.onSendError(e);
        sent(e);
      });
    }
  }

  /** KRPC datagrams go to `handler` (null: dropped and counted). */
  onDht(handler: DatagramHandler | null): void {
    this.dht = handler;
  }

  /** uTP datagrams go to `handler` (the uTP endpoint's receive; null: dropped and counted). */
  onUtp(handler: DatagramHandler | null): void {
    this.utp = handler;
  }

  /**
   * Tracker replies with this transaction id go to `handler` until the returned function is
   * called; null when the id is already waited for (the caller draws another).
   */
  expect(transactionId: number, handler: DatagramHandler): (() => void) | null {
    const tid = transactionId >>> 0;
    if (this.transactions.has(tid)) return null;
    this.transactions.set(tid, handler);
    return () => {
      if (this.transactions.get(tid) === handler) this.transactions.delete(tid);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.dht = null;
    this.utp = null;
    this.transactions.clear();
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  /** Routes a datagram by its first byte; the whole cost for junk is a read and two compares. */
  private dispatch(buf: Buffer, address: string, port: number): void {
    this.counters.received++;
    if (buf.length === 0) {
      this.counters.dropped++;
      return;
    }
    const first = buf[0]!;
    if (first === FIRST_KRPC) {
      if (this.dht === null) this.counters.dropped++;
      else {
        this.counters.dht++;
        this.dht(buf, address, port);
      }
    } else if (first === FIRST_TRACKER) {
      const h = buf.length >= 8 ? this.transactions.get(buf.readUInt32BE(4)) : undefined;
      if (h === undefined) this.counters.trackerUnmatched++;
      else {
        this.counters.tracker++;
        h(buf, address, port);
      }
    } else if (utpShape(buf) && this.utp !== null) {
      this.counters.utp++;
      this.utp(buf, address, port);
    } else this.counters.dropped++;
  }

  private failed(e: Error): void {
    this.counters.errors++;
    this.o.onError?.(e);
  }
}
