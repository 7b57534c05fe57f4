/**
 * A web seed (BEP 19) as a BitTorrent peer in this process. The torrent's engine (swarm/swarm.ts:
 * picker, request scheduler, hash checks, bans, per-peer stats) knows only peers, so rather
 * than a second download path inside it, each web seed becomes one more peer: it speaks the
 * peer wire protocol through our own PeerConnection, has every piece, and answers `request`s
 * from the HTTP server. The swarm dials it like any peer, through a memoryPipe
 * (wire/memory-pipe.ts) rather than a loopback socket, which cost each byte a trip through the
 * kernel and back. So a piece from a web seed is hash-checked, a server that sends wrong bytes is struck and banned, and the
 * picker's piece ownership keeps peers and web seeds off each other's pieces (outside
 * end-game) without a line of web-seed code in the swarm.
 *
 * Requests that follow each other in the torrent's bytes are coalesced into one run (up to
 * MAX_RUN bytes, across piece and file boundaries), mapped onto the files, and fetched with one
 * range request per file span; up to MAX_RUNS runs are in flight. The body streams into
 * `piece` messages block by block: nothing but the block being filled is held.
 *
 * A cancel drops a request not sent yet, queued or in a run, and rejects it (BEP 6: every request
 * is answered once, by a piece or a reject).
 *
 * Failures: the run's unanswered requests are rejected (BEP 6), the peer is choked so the swarm
 * asks others meanwhile, and it is unchoked after a back-off (2, 4, 8, 16 s). A server that
 * keeps failing, or says the file is not there, is given up: the connection is closed and no
 * new one is served, with a line naming the URL.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { LogLevel } from '../log.js';
import { pieceSize, pieceSpans } from '../metainfo/pieces.js';
import type { Torrent } from '../metainfo/torrent.js';
import type { PeerRecord } from '../peers/record.js';
import { closeReason } from '../wire/close-reason.js';
import { memoryPipe, type WireSocket } from '../wire/memory-pipe.js';
import { PeerConnection } from '../wire/peer-connection.js';
import { makePeerId, type WireMessage } from '../wire/protocol.js';
import { Bitfield } from '../swarm/bitfield.js';
import type { Block } from '../swarm/picker.js';
import { fileUrl, HttpRangeError, RangeClient } from './http-range.js';

/** Bytes in one run at most: large enough that a fast server is asked a few times a second, not hundreds. */
const MAX_RUN = 4 * 1024 * 1024;
/** Runs (HTTP requests) in flight per server, as aria2's -x4 does. */
const MAX_RUNS = 4;
/** The size the swarm asks for (BEP 3's usual 16 KiB), for counting queued bytes */
const BLOCK_GUESS = 16 * 1024;
/**
 * Requests waiting at most, and so the reqq we advertise (BEP 10): the swarm asks for 500 at
 * most per peer, and without a reqq for 250 (4 MiB), which 4 runs in flight cut into runs of
 * 1 MiB or less.
 */
const MAX_QUEUED = 2000;
/**
 * A run in flight already: the next waits for this many bytes of requests (or a piece's worth,
 * if more). Runs started as soon as a piece's worth of requests trickled in made a 256 MiB
 * download 470 HTTP requests of 560 KiB; 1 MiB made it ~200, 2 MiB ~160 (the swarm asks for
 * 500 blocks, 8 MiB, at most: 4 runs of 2 MiB still fit).
 */
const NEXT_RUN = 2 * 1024 * 1024;
/** Failures in a row before the server is given up: back-offs 2+4+8+16 s, then no more. */
const MAX_FAILURES = 5;
const BACKOFF_MAX_MS = 60_000;
/** Connections at once: the swarm dials one; a redial after a drop may overlap the old one. */
const MAX_CONNECTIONS = 4;

export interface WebSeedOptions {
  torrent: Torrent;
  /** the url-list entry */
  url: string;
  /** no byte for this long fails a request (default 30 s) */
  timeoutMs?: number;
  /** the first back-off, doubled after each failure in a row (default 2000 ms) */
  backoffMs?: number;
  log?: (line: string, level: LogLevel) => void;
}

export class WebSeedPeer extends EventEmitter<{ 'gave-up': [string] }> {
  readonly url: string;
  readonly torrent: Torrent;
  /** payload bytes read from the server */
  fetched = 0;
  /** HTTP requests made */
  requests = 0;
  private readonly client: RangeClient;
  private readonly peerId = makePeerId(randomBytes);
  private readonly conns = new Set<Serving>();
  private readonly log: (line: string, level: LogLevel) => void;
  private readonly backoffMs: number;
  private failures = 0;
  /** back-off: no request until then */
  private resumeAt = 0;
  gaveUp: string | null = null;
  private closed = false;

