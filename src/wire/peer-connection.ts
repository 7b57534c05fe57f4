/**
 * One peer connection: handshake, message codec, choke/interest state, keep-alives and
 * timeouts, byte counters, and a plug-in point for BEP 10 extensions (the core knows nothing of
 * ut_metadata or ut_pex: they register themselves by name).
 *
 * A protocol violation or a timeout closes the connection with a typed reason ('close' event,
 * close-reason.ts); it is never thrown out of here.
 */
import { EventEmitter } from 'node:events';
import { decode } from '../bencode/decoder.js';
import { encode } from '../bencode/encoder.js';
import type { BDict, BValue } from '../bencode/types.js';
import { ipBytes } from '../peers/compact.js';
import { normalizeIp } from '../peers/record.js';
import { Allowance, type Bandwidth } from './bandwidth.js';
import { closeReason, socketErrorReason, type CloseReason } from './close-reason.js';
import { FrameDecoder, WireViolation, type WireLimits } from './frame-decoder.js';
import type { WireSocket } from './memory-pipe.js';
import { MseInitiator, MseResponder, PLAIN_PREFIX, type MseResult } from './mse.js';
import type { Rc4 } from './rc4.js';
import { DHT_BIT, EXTENSION_BIT, FAST_BIT, encodeHandshake, encodeMessage, encodeRequests, hasBit, reservedBits, type Handshake, type WireMessage } from './protocol.js';

/**
 * Messages that wait for upload tokens, in order: what carries upload (piece blocks, and
 * extension messages, e.g. ut_metadata pieces) and choke/unchoke, which must stay in order with
 * the blocks (a peer without BEP 6 takes a choke as "everything requested is dropped", so a
 * choke must not overtake blocks sent before it). Everything else is written at once and only
 * charged: the handshake, bitfield/have, interested, request/cancel/reject, keep-alive, port
 * and the extended handshake drive our own download or keep the connection alive, and queued
 * behind up to the uploader's 128 KiB of blocks they would wait seconds at a low upload limit
 * (128 KiB at 50 KiB/s: 2.6 s for every request we send), starving our download.
 * (A reject may so reach the peer before a choke sent earlier: BEP 6 allows a reject at any
 * time.) libtorrent instead queues every byte behind the same quota, in one send buffer kept
 * short (send_buffer_watermark), and exempts only a connection still connecting. The bytes sent
 * at once still count here (charged to the buckets, their debt floored at one burst), so the
 * limit holds for everything written as long as that traffic alone stays under it.
 */
function paced(m: WireMessage): boolean {
  return m.type === 'piece' || m.type === 'hashes' || m.type === 'choke' || m.type === 'unchoke' || (m.type === 'extended' && m.id !== 0);
}

/** A message waiting for upload tokens. */
interface Queued {
  bytes: Buffer | [Buffer, Buffer];
  length: number;
  flushed: (() => void) | undefined;
}

export interface WireExtension {
  /** the BEP 10 name, e.g. 'ut_metadata' */
  readonly name: string;
  /** extra top-level fields for our extended handshake (e.g. metadata_size) */
  handshakeFields?(conn: PeerConnection): Record<string, BValue>;
  /** the peer's extended handshake arrived */
  onHandshake?(conn: PeerConnection, remote: BDict): void;
  /** a message for this extension arrived */
  onMessage(conn: PeerConnection, payload: Buffer): void;
}

/**
 * Where a socket created with `onread` (one reused read buffer, no allocation per read) hands
 * its bytes: the connection sets `onChunk`. A chunk is only valid during the call, so the wire
 * code consumes it synchronously (pieces are copied into their piece, everything else parsed).
 */
export interface ReadFeed {
  onChunk: ((chunk: Buffer) => void) | null;
}

