/**
 * One uTP connection's protocol (BEP 29): the state machine, the send ring of unacked
 * packets with retransmission, the receive reorder ring with selective acks, LEDBAT. It knows
 * no socket and no timer: the endpoint hands it packets and calls tick() and flush(); it
 * reports to its owner (the stream) through ConnectionEvents.
 *
 * Where the BEP is vague this follows libtorrent (utp_stream.cpp): a state packet carries the
 * sequence number of the next data packet without consuming it, so the initiator takes
 * ack_nr = seq_nr - 1 from the SYN's answer; an accepted connection may send data at once;
 * the timeout resends everything unacked as the window allows (go-back-N), not one packet.
 *
 * Loss is found as RACK does (RFC 8985), by send order rather than by counting duplicate acks:
 * a packet sent before one that has been delivered, and outstanding a round trip longer, is
 * lost. One rule covers a hole under a SACK, a resend lost again, and the partial acks of a
 * burst that overflowed the receiver's socket (libtorrent's, when its thread is descheduled):
 * counting acks past a resend waits for new packets that a full window never sends.
 */
import { Ledbat } from './congestion.js';
import {
  EXT_SACK, HEADER_SIZE, MAX_SACK_BYTES, ST_DATA, ST_FIN, ST_RESET, ST_STATE, ST_SYN,
  type PacketHeader, rewriteTimes, sackHas, sackSet, writeHeader,
} from './packet.js';
import { seqAdd, seqDiff } from './seq.js';

/**
 * Payload bytes per packet. 1400: a 1500-byte Ethernet MTU less IPv6 (40) + UDP (8) + the
 * uTP header (20) leaves 1432, and 32 more for a tunnel (PPPoE 8, a VPN's few) keeps us out
 * of IP fragmentation without MTU probing. libtorrent probes up from 1452 (IPv4) instead.
 */
export const MSS = 1400;
/** slots of the send and receive rings: packets in flight and held out of order, at most */
const RING = 1024;
const RING_MASK = RING - 1;
/** receive buffer advertised when nothing is held (libtorrent's default is 1 MiB as well) */
export const RECV_BUFFER = 1024 * 1024;
/** send window ceiling: one ring of full packets */
const MAX_CWND = (RING - 2) * MSS;
/** write() says wait past this many unsent bytes (a TCP socket's userland buffer, roughly) */
export const SEND_HIGH_WATER = 1024 * 1024;
export const INITIAL_RTO_MS = 1000;
export const MIN_RTO_MS = 500;
const MAX_RTO_MS = 60_000;
/** consecutive timeouts before giving up: the SYN's (libtorrent utp_syn_resends = 2), data's (utp_num_resends = 3) */
export const SYN_RESENDS = 2;
export const DATA_RESENDS = 3;
/** our FIN is resent this often before the connection is dropped anyway (utp_fin_resends) */
const FIN_RESENDS = 2;
/** a NAT forgets a UDP mapping after about 30 s: send something this often when idle (libtorrent: 29 s) */
export const KEEPALIVE_MS = 29_000;
/** nothing heard for three keepalive periods: the other end has gone */
export const IDLE_TIMEOUT_MS = 3 * KEEPALIVE_MS;
/** the tail loss probe's least wait: the endpoint's tick is 50 ms anyway */
const PROBE_MIN_MS = 50;
/** bytes past our advertised window still taken (window probes, packets in flight when it closed) */
const OVERRUN_BYTES = 64 * MSS;
/** after our FIN is acked, how long the other end's FIN is waited for (to ack it) */
export const LINGER_MS = 3000;
/** received data packets that make an ack go at once rather than at the end of the burst */
const ACK_EVERY = 8;
/** three duplicate acks without a SACK mean the oldest packet is lost (BEP 29): a receiver without SACK says no more */
const DUP_ACKS = 3;

export type ConnState = 'syn_sent' | 'connected' | 'fin_sent' | 'closed';

export interface ConnectionEvents {
  connected(): void;
  data(chunk: Buffer): void;
  /** the other end's FIN and everything before it have arrived */
  end(): void;
  error(code: string, message: string): void;
  /** the connection is over: the endpoint forgets it */
  closed(): void;
  /** unsent bytes fell under the high-water mark */
  drain(): void;
  /** bytes of a write() were handed to the network, or (err) never will be */
  written(cb: (err?: Error | null) => void, err?: Error): void;
}