  constructor(o: WebSeedOptions) {
    super();
    this.url = o.url;
    this.torrent = o.torrent;
    this.log = o.log ?? ((): void => {});
    this.backoffMs = o.backoffMs ?? 2000;
    this.client = new RangeClient({ timeoutMs: o.timeoutMs, maxSockets: MAX_RUNS });
  }

  /** The record the swarm knows it by: no address, its URL is its key (peers/record.ts). */
  record(): PeerRecord {
    return { ip: '127.0.0.1', port: 0, source: 'webseed', url: this.url };
  }

  /**
   * A new connection to this peer: the swarm's end of it (Swarm.addPeer's `local` dial).
   * Refused (an end that hangs up at once) once closed or given up, or with MAX_CONNECTIONS open.
   */
  readonly connect = (): WireSocket => {
    const [theirs, ours] = memoryPipe();
    if (this.closed || this.gaveUp !== null || this.conns.size >= MAX_CONNECTIONS) ours.destroy();
    else this.serve(ours);
    return theirs;
  };

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.conns]) c.conn.close(null);
    this.client.destroy();
  }

  private serve(socket: WireSocket): void {
    const t = this.torrent;
    const conn = new PeerConnection(socket, {
      peerId: this.peerId,
      outgoing: false,
      accept: (h) => (h.equals(t.infoHash) ? { pieceCount: t.pieceCount, pieceSize: (i) => pieceSize(t, i) } : null),
      // the swarm may open with MSE (its retry after a plaintext hang-up): understood too
      skeys: [t.infoHash],
      // BEP 10 for reqq alone: no extension is offered (no PEX, the swarm has the metadata)
      extendedHandshake: { reqq: MAX_QUEUED },
      name: this.url,
    });
    const s = new Serving(this, conn);
    this.conns.add(s);
    conn.on('close', () => {
      this.conns.delete(s);
      s.closed();
    });
  }

  /** Now and then: may a run start (not in a back-off, not given up)? */
  get open(): boolean {
    return !this.closed && this.gaveUp === null && Date.now() >= this.resumeAt;
  }

  /** A run went through: the server works. */
  succeeded(bytes: number): void {
    this.failures = 0;
    this.fetched += bytes;
  }

  /**
   * A run failed: back off (every connection is choked until then), or give the server up.
   * Returns the back-off in ms, or null when given up.
   */
  failed(e: Error): number | null {
    if (this.gaveUp !== null) return null;
    const why = e.message;
    // runs in flight fail together when the server goes down: one failure, not MAX_RUNS
    const inBackOff = Date.now() < this.resumeAt;
    if (!inBackOff) this.failures++;
    if ((e instanceof HttpRangeError && e.kind === 'not-found') || this.failures >= MAX_FAILURES) {
      this.gaveUp = why;
      this.log(`web seed ${this.url}: given up: ${why}`, 'notice');
      for (const c of [...this.conns]) c.conn.close(closeReason('local', `web seed given up: ${why}`));
      this.emit('gave-up', why);
      return null;
    }
    // a back-off already running (another run failed at the same time) is not doubled again
    if (inBackOff) return this.resumeAt - Date.now();
    const ms = Math.min(BACKOFF_MAX_MS, this.backoffMs * 2 ** (this.failures - 1));
    this.resumeAt = Date.now() + ms;
    this.log(`web seed ${this.url}: ${why}; retrying in ${Math.round(ms / 1000)} s`, 'peer');
    for (const c of this.conns) c.backOff(ms);
    return ms;
  }

  /** Bytes [start, start+length) of the torrent, one range request per file span, in order. */
  async fetchRange(start: number, length: number, onData: (chunk: Buffer) => boolean, drained: () => Promise<void>, cancelled: () => boolean): Promise<void> {
    for (const span of rangeSpans(this.torrent, start, length)) {
      const f = this.torrent.files[span.file]!;
      if (f.pad) {
        // BEP 47 pad files are not on the server: they read as zeros
        onData(Buffer.alloc(span.length));
        continue;
      }
      this.requests++;
      // the server holds the files under the torrent's own names, not the safe ones we write
      const name = this.torrent.rawName ?? this.torrent.name;
      const url = fileUrl(this.url, name, this.torrent.multiFile ? (f.rawPath ?? f.path) : [name], this.torrent.multiFile);
      await this.client.fetch(url, span.fileOffset, span.length, { onData, drained, cancelled });
    }
  }
}