export interface ConnectionOptions {
  /** the socket reads into a reused buffer and delivers here instead of 'data' events */
  reads?: ReadFeed;
  peerId: Buffer;
  /** outgoing: the torrent we want; incoming: leave undefined and pass `accept` */
  infoHash?: Buffer;
  /**
   * outgoing, a hybrid torrent (BEP 52 "Upgrade Path"): its SHA-256 info hash truncated to 20
   * bytes. We set the v2 bit, and the peer may answer with this hash instead of `infoHash`.
   */
  v2InfoHash?: Buffer;
  /** incoming: the limits for a torrent we serve, or null to refuse the info hash */
  accept?: (infoHash: Buffer) => WireLimits | null;
  limits?: WireLimits;
  /** we initiated the connection (we send the handshake first) */
  outgoing: boolean;
  /**
   * incoming: the info hashes an encrypted (MSE) handshake may be for; without them only the
   * plaintext handshake is understood
   */
  skeys?: readonly Buffer[];
  /** outgoing: start with an MSE handshake offering these methods (CRYPTO_PLAINTEXT | CRYPTO_RC4 bits) */
  encrypt?: number;
  /** advertise and use BEP 6 (default true) */
  fast?: boolean;
  /** advertise BEP 10 (default true) */
  extended?: boolean;
  /** our DHT node's UDP port: advertise BEP 5 and send a `port` message to peers that have it */
  dhtPort?: number;
  /** fields for our extended handshake besides m (v, reqq, p, yourip…) */
  extendedHandshake?: Record<string, BValue>;
  handshakeTimeoutMs?: number;
  /** close when nothing arrives for this long (default 120 s; BEP 3 keep-alives come every 2 min) */
  idleTimeoutMs?: number;
  keepAliveMs?: number;
  /** how the peer is named in logs (host:port) */
  name?: string;
  /** rate limits: token buckets charged with every byte read (`down`) and written (`up`) */
  bandwidth?: Bandwidth;
}

export interface PeerConnectionEvents {
  handshake: [Handshake];
  message: [WireMessage];
  /** every message we send (for tracing) */
  sent: [WireMessage];
  'extended-handshake': [BDict];
  /** null: we closed it, normally */
  close: [CloseReason | null];
  drain: [];
}

export class PeerConnection extends EventEmitter<PeerConnectionEvents> {
  /** a TCP socket, or one end of a memoryPipe (an in-process peer: a web seed) */
  readonly socket: WireSocket;
  readonly name: string;
  readonly outgoing: boolean;
  private readonly opts: ConnectionOptions;
  private readonly decoder: FrameDecoder;
  remote: Handshake | null = null;
  infoHash: Buffer | undefined;
  /** BEP 6 is on when both sides set the bit */
  fast = false;
  /** BEP 10 is on when both sides set the bit */
  extended = false;
  /** the peer's extended handshake, once received */
  remoteExtended: BDict | null = null;
  private readonly extensions: WireExtension[] = [];
  private readonly remoteIds = new Map<string, number>();

  amChoking = true;
  amInterested = false;
  peerChoking = true;
  peerInterested = false;

  /** payload bytes of piece messages received / sent */
  downloaded = 0;
  uploaded = 0;
  closed = false;
  closeReason: CloseReason | null = null;
  /** how the stream is carried: MSE (with plaintext or RC4 after it) or the plain protocol */
  encryption: 'none' | 'mse-plaintext' | 'mse-rc4' = 'none';
  /** incoming with skeys: the first bytes, until they show which handshake this is */
  private sniff: Buffer | null = null;
  private mse: MseResponder | MseInitiator | null = null;
  /** our writes while the MSE handshake runs; they go out once the method is chosen */
  private held: Buffer[] | null = null;
  private rc4Out: Rc4 | null = null;
  private rc4In: Rc4 | null = null;
  private lastRecv = Date.now();
  private lastSend = Date.now();
  /** when it connected (this object was made) */
  readonly connectedAt = Date.now();
  private timer: NodeJS.Timeout | null = null;
  /** null without a download limit: reads then cost nothing more */
  private down: Allowance | null = null;
  /** null without an upload limit: writes then cost nothing more */
  private up: Allowance | null = null;
  /** messages waiting for upload tokens, oldest first */
  private readonly queued: Queued[] = [];
  private queuedBytes = 0;
  /** send() said false for want of tokens: 'drain' is owed once they come */
  private owesDrain = false;
  /** reading stopped for want of download tokens */
  private readsPaused = false;