export interface ConnectionHost {
  now(): number;
  send(buf: Uint8Array): void;
  /** flush() is wanted soon (once this turn's packets are all in) */
  wantFlush(c: UtpConnection): void;
  counters: { sent: number; received: number; retransmitted: number; timeouts: number; fastResends: number; probes: number };
}

class OutPacket {
  readonly buf = Buffer.allocUnsafe(HEADER_SIZE + MSS);
  length = 0;
  seq = 0;
  payload = 0;
  sentAt = 0;
  /** the connection's count of transmissions when this one last went: "sent before" for RACK, exact where the clock is coarse */
  order = 0;
  transmissions = 0;
  /** taken out of the window as lost (RACK, a timeout): goes again when the window allows */
  needResend = false;
  view(): Buffer {
    return this.length === this.buf.length ? this.buf : this.buf.subarray(0, this.length);
  }
}

/** Packet buffers live as long as the process: a steady transfer takes them from here and gives them back. */
const pool: OutPacket[] = [];
const POOL_MAX = 4096;
function takePacket(): OutPacket {
  return pool.pop() ?? new OutPacket();
}
function givePacket(p: OutPacket): void {
  p.needResend = false;
  p.transmissions = 0;
  if (pool.length < POOL_MAX) pool.push(p);
}

interface Write {
  data: Buffer;
  at: number;
  cb: ((err?: Error | null) => void) | undefined;
}

const FIN_MARK = Buffer.alloc(0);

export interface ConnectionOptions {
  recvId: number;
  sendId: number;
  /** our first sequence number (random; tests pick one near the wrap) */
  seq: number;
  initiator: boolean;
}

export class UtpConnection {
  state: ConnState;
  readonly recvId: number;
  readonly sendId: number;
  /** next sequence number to send */
  private seqNr: number;
  /** oldest unacked sequence number */
  private sndUna: number;
  /** last in-order sequence number received */
  private ackNr = 0;
  private readonly outRing: Array<OutPacket | null> = new Array(RING).fill(null);
  /** payload bytes in flight (not acked, not waiting for a resend) */
  curWindow = 0;
  private resendWaiting = 0;
  private readonly inRing: Array<Buffer | null> = new Array(RING).fill(null);
  private held = 0;
  private heldBytes = 0;
  /** in-order bytes not yet taken by the reader (paused) */
  private readonly undelivered: Buffer[] = [];
  private undeliveredHead = 0;
  private undeliveredBytes = 0;
  private paused = false;
  private eofSeq = -1;
  private eofDelivered = false;
  private readonly writes: Write[] = [];
  private writesHead = 0;
  /** bytes written and not yet in a packet */
  unsent = 0;
  needDrain = false;
  /** destroy() was called: send what is queued, then FIN */
  private closing = false;
  private finSeq = -1;
  private finAcked = false;
  private lingerUntil = Infinity;
  /** the other end's FIN and everything before it have come */
  private eofReceived = false;
  private peerWnd = RECV_BUFFER;
  private replyMicro = 0;
  private rtt = 0;
  private rttVar = 0;
  rto = INITIAL_RTO_MS;
  private rtoAt = Infinity;
  private timeouts = 0;
  private dupAcks = 0;
  /** transmissions so far, numbering each (OutPacket.order) */
  private sendOrder = 0;
  /** RACK: the order and round trip of the most recently sent packet known delivered */
  private rackOrder = 0;
  private rackRtt = 0;
  /** the least round trip seen: a quarter of it is the reordering allowed before a packet counts as lost */
  private minRtt = Infinity;
  /** the order of the last packet to go a second time: acks of packets sent before it may have waited on it, and give no RTT sample */
  private lastResendOrder = 0;
  /** what this ack delivered (reset per ack; fields, so that no object is made per ack) */
  private ackedBytes = 0;
  private ackedCount = 0;
  private newestOrder = 0;
  private newestSentAt = 0;
  private sampleSentAt = -Infinity;
  /** halve the window at most once per window of packets: until sndUna passes this */
  private lossSeq: number;
  private ackOwed = false;
  /** data packets received since our last ack went */
  private unackedPackets = 0;
  /** the reader's window was closed through a timeout: one packet may go to learn whether it has opened */
  private windowProbe = false;
  /** when an ack last took packets out of flight; the probe below waits from here */
  private lastProgress = 0;
  private probed = false;
  private lastSent: number;
  private lastReceived: number;
  readonly ledbat = new Ledbat({ mss: MSS, maxWindow: MAX_CWND });
  private readonly ackBuf = Buffer.alloc(HEADER_SIZE + 2 + MAX_SACK_BYTES);
  /** views of ackBuf for each SACK length (0, 4, …, 32 bytes): no allocation per ack */
  private readonly ackViews: Buffer[] = [];