/** The file spans of the torrent's bytes [start, start+length), adjacent spans of a file merged. */
export function rangeSpans(t: Torrent, start: number, length: number): Array<{ file: number; fileOffset: number; length: number }> {
  const out: Array<{ file: number; fileOffset: number; length: number }> = [];
  const end = start + length;
  for (let p = Math.floor(start / t.pieceLength); p * t.pieceLength < end; p++) {
    for (const s of pieceSpans(t, p)) {
      const a = Math.max(start, p * t.pieceLength + s.pieceOffset);
      const b = Math.min(end, p * t.pieceLength + s.pieceOffset + s.length);
      if (a >= b) continue;
      const fileOffset = s.fileOffset + (a - (p * t.pieceLength + s.pieceOffset));
      const last = out[out.length - 1];
      if (last !== undefined && last.file === s.file && last.fileOffset + last.length === fileOffset) last.length += b - a;
      else out.push({ file: s.file, fileOffset, length: b - a });
    }
  }
  return out;
}

/** One connection from the swarm: its requests, coalesced into runs. */
class Serving {
  readonly conn: PeerConnection;
  private readonly seed: WebSeedPeer;
  private readonly queue: Block[] = [];
  private runs = 0;
  private timer: NodeJS.Timeout | null = null;
  private drainWaiters: Array<() => void> = [];
  /** the runs in flight: a cancel may drop a block of one that is not sent yet */
  private readonly active = new Set<Run>();

  constructor(seed: WebSeedPeer, conn: PeerConnection) {
    this.seed = seed;
    this.conn = conn;
    conn.on('handshake', () => {
      const t = seed.torrent;
      // every piece: have-all with BEP 6, else a full bitfield (spare bits clear, as BEP 3 says)
      if (conn.fast) conn.send({ type: 'have-all' });
      else {
        const all = new Bitfield(t.pieceCount);
        all.setAll();
        conn.send({ type: 'bitfield', bits: all.toBuffer() });
      }
    });
    conn.on('message', (m) => this.onMessage(m));
    conn.on('drain', () => {
      for (const w of this.drainWaiters.splice(0)) w();
    });
  }

  closed(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
    for (const w of this.drainWaiters.splice(0)) w();
  }

  private onMessage(m: WireMessage): void {
    switch (m.type) {
      case 'interested':
        if (this.seed.open) this.conn.send({ type: 'unchoke' });
        break;
      case 'hash-request':
        // an HTTP mirror has bytes, not merkle trees (BEP 52): the swarm asks another peer
        this.conn.send({ ...m, root: Buffer.from(m.root), type: 'hash-reject' });
        break;
      case 'request':
        if (this.conn.amChoking) {
          this.reject(m);
          return;
        }
        if (this.queue.length >= MAX_QUEUED) {
          this.conn.close(closeReason('violation', `more than ${MAX_QUEUED} requests queued`));
          return;
        }
        this.queue.push({ index: m.index, begin: m.begin, length: m.length });
        this.pump();
        break;
      case 'cancel': {
        // One not started yet is dropped and rejected (BEP 6). One in a run whose bytes are
        // still to come is dropped from the run and rejected too, rather than sent anyway:
        // the run's HTTP body is read whole either way, but the swarm's book of that request
        // (requests.ts `asked`) is settled now instead of when a slow server gets there, and
        // no piece of a block it has (end-game) is written to it. A block already sent is
        // not answered again: a piece and a reject for one request would be two answers, and
        // the second would settle a later request for the same block, whose own answer then
        // answers nothing (a violation). Without BEP 6 the drop is all: no reject exists, and
        // BEP 3 lets a cancelled block not come.
        const same = (r: Block): boolean => r.index === m.index && r.begin === m.begin && r.length === m.length;
        const i = this.queue.findIndex(same);
        if (i >= 0) {
          this.reject(this.queue.splice(i, 1)[0]!);
          break;
        }
        for (const run of this.active) {
          const j = run.unsent(same);
          if (j < 0) continue;
          run.dropped[j] = true;
          this.reject(run.reqs[j]!);
          break;
        }
        break;
      }
      default:
        break;
    }
  }

  private reject(r: Block): void {
    if (this.conn.fast) this.conn.send({ type: 'reject', index: r.index, begin: r.begin, length: r.length });
  }