  constructor(socket: WireSocket, opts: ConnectionOptions) {
    super();
    this.socket = socket;
    this.opts = opts;
    this.outgoing = opts.outgoing;
    this.infoHash = opts.infoHash;
    this.name = opts.name ?? `${socket.remoteAddress}:${socket.remotePort}`;
    this.decoder = new FrameDecoder(opts.limits ?? {});
    socket.setNoDelay(true);
    if (opts.reads) opts.reads.onChunk = (chunk) => this.onData(chunk);
    else socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e: NodeJS.ErrnoException) => this.close(socketErrorReason(e)));
    socket.on('close', () => this.close(closeReason('hang-up', 'connection closed by peer')));
    socket.on('end', () => this.close(closeReason('hang-up', 'connection closed by peer')));
    // with messages waiting for upload tokens, 'drain' comes once they have gone (flushQueued)
    socket.on('drain', () => {
      if (this.queued.length === 0) this.emit('drain');
    });
    this.setBandwidth(opts.bandwidth);
    const hsTimeout = opts.handshakeTimeoutMs ?? 10_000;
    const started = Date.now();
    this.timer = setInterval(() => this.tick(started, hsTimeout), Math.min(1000, hsTimeout));
    this.timer.unref();
    if (!opts.outgoing && opts.skeys !== undefined && opts.skeys.length > 0) this.sniff = Buffer.alloc(0);
    if (opts.outgoing) {
      if (!opts.infoHash) throw new Error('an outgoing connection needs the info hash');
      if (opts.encrypt !== undefined) {
        this.held = [];
        this.mse = new MseInitiator({ infoHash: opts.infoHash, provide: opts.encrypt, send: (b) => this.socket.write(b) });
      }
      this.sendHandshake(opts.infoHash);
    }
  }

  /** Registers an extension; call before the extended handshake is sent. */
  use(ext: WireExtension): void {
    this.extensions.push(ext);
  }

  /**
   * A new owner's extensions in place of the old ones (a magnet's connection taken over by its
   * torrent): the peer is told by a new extended handshake, which BEP 10 allows at any time.
   */
  replaceExtensions(exts: readonly WireExtension[]): void {
    this.extensions.length = 0;
    this.extensions.push(...exts);
    if (this.extended && this.remote !== null && !this.closed) this.sendExtendedHandshake();
  }

  /**
   * The rate limits to charge from now on: an incoming connection's torrent (and so its
   * limits) is known only at its handshake, and a magnet's connection changes owner.
   */
  setBandwidth(bw: Bandwidth | undefined): void {
    this.down?.close();
    this.up?.close();
    this.down = bw?.down ? new Allowance(bw.down, () => this.resumeReads()) : null;
    this.up = bw?.up ? new Allowance(bw.up, () => this.flushQueued()) : null;
    this.resumeReads();
    if (this.queued.length > 0) this.flushQueued();
  }

  /** Updates the limits (e.g. once the metadata of a magnet is known). */
  setLimits(limits: WireLimits): void {
    this.decoder.limits = limits;
  }

  /** The peer's id for an extension, when it supports it. */
  remoteExtensionId(name: string): number | undefined {
    return this.remoteIds.get(name);
  }

  /** The extension name behind an extended message id: ours for messages in, theirs for out. */
  extensionName(id: number, dir: 'in' | 'out'): string | undefined {
    if (dir === 'in') return this.extensions[id - 1]?.name;
    for (const [name, v] of this.remoteIds) if (v === id) return name;
    return undefined;
  }

  /** Bytes handed to us and not yet to the kernel (the socket's buffer, and what waits for tokens). */
  get writableLength(): number {
    return this.socket.writableLength + this.queuedBytes;
  }

  /** When the peer last sent us anything (a keep-alive counts). */
  get lastReceived(): number {
    return this.lastRecv;
  }

  private corked = false;
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  /**
   * Everything sent in one tick leaves in one writev: a seed answering a burst of requests
   * would otherwise make two syscalls per 16 KiB block.
   */
  private corkTick(): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
  }

  /**
   * Sends a message; returns false when the socket buffer is full, or the upload limit holds it
   * back (wait for 'drain'). `flushed` is called once the kernel has taken the message's bytes
   * (so its buffers may be reused, and the bytes count as delivered), not at all if the
   * connection dies first.
   */
  send(m: WireMessage, flushed?: () => void): boolean {
    if (this.closed) return false;
    switch (m.type) {
      case 'choke':
        this.amChoking = true;
        break;
      case 'unchoke':
        this.amChoking = false;
        break;
      case 'interested':
        this.amInterested = true;
        break;
      case 'not-interested':
        this.amInterested = false;
        break;
      case 'piece':
        this.uploaded += m.block.length;
        break;
      default:
        break;
    }
    this.lastSend = Date.now();
    if (this.listenerCount('sent') > 0) this.emit('sent', m);
    this.corkTick();
    const bytes = encodeMessage(m);
    if (this.up !== null) return this.sendLimited(m, bytes, flushed);
    if (Array.isArray(bytes)) {
      this.write(bytes[0]);
      return this.write(bytes[1], flushed);
    }
    return this.write(bytes, flushed);
  }

  /** send() under an upload limit: paced messages wait their turn and tokens, the rest go now. */
  private sendLimited(m: WireMessage, bytes: Buffer | [Buffer, Buffer], flushed: (() => void) | undefined): boolean {
    const up = this.up!;
    const length = Array.isArray(bytes) ? bytes[0].length + bytes[1].length : bytes.length;
    if (!paced(m)) {
      up.charge(length);
      return this.writeMessage(bytes, flushed);
    }
    if (this.queued.length === 0 && up.acquire()) {
      const ok = this.writeMessage(bytes, flushed);
      if (up.spend(length)) return ok;
      this.owesDrain = true;
      return false;
    }
    this.queued.push({ bytes, length, flushed });
    this.queuedBytes += length;
    this.owesDrain = true;
    return false;
  }

  private writeMessage(bytes: Buffer | [Buffer, Buffer], flushed: (() => void) | undefined): boolean {
    if (Array.isArray(bytes)) {
      this.write(bytes[0]);
      return this.write(bytes[1], flushed);
    }
    return this.write(bytes, flushed);
  }

  /** Upload tokens came: the queued messages go, in order, as far as they last; then 'drain'. */
  private flushQueued(): void {
    if (this.closed) return;
    this.corkTick();
    while (this.queued.length > 0) {
      if (this.up !== null && !this.up.acquire()) return;
      const q = this.queued.shift()!;
      this.queuedBytes -= q.length;
      this.writeMessage(q.bytes, q.flushed);
      this.up?.spend(q.length);
    }
    if (this.up?.waiting) return;
    // a full socket says 'drain' itself when it empties
    if (this.owesDrain && !this.socket.writableNeedDrain) {
      this.owesDrain = false;
      this.emit('drain');
    }
  }

  /**
   * Requests for `blocks`, in one buffer and one write: per block a message object, a 17-byte
   * buffer and a socket write entry was most of what the download engine allocated. (Traced
   * connections send them one by one, so that each is seen.)
   */
  sendRequests(blocks: ReadonlyArray<{ index: number; begin: number; length: number }>): void {
    if (this.closed || blocks.length === 0) return;
    if (this.listenerCount('sent') > 0) {
      for (const b of blocks) this.send({ type: 'request', index: b.index, begin: b.begin, length: b.length });
      return;
    }
    this.lastSend = Date.now();
    const bytes = encodeRequests(blocks);
    this.up?.charge(bytes.length);
    this.write(bytes);
  }

  /** The one place bytes of the BitTorrent stream go to the socket. */
  private write(b: Buffer, flushed?: () => void): boolean {
    if (this.held !== null) {
      // only handshakes are sent before the MSE handshake ends: copy so `flushed` can run now
      this.held.push(Buffer.from(b));
      flushed?.();
      return true;
    }
    // never encrypt in place: blocks we send are slices of shared read buffers
    const bytes = this.rc4Out ? this.rc4Out.update(b) : b;
    return flushed ? this.socket.write(bytes, (e) => e ?? flushed()) : this.socket.write(bytes);
  }

  /** Sends an extension message by extension name; false when the peer does not support it. */
  sendExtended(name: string, payload: Buffer): boolean {
    const id = this.remoteIds.get(name);
    if (id === undefined) return false;
    this.send({ type: 'extended', id, payload });
    return true;
  }

  /** Closes the connection (idempotent); `reason` null means a normal close by us. */
  close(reason: CloseReason | null = null): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.down?.close();
    this.up?.close();
    this.queued.length = 0;
    this.queuedBytes = 0;
    this.socket.destroy();
    this.emit('close', reason);
  }

  private tick(started: number, hsTimeout: number): void {
    const now = Date.now();
    if (this.remote === null) {
      if (now - started > hsTimeout) this.close(closeReason('timeout', `no handshake within ${hsTimeout} ms`));
      return;
    }
    const idle = this.opts.idleTimeoutMs ?? 120_000;
    // while we do not read (download limit), silence is ours, not the peer's
    if (this.readsPaused) this.lastRecv = now;
    if (now - this.lastRecv > idle) {
      this.close(closeReason('timeout', `nothing received for ${Math.round(idle / 1000)} s`));
      return;
    }
    if (now - this.lastSend > (this.opts.keepAliveMs ?? 60_000)) this.send({ type: 'keep-alive' });
  }

  private sendHandshake(infoHash: Buffer): void {
    const reserved = reservedBits({ extended: this.opts.extended ?? true, fast: this.opts.fast ?? true, dht: this.opts.dhtPort !== undefined, v2: this.opts.v2InfoHash !== undefined });
    const bytes = encodeHandshake({ reserved, infoHash, peerId: this.opts.peerId });
    this.up?.charge(bytes.length);
    this.write(bytes);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastRecv = Date.now();
    if (this.down !== null) this.meterRead(chunk.length);
    try {
      let bytes: Buffer | null = chunk;
      // received chunks are ours (or valid only during this call): decrypting in place is fine
      if (this.rc4In) bytes = this.rc4In.update(chunk, chunk);
      else if (this.sniff !== null) bytes = this.sniffHandshake(chunk);
      else if (this.mse !== null) bytes = this.mseStep(this.mse.push(chunk));
      if (bytes === null || bytes.length === 0) return;
      this.decoder.write(bytes, (h) => this.onHandshake(h), (m) => this.onMessage(m));
    } catch (e) {
      if (e instanceof WireViolation) this.close(closeReason(e.kind, e.message));
      else this.close(closeReason('local', `internal error: ${(e as Error).message}`));
    }
  }

  /**
   * Charges a read to the download limit; out of tokens, the socket stops reading (the chunk in
   * hand is still handled) until they return, and TCP's window then slows the sender. Until the
   * handshake is done reads are charged but never stopped (libtorrent exempts a connection still
   * connecting too): a handshake held back would time out.
   */
  private meterRead(n: number): void {
    if (this.remote === null) {
      this.down!.charge(n);
      return;
    }
    if (!this.down!.spend(n) && !this.readsPaused) {
      this.readsPaused = true;
      // sockets with `onread` (connector.ts) stop at the handle too: Socket.pause() knows them
      this.socket.pause();
    }
  }

  private resumeReads(): void {
    if (this.closed || !this.readsPaused) return;
    this.readsPaused = false;
    this.socket.resume();
  }

  /** Incoming: a plaintext handshake starts with PLAIN_PREFIX; anything else is taken for MSE. */
  private sniffHandshake(chunk: Buffer): Buffer | null {
    const buf = Buffer.concat([this.sniff!, chunk]);
    const n = Math.min(buf.length, PLAIN_PREFIX.length);
    if (buf.subarray(0, n).equals(PLAIN_PREFIX.subarray(0, n))) {
      if (n < PLAIN_PREFIX.length) {
        this.sniff = buf;
        return null;
      }
      this.sniff = null;
      return buf;
    }
    this.sniff = null;
    this.held = [];
    this.mse = new MseResponder({ skeys: this.opts.skeys!, send: (b) => this.socket.write(b) });
    return this.mseStep(this.mse.push(buf));
  }

  private mseStep(r: MseResult | null): Buffer | null {
    if (r === null) return null;
    this.mse = null;
    this.rc4Out = r.encrypt;
    this.rc4In = r.decrypt;
    this.encryption = r.encrypt ? 'mse-rc4' : 'mse-plaintext';
    if (!this.outgoing) this.infoHash = r.infoHash;
    const held = this.held ?? [];
    this.held = null;
    for (const b of held) this.write(b);
    return r.rest;
  }

  private onHandshake(h: Handshake): void {
    if (this.outgoing) {
      const upgraded = this.opts.v2InfoHash !== undefined && h.infoHash.equals(this.opts.v2InfoHash);
      if (!upgraded && !h.infoHash.equals(this.infoHash!)) throw new WireViolation(`handshake for another torrent (${h.infoHash.toString('hex')})`);
    } else {
      if (this.infoHash !== undefined && !h.infoHash.equals(this.infoHash)) throw new WireViolation('handshake for another torrent than the encrypted handshake named');
      const limits = this.opts.accept?.(h.infoHash) ?? null;
      if (limits === null) throw new WireViolation(`handshake for a torrent we do not serve (${h.infoHash.toString('hex')})`);
      this.infoHash = h.infoHash;
      this.decoder.limits = limits;
      this.sendHandshake(h.infoHash);
    }
    if (h.peerId.equals(this.opts.peerId)) throw new WireViolation('connected to ourselves', 'ourselves');
    this.remote = h;
    this.fast = (this.opts.fast ?? true) && hasBit(h.reserved, FAST_BIT);
    this.extended = (this.opts.extended ?? true) && hasBit(h.reserved, EXTENSION_BIT);
    this.emit('handshake', h);
    if (this.extended && !this.closed) this.sendExtendedHandshake();
    if (this.opts.dhtPort !== undefined && hasBit(h.reserved, DHT_BIT) && !this.closed) this.send({ type: 'port', port: this.opts.dhtPort });
  }

  private sendExtendedHandshake(): void {
    const m = new Map<string, BValue>();
    this.extensions.forEach((ext, i) => m.set(ext.name, i + 1));
    const dict = new Map<string, BValue>(Object.entries(this.opts.extendedHandshake ?? {}));
    // BEP 10 yourip: lets the peer learn its address as others see it
    const ip = normalizeIp(this.socket.remoteAddress ?? '');
    if (ip !== null) dict.set('yourip', ipBytes(ip));
    for (const ext of this.extensions) for (const [k, v] of Object.entries(ext.handshakeFields?.(this) ?? {})) dict.set(k, v);
    dict.set('m', m);
    this.send({ type: 'extended', id: 0, payload: encode(dict) });
  }

  private onMessage(m: WireMessage): void {
    if (this.closed) return;
    switch (m.type) {
      case 'choke':
        this.peerChoking = true;
        break;
      case 'unchoke':
        this.peerChoking = false;
        break;
      case 'interested':
        this.peerInterested = true;
        break;
      case 'not-interested':
        this.peerInterested = false;
        break;
      case 'piece':
        this.downloaded += m.block.length;
        break;
      case 'have-all':
      case 'have-none':
      case 'suggest':
      case 'reject':
      case 'allowed-fast':
        if (!this.fast) throw new WireViolation(`${m.type} without BEP 6 (fast extension) negotiated`);
        break;
      case 'extended':
        if (!this.extended) throw new WireViolation('extended message without BEP 10 negotiated');
        // traced before it takes effect (the peer command prints the message, then its outcome)
        this.emit('message', m);
        this.onExtended(m.id, m.payload);
        return;
      default:
        break;
    }
    this.emit('message', m);
  }

  private onExtended(id: number, payload: Buffer): void {
    if (id === 0) {
      let d: BValue;
      try {
        // a copy: the handshake is kept, and its bytes may live in a reused read buffer
        d = decode(Buffer.from(payload), { maxDepth: 16, maxValueSize: payload.length, allowUnsorted: true });
      } catch (e) {
        throw new WireViolation(`malformed extended handshake: ${(e as Error).message}`);
      }
      if (!(d instanceof Map)) throw new WireViolation('extended handshake is not a dict');
      const mm = d.get('m');
      if (mm !== undefined && !(mm instanceof Map)) throw new WireViolation('extended handshake "m" is not a dict');
      this.remoteIds.clear();
      if (mm instanceof Map) {
        for (const [k, v] of mm) {
          // id 0 means "disabled" (BEP 10); anything but a small integer is ignored
          if (typeof v === 'number' && v > 0 && v < 256) this.remoteIds.set(k, v);
        }
      }
      this.remoteExtended = d;
      for (const ext of this.extensions) ext.onHandshake?.(this, d);
      this.emit('extended-handshake', d);
      return;
    }
    // ids we assigned: 1 + index of the extension
    const ext = this.extensions[id - 1];
    if (ext === undefined) throw new WireViolation(`extended message with id ${id}, which we never assigned`);
    ext.onMessage(this, payload);
  }
}