  constructor(private readonly host: ConnectionHost, private readonly ev: ConnectionEvents, o: ConnectionOptions) {
    this.recvId = o.recvId;
    this.sendId = o.sendId;
    this.seqNr = o.seq;
    this.sndUna = o.seq;
    this.lossSeq = o.seq;
    this.state = o.initiator ? 'syn_sent' : 'connected';
    this.lastSent = this.lastReceived = host.now();
    this.ackViews.push(this.ackBuf.subarray(0, HEADER_SIZE));
    for (let n = 4; n <= MAX_SACK_BYTES; n += 4) this.ackViews.push(this.ackBuf.subarray(0, HEADER_SIZE + 2 + n));
  }

  /** The initiator's first packet: the SYN carries our receive id (BEP 29) and is resent as data is. */
  sendSyn(): void {
    const p = takePacket();
    p.seq = this.seqNr;
    p.payload = 0;
    p.length = HEADER_SIZE;
    writeHeader(p.buf, ST_SYN, this.recvId, 0, 0, this.window(), p.seq, 0);
    this.outRing[p.seq & RING_MASK] = p;
    this.seqNr = seqAdd(this.seqNr, 1);
    this.transmit(p, this.host.now());
  }

  /** An incoming SYN: `seq` is the initiator's. The answer is a state packet (flush). */
  acceptSyn(h: PacketHeader): void {
    this.ackNr = h.seqNr;
    this.replyMicro = (this.nowMicros() - h.timestamp) >>> 0;
    this.peerWnd = h.wndSize;
    this.ackOwed = true;
    this.host.wantFlush(this);
  }

  /** The same SYN again: our state packet was lost. */
  repeatSyn(): void {
    this.ackOwed = true;
    this.host.wantFlush(this);
  }

  get advertisedWindow(): number {
    return this.window();
  }

  private window(): number {
    return Math.max(0, RECV_BUFFER - this.heldBytes - this.undeliveredBytes);
  }

  private nowMicros(): number {
    return Math.floor(this.host.now() * 1000) >>> 0;
  }

  write(data: Uint8Array, cb: Write['cb']): boolean {
    if (this.closing || this.state === 'closed') {
      return false;
    }
    // a Buffer view once per write, so packets copy out of it with no view per packet
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
    this.writes.push({ data: buf, at: 0, cb });
    this.unsent += buf.length;
    this.host.wantFlush(this);
    if (this.unsent >= SEND_HIGH_WATER) this.needDrain = true;
    return !this.needDrain;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const before = this.window();
    this.deliverUndelivered();
    // a sender that saw a small window waits for news that it has reopened
    if (before < 4 * MSS && this.state !== 'closed') {
      this.ackOwed = true;
      this.host.wantFlush(this);
    }
  }

  /** The reader has gone (destroy()): what is queued goes, then our FIN; incoming data is acked and dropped. */
  close(): void {
    if (this.closing || this.state === 'closed') return;
    this.closing = true;
    if (this.state === 'syn_sent') {
      this.finish();
      return;
    }
    this.host.wantFlush(this);
  }

  /** Forget the connection now, telling the other end with a RESET. */
  reset(): void {
    if (this.state === 'closed') return;
    if (this.state !== 'syn_sent') this.sendControl(ST_RESET);
    this.finish();
  }

  /** (a method, so that TypeScript does not narrow the state across calls that change it) */
  isClosed(): boolean {
    return this.state === 'closed';
  }

  // ---- incoming ----