  /** The server failed: choke (pending requests rejected), unchoke after `ms`. */
  backOff(ms: number): void {
    if (this.conn.closed) return;
    if (!this.conn.amChoking) this.conn.send({ type: 'choke' });
    for (const r of this.queue.splice(0)) this.reject(r);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.conn.closed && this.seed.open && this.conn.peerInterested) this.conn.send({ type: 'unchoke' });
    }, ms);
    this.timer.unref();
  }

  private pump(): void {
    const pl = this.seed.torrent.pieceLength;
    // a run in flight already: the next waits for NEXT_RUN bytes of requests (a run of one
    // block each time a request trickles in would be an HTTP request per block)
    const next = Math.min(MAX_RUN, Math.max(pl, NEXT_RUN));
    while (this.runs < MAX_RUNS && this.queue.length > 0 && (this.runs === 0 || this.queue.length * BLOCK_GUESS >= next) && this.seed.open && !this.conn.closed) {
      const run = [this.queue.shift()!];
      let end = run[0]!.index * pl + run[0]!.begin + run[0]!.length;
      let bytes = run[0]!.length;
      while (this.queue.length > 0 && bytes < MAX_RUN) {
        const n = this.queue[0]!;
        if (n.index * pl + n.begin !== end) break;
        run.push(this.queue.shift()!);
        end += n.length;
        bytes += n.length;
      }
      this.runs++;
      void this.fetchRun(run, bytes).finally(() => {
        this.runs--;
        this.pump();
      });
    }
  }

  /** One run: streamed from the server into `piece` messages, a block at a time. */
  private async fetchRun(reqs: Block[], bytes: number): Promise<void> {
    const pl = this.seed.torrent.pieceLength;
    const state = new Run(reqs);
    const run = reqs;
    const dropped = state.dropped;
    this.active.add(state);
    // the block being gathered from chunks that split it (null: none started)
    let block: Buffer | null = null;
    let filled = 0;
    const onData = (chunk: Buffer): boolean => {
      let off = 0;
      while (off < chunk.length && state.i < run.length) {
        const r = run[state.i]!;
        if (block === null && chunk.length - off >= r.length) {
          // whole in this chunk: sent as a view of it, no copy (an HTTP body chunk is a fresh
          // buffer of its own, never reused by the socket, so the view stays valid until sent)
          if (!dropped[state.i]) this.conn.send({ type: 'piece', index: r.index, begin: r.begin, block: chunk.subarray(off, off + r.length) });
          off += r.length;
          state.i++;
          continue;
        }
        block ??= Buffer.allocUnsafe(r.length);
        const n = Math.min(block.length - filled, chunk.length - off);
        chunk.copy(block, filled, off, off + n);
        filled += n;
        off += n;
        if (filled === block.length) {
          // a block cancelled while it was being gathered is dropped whole (already rejected)
          if (!dropped[state.i]) this.conn.send({ type: 'piece', index: r.index, begin: r.begin, block });
          state.i++;
          block = null;
          filled = 0;
        }
      }
      return !this.conn.closed && this.conn.writableLength < 1024 * 1024;
    };
    const drained = (): Promise<void> =>
      this.conn.closed || this.conn.writableLength < 1024 * 1024 ? Promise.resolve() : new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    try {
      // a connection gone (banned, closed) stops its runs: their bytes would go nowhere
      await this.seed.fetchRange(run[0]!.index * pl + run[0]!.begin, bytes, onData, drained, () => this.conn.closed);
      this.seed.succeeded(bytes);
    } catch (e) {
      if (this.conn.closed) return;
      // what was not sent is answered by a reject (BEP 6), so the swarm asks someone else now;
      // blocks a cancel dropped were rejected then, and are not answered twice
      for (let j = state.i; j < run.length; j++) if (!dropped[j]) this.reject(run[j]!);
      this.seed.failed(e as Error);
    } finally {
      this.active.delete(state);
    }
  }
}

/** A run in flight: its requests, the next one not sent yet, and those a cancel dropped. */
class Run {
  readonly reqs: Block[];
  /** the first request whose block is not sent yet (it may be being gathered) */
  i = 0;
  readonly dropped: boolean[];

  constructor(reqs: Block[]) {
    this.reqs = reqs;
    this.dropped = reqs.map(() => false);
  }

  /** The index of a request matching `same` that is neither sent nor dropped, or -1. */
  unsent(same: (r: Block) => boolean): number {
    for (let j = this.i; j < this.reqs.length; j++) if (!this.dropped[j] && same(this.reqs[j]!)) return j;
    return -1;
  }
}