  onPacket(h: PacketHeader): void {
    if (this.state === 'closed') return;
    const now = this.host.now();
    this.host.counters.received++;
    this.lastReceived = now;
    if (h.type === ST_RESET) {
      if (this.state === 'syn_sent') this.fail('ECONNREFUSED', 'uTP connection refused (RESET to our SYN)');
      else if (this.closing) this.finish();
      else this.fail('ECONNRESET', 'uTP connection reset by peer');
      return;
    }
    if (h.type === ST_SYN) {
      this.repeatSyn();
      return;
    }
    this.replyMicro = (this.nowMicros() - h.timestamp) >>> 0;
    this.peerWnd = h.wndSize;
    if (this.state === 'syn_sent') {
      // only the answer to our SYN counts; it may be data already (libtorrent takes both)
      if ((h.type !== ST_STATE && h.type !== ST_DATA) || h.ackNr !== this.sndUna) return;
      this.ackNr = seqAdd(h.seqNr, -1);
      this.state = 'connected';
      this.processAck(h, now);
      this.ev.connected();
      if (this.isClosed()) return;
    } else this.processAck(h, now);
    if (this.isClosed()) return;
    if (h.type === ST_DATA || h.type === ST_FIN) {
      this.processIncoming(h);
      if (this.unackedPackets >= ACK_EVERY && !this.isClosed()) this.sendAck(now);
    }
    this.host.wantFlush(this);
  }

  private processAck(h: PacketHeader, now: number): void {
    const ack = h.ackNr;
    // an ack of something we never sent, or older than what is acked, says nothing about flight
    const ahead = seqDiff(this.sndUna, seqAdd(ack, 1));
    if (ahead < 0 || seqDiff(ack, this.seqNr) <= 0) return;
    this.ackedBytes = 0;
    this.ackedCount = 0;
    this.newestOrder = 0;
    this.sampleSentAt = -Infinity;
    for (let s = this.sndUna; s !== seqAdd(ack, 1); s = seqAdd(s, 1)) {
      const p = this.outRing[s & RING_MASK];
      if (p) this.deliver(p, now);
    }
    const advanced = ahead > 0;
    if (advanced) this.sndUna = seqAdd(ack, 1);
    if (h.sack) {
      const sack = h.sack;
      for (let i = 0, bits = sack.length * 8; i < bits; i++) {
        const s = seqAdd(ack, 2 + i);
        if (seqDiff(s, this.seqNr) <= 0) break;
        const p = this.outRing[s & RING_MASK];
        if (p && sackHas(sack, i)) this.deliver(p, now);
      }
    }
    while (this.sndUna !== this.seqNr && this.outRing[this.sndUna & RING_MASK] === null) this.sndUna = seqAdd(this.sndUna, 1);
    let lost = false;
    if (!advanced && h.type === ST_STATE && this.sndUna !== this.seqNr && !h.sack) {
      if (++this.dupAcks >= DUP_ACKS) {
        this.dupAcks = 0;
        const p = this.outRing[this.sndUna & RING_MASK];
        if (p && !p.needResend && p.transmissions === 1) {
          this.markLost(p);
          lost = true;
        }
      }
    } else if (advanced) {
      this.dupAcks = 0;
    }
    if (this.ackedCount > 0) {
      if (this.newestOrder > this.rackOrder) {
        this.rackOrder = this.newestOrder;
        this.rackRtt = now - this.newestSentAt;
      }
      if (this.sampleSentAt > -Infinity) this.rttSample(now - this.sampleSentAt);
      lost = this.detectLosses(now) || lost;
    }
    if (lost) this.onLoss();
    if (this.ackedCount > 0) {
      this.timeouts = 0;
      this.lastProgress = now;
      this.probed = false;
      this.ledbat.onAck(this.ackedBytes, h.timestampDiff, now);
      this.rtoAt = this.sndUna === this.seqNr ? Infinity : now + this.rto;
      if (this.finSeq >= 0 && !this.finAcked && this.sndUna === this.seqNr && seqDiff(this.finSeq, this.seqNr) > 0) {
        // our FIN is acked: nothing more will be sent. The other end's FIN may still come, and
        // is acked rather than answered with a RESET for a connection we forgot (flush, tick)
        this.finAcked = true;
        this.lingerUntil = now + LINGER_MS;
      }
    }
  }

  /**
   * A packet the other end has (acked or SACKed) leaves the ring. It may move RACK's mark, and
   * give the ack's RTT sample: Karn's rule (first transmissions only), and only a packet sent
   * after the last resend, since one sent before may have waited at the receiver for the hole
   * to be filled, or for the SACK's reach to slide over it, and say seconds where the round trip
   * is a millisecond (the RTO then grew past a minute, and the connection stood still).
   */
  private deliver(p: OutPacket, now: number): void {
    // a resent packet acked sooner than any round trip was delivered by its first transmission
    if (p.order > this.newestOrder && (p.transmissions === 1 || now - p.sentAt >= this.minRtt)) {
      this.newestOrder = p.order;
      this.newestSentAt = p.sentAt;
    }
    if (p.transmissions === 1 && p.order > this.lastResendOrder && p.sentAt > this.sampleSentAt) this.sampleSentAt = p.sentAt;
    this.ackedBytes += this.release(p);
    this.ackedCount++;
  }

  /**
   * RACK (RFC 8985): every packet sent before the newest delivered one and outstanding longer
   * than its round trip plus a reordering allowance is lost. Packets in sequence order were
   * first sent in that order, so the scan stops at the first first-transmission still in time.
   */
  private detectLosses(now: number): boolean {
    if (this.rackOrder === 0 || this.sndUna === this.seqNr) return false;
    const deadline = now - this.rackRtt - (this.minRtt === Infinity ? 0 : this.minRtt / 4);
    let lost = false;
    for (let s = this.sndUna; s !== this.seqNr; s = seqAdd(s, 1)) {
      const p = this.outRing[s & RING_MASK];
      if (!p || p.needResend) continue;
      if (p.order < this.rackOrder && p.sentAt <= deadline) {
        this.markLost(p);
        lost = true;
      } else if (p.transmissions === 1) break;
    }
    return lost;
  }

  /** A lost packet leaves the window and goes again as soon as the window allows (flush). */
  private markLost(p: OutPacket): void {
    p.needResend = true;
    this.resendWaiting++;
    this.curWindow -= p.payload;
    this.host.counters.fastResends++;
  }

  /** The window halves at most once per window of packets (a burst's losses are one congestion event). */
  private onLoss(): void {
    if (seqDiff(this.lossSeq, this.sndUna) < 0) return;
    this.ledbat.onLoss();
    this.lossSeq = this.seqNr;
  }

  /** An acked packet leaves the ring; returns its payload bytes. */
  private release(p: OutPacket): number {
    this.outRing[p.seq & RING_MASK] = null;
    if (p.needResend) this.resendWaiting--;
    else this.curWindow -= p.payload;
    const n = p.payload;
    givePacket(p);
    return n;
  }

  /** the smoothed round trip, ms (0 before the first sample) */
  get roundTrip(): number {
    return this.rtt;
  }

  /** BEP 29: rtt and rtt_var as TCP's, rto = max(rtt + 4 rtt_var, 500 ms). Karn: first transmissions only. */
  private rttSample(ms: number): void {
    const first = this.minRtt === Infinity;
    if (ms < this.minRtt) this.minRtt = ms;
    if (first) {
      this.rtt = ms;
      this.rttVar = ms / 2;
    } else {
      const delta = this.rtt - ms;
      this.rttVar += (Math.abs(delta) - this.rttVar) / 4;
      this.rtt += (ms - this.rtt) / 8;
    }
    this.rto = Math.max(this.rtt + this.rttVar * 4, MIN_RTO_MS);
  }

  private processIncoming(h: PacketHeader): void {
    this.ackOwed = true;
    // one ack per burst is all a sender needs, until it is lost and the whole window waits for
    // a probe: an ack every few packets as well, as TCP acks every second segment
    this.unackedPackets++;
    const d = seqDiff(this.ackNr, h.seqNr);
    if (d <= 0) return; // a duplicate: the ack we owe tells the sender
    if (this.eofSeq >= 0 && seqDiff(h.seqNr, this.eofSeq) < 0) return;
    if (d >= RING) return;
    const payload = h.type === ST_FIN ? FIN_MARK : h.payload;
    // a sender that ignores our closed window (a paused reader) is not buffered without end:
    // past the window and a few probes' worth, in-order packets are dropped unacked too
    if (this.heldBytes + this.undeliveredBytes + payload.length > RECV_BUFFER + OVERRUN_BYTES) return;
    if (h.type === ST_FIN) this.eofSeq = h.seqNr;
    if (d === 1) {
      this.ackNr = h.seqNr;
      this.take(payload);
      // the packets held out of order behind it follow
      for (let n = 0; n < RING && this.held > 0; n++) {
        const next = seqAdd(this.ackNr, 1);
        const b = this.inRing[next & RING_MASK];
        if (!b) break;
        this.inRing[next & RING_MASK] = null;
        this.held--;
        this.heldBytes -= b.length;
        this.ackNr = next;
        this.take(b);
      }
      return;
    }
    const slot = h.seqNr & RING_MASK;
    if (this.inRing[slot] !== null) return;
    // held packets count against the window we advertise: past it, drop as the sender should not have sent
    if (payload.length > this.window()) return;
    this.inRing[slot] = payload;
    this.held++;
    this.heldBytes += payload.length;
  }

  private take(b: Buffer): void {
    if (b === FIN_MARK) {
      this.eofSeq = this.ackNr;
      this.eofReceived = true;
      if (this.paused || this.undeliveredHead < this.undelivered.length) this.undelivered.push(b);
      else this.deliverEof();
      return;
    }
    if (this.closing) return;
    if (this.paused || this.undeliveredHead < this.undelivered.length) {
      this.undelivered.push(b);
      this.undeliveredBytes += b.length;
      return;
    }
    this.ev.data(b);
  }

  private deliverUndelivered(): void {
    while (!this.paused && this.undeliveredHead < this.undelivered.length && this.state !== 'closed') {
      const b = this.undelivered[this.undeliveredHead]!;
      this.undelivered[this.undeliveredHead++] = FIN_MARK;
      if (b === FIN_MARK) {
        this.deliverEof();
        continue;
      }
      this.undeliveredBytes -= b.length;
      this.ev.data(b);
    }
    if (this.undeliveredHead === this.undelivered.length) {
      this.undelivered.length = 0;
      this.undeliveredHead = 0;
    }
  }

  private deliverEof(): void {
    if (this.eofDelivered) return;
    this.eofDelivered = true;
    this.ev.end();
  }

  // ---- outgoing ----

  /** Send what the windows allow: resends first, then new data, then FIN, then an ack if still owed. */
  flush(): void {
    if (this.state === 'closed' || this.state === 'syn_sent') return;
    const now = this.host.now();
    const limit = Math.min(this.ledbat.cwnd, this.peerWnd);
    for (let s = this.sndUna; s !== this.seqNr && this.resendWaiting > 0; s = seqAdd(s, 1)) {
      const p = this.outRing[s & RING_MASK];
      if (!p || !p.needResend) continue;
      if (this.curWindow > 0 && this.curWindow + p.payload > limit) break;
      p.needResend = false;
      this.resendWaiting--;
      this.curWindow += p.payload;
      this.retransmit(p, now);
    }
    // new data only once every lost packet has gone again; an owed ack goes whatever the window
    while (this.resendWaiting === 0 && this.unsent > 0 && seqDiff(this.sndUna, this.seqNr) < RING - 1) {
      const size = Math.min(MSS, this.unsent);
      if (this.curWindow + size > limit) {
        // one packet may go past a congestion window smaller than a packet when nothing is in
        // flight (BEP 29); past the reader's window only as the probe a timeout allows
        const mayProbe = this.curWindow === 0 && (this.windowProbe || size > this.ledbat.cwnd) && this.peerWnd >= 0;
        if (!mayProbe || (this.peerWnd < size && !this.windowProbe)) {
          if (this.curWindow === 0 && this.rtoAt === Infinity) this.rtoAt = now + this.rto;
          break;
        }
      }
      this.windowProbe = false;
      this.sendData(size, now);
    }
    if (this.closing && this.resendWaiting === 0 && this.unsent === 0 && this.finSeq < 0 && seqDiff(this.sndUna, this.seqNr) < RING - 1) {
      this.sendFin(now);
    }
    if (this.ackOwed) this.sendAck(now);
    // both FINs are acked (ours by them, theirs just now): nothing is left to say
    if (this.finAcked && this.eofReceived) this.finish();
  }

  private sendData(size: number, now: number): void {
    const p = takePacket();
    p.seq = this.seqNr;
    p.payload = size;
    p.length = HEADER_SIZE + size;
    let at = HEADER_SIZE;
    while (at < p.length) {
      const w = this.writes[this.writesHead]!;
      const n = Math.min(p.length - at, w.data.length - w.at);
      w.data.copy(p.buf, at, w.at, w.at + n);
      at += n;
      w.at += n;
      if (w.at === w.data.length) this.writeDone();
    }
    // a zero-length write's callback is due as soon as the bytes before it are
    while (this.writesHead < this.writes.length && this.writes[this.writesHead]!.data.length === 0) this.writeDone();
    this.unsent -= size;
    writeHeader(p.buf, ST_DATA, this.sendId, 0, 0, 0, p.seq, 0);
    this.outRing[p.seq & RING_MASK] = p;
    this.seqNr = seqAdd(this.seqNr, 1);
    this.curWindow += size;
    this.transmit(p, now);
    if (this.needDrain && this.unsent < SEND_HIGH_WATER / 2) {
      this.needDrain = false;
      this.ev.drain();
    }
  }

  private writeDone(): void {
    const w = this.writes[this.writesHead]!;
    this.writes[this.writesHead++] = undefined as unknown as Write;
    if (this.writesHead === this.writes.length) {
      this.writes.length = 0;
      this.writesHead = 0;
    }
    if (w.cb) this.ev.written(w.cb);
  }

  private sendFin(now: number): void {
    const p = takePacket();
    p.seq = this.seqNr;
    p.payload = 0;
    p.length = HEADER_SIZE;
    writeHeader(p.buf, ST_FIN, this.sendId, 0, 0, 0, p.seq, 0);
    this.outRing[p.seq & RING_MASK] = p;
    this.finSeq = p.seq;
    this.seqNr = seqAdd(this.seqNr, 1);
    this.state = 'fin_sent';
    this.transmit(p, now);
  }

  /** (Re)sends a ring packet with fresh times, window and ack. */
  private transmit(p: OutPacket, now: number): void {
    rewriteTimes(p.buf, Math.floor(now * 1000) >>> 0, this.replyMicro, this.window(), p.buf[0]! >> 4 === ST_SYN ? 0 : this.ackNr);
    p.sentAt = now;
    p.order = ++this.sendOrder;
    p.transmissions++;
    if (this.rtoAt === Infinity) this.rtoAt = now + this.rto;
    this.lastSent = now;
    // a data packet carries our ack as well
    this.ackOwed = this.ackOwed && this.held > 0;
    if (!this.ackOwed) this.unackedPackets = 0;
    this.host.counters.sent++;
    this.host.send(p.view());
  }

  private retransmit(p: OutPacket, now: number): void {
    this.host.counters.retransmitted++;
    this.transmit(p, now);
    this.lastResendOrder = p.order;
  }

  private sendAck(now: number): void {
    this.ackOwed = false;
    this.unackedPackets = 0;
    const buf = this.ackBuf;
    writeHeader(buf, ST_STATE, this.sendId, Math.floor(now * 1000) >>> 0, this.replyMicro, this.window(), this.stateSeq(), this.ackNr);
    let view = this.ackViews[0]!;
    if (this.held > 0) {
      // the mask starts at ack_nr + 2 (ack_nr + 1 is the hole) and reaches the last held packet
      let last = 0;
      for (let i = 0; i < MAX_SACK_BYTES * 8; i++) if (this.inRing[seqAdd(this.ackNr, 2 + i) & RING_MASK]) last = i;
      const bytes = Math.min(MAX_SACK_BYTES, ((last >> 5) + 1) * 4);
      buf[1] = EXT_SACK;
      buf[HEADER_SIZE] = 0;
      buf[HEADER_SIZE + 1] = bytes;
      const mask = buf.subarray(HEADER_SIZE + 2, HEADER_SIZE + 2 + bytes);
      mask.fill(0);
      for (let i = 0; i < bytes * 8; i++) if (this.inRing[seqAdd(this.ackNr, 2 + i) & RING_MASK]) sackSet(mask, i);
      view = this.ackViews[bytes / 4]!;
    }
    this.lastSent = now;
    this.host.counters.sent++;
    this.host.send(view);
  }

  /**
   * The seq_nr of a state packet: the next data packet's, which it does not consume; after our
   * FIN, the FIN's own, since libtorrent ignores every packet past the FIN but its state packet.
   */
  private stateSeq(): number {
    return this.finSeq >= 0 ? this.finSeq : this.seqNr;
  }

  private sendControl(type: number): void {
    const now = this.host.now();
    writeHeader(this.ackBuf, type, this.sendId, Math.floor(now * 1000) >>> 0, this.replyMicro, this.window(), this.stateSeq(), this.ackNr);
    this.host.counters.sent++;
    this.host.send(this.ackViews[0]!);
  }

  // ---- timers ----

  /** The endpoint's periodic tick: retransmission timeout, keepalive, idle timeout. */
  tick(): void {
    if (this.state === 'closed') return;
    const now = this.host.now();
    if (this.finAcked && now >= this.lingerUntil) {
      this.finish();
      return;
    }
    if (now >= this.rtoAt) {
      this.onTimeout(now);
      if (this.isClosed()) return;
    } else if (this.state !== 'syn_sent' && this.sndUna !== this.seqNr) {
      // RACK's reordering allowance may run out with no ack coming to notice it
      if (this.detectLosses(now)) {
        this.onLoss();
        this.flush();
      } else if (!this.probed && now - this.lastProgress >= Math.max(PROBE_MIN_MS, 2 * this.rtt)) this.probe(now);
    }
    if (now - this.lastReceived >= IDLE_TIMEOUT_MS) {
      this.fail('ETIMEDOUT', `uTP connection idle for ${IDLE_TIMEOUT_MS / 1000} s`);
      return;
    }
    if (this.state !== 'syn_sent' && now - this.lastSent >= KEEPALIVE_MS) this.sendAck(now);
  }

  /**
   * Nothing acked for two round trips while packets are in flight: the tail of a burst was lost
   * and no later packet will show the hole in a SACK. The oldest packet goes again (a tail loss
   * probe, RFC 8985): its ack moves RACK's mark past every packet sent before it, and those
   * still outstanding are resent as the window allows, long before the 500 ms minimum timeout.
   */
  private probe(now: number): void {
    this.probed = true;
    const p = this.outRing[this.sndUna & RING_MASK];
    if (!p || p.needResend) return;
    this.host.counters.probes++;
    this.retransmit(p, now);
  }

  /** Every unacked packet leaves the window and goes again as it allows, oldest first (libtorrent's need_resend). */
  private markAllForResend(): void {
    for (let s = this.sndUna; s !== this.seqNr; s = seqAdd(s, 1)) {
      const p = this.outRing[s & RING_MASK];
      if (!p || p.needResend) continue;
      p.needResend = true;
      this.resendWaiting++;
      this.curWindow -= p.payload;
    }
  }

  private onTimeout(now: number): void {
    this.timeouts++;
    this.host.counters.timeouts++;
    const limit = this.state === 'syn_sent' ? SYN_RESENDS : this.state === 'fin_sent' ? FIN_RESENDS : DATA_RESENDS;
    if (this.timeouts > limit) {
      if (this.state === 'fin_sent' || this.closing) this.finish();
      else this.fail('ETIMEDOUT', this.state === 'syn_sent' ? 'uTP connect timed out' : `uTP: no ack after ${limit} resends`);
      return;
    }
    this.rto = Math.min(MAX_RTO_MS, this.rto * 2);
    this.rtoAt = Infinity;
    if (this.sndUna === this.seqNr) {
      // nothing in flight: the reader's window was closed; its ack (it takes one packet in
      // order whatever it advertises) resets the count, so a paused reader is never given up on
      this.windowProbe = true;
      this.host.wantFlush(this);
      return;
    }
    this.ledbat.onTimeout();
    this.markAllForResend();
    this.dupAcks = 0;
    this.lossSeq = this.seqNr;
    if (this.state === 'syn_sent') {
      const p = this.outRing[this.sndUna & RING_MASK]!;
      p.needResend = false;
      this.resendWaiting--;
      this.retransmit(p, now);
      return;
    }
    this.flush();
  }

  private fail(code: string, message: string): void {
    if (this.state === 'closed') return;
    // the error first: the stream reports it, then 'close' (as a socket does)
    if (!this.closing) this.ev.error(code, message);
    this.finish();
  }

  private finish(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (let i = 0; i < RING; i++) {
      const p = this.outRing[i];
      if (p) givePacket(p);
      this.outRing[i] = null;
      this.inRing[i] = null;
    }
    this.curWindow = 0;
    this.resendWaiting = 0;
    this.held = 0;
    this.heldBytes = 0;
    this.rtoAt = Infinity;
    // callbacks of writes that never went: as a destroyed socket's
    const pending = this.writes.slice(this.writesHead);
    this.writes.length = 0;
    this.writesHead = 0;
    this.unsent = 0;
    this.ev.closed();
    if (pending.some((w) => w.cb)) {
      const err = Object.assign(new Error('uTP connection closed before the write was sent'), { code: 'ERR_STREAM_DESTROYED' });
      for (const w of pending) if (w.cb) this.ev.written(w.cb, err);
    }
  }
}
