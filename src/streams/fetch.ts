/**
 * The fetch stage, a Duplex: peer records in, verified pieces out, in completion order, so that
 * `pipeline(peers, new FetchStream(torrent), new AssembleStream(torrent, dir), sink)` is a
 * download. Built on the swarm engine; when the consumer is slow, the swarm starts no new
 * piece (backpressure reaches the peers instead of piling up in memory).
 *
 * Ending the peer side says no more peers will come: the stage then fails once no peer is
 * left to try. A peer source that never ends by itself (a tracker loop) should end on `done`,
 * which is aborted once every wanted piece is verified: pipeline() settles only when every
 * stream has ended.
 */
import { Duplex } from 'node:stream';
import { JobError } from '../errors.js';
import type { Torrent } from '../metainfo/torrent.js';
import type { PeerRecord } from '../peers/record.js';
import { Swarm, type SwarmOptions, type SwarmStats } from '../swarm/swarm.js';
import type { PieceFrame } from './piece-frames.js';

export interface FetchOptions extends Omit<SwarmOptions, 'torrent'> {
  /** fail when no piece arrives for this long (default 120 s; 0 = never) */
  stallTimeoutMs?: number;
  /**
   * the swarm outlives the stage once complete (it goes on seeding, with its connections);
   * whoever set this destroys it
   */
  keepSwarm?: boolean;
}

/** The download cannot go on: nothing arrives, or no peer is left to try. */
export class FetchError extends JobError {}

export class FetchStream extends Duplex {
  readonly swarm: Swarm;
  /** the swarm's figures at the moment the last piece arrived (its peers are gone after) */
  finalStats: SwarmStats | null = null;
  private readonly completed = new AbortController();
  private inputEnded = false;
  private lastProgress = Date.now();
  private readonly watchdog: NodeJS.Timeout;
  private readonly keepSwarm: boolean;

  constructor(torrent: Torrent, options: FetchOptions = {}) {
    // a few pieces of buffer between the swarm and the consumer: bounded whatever the torrent size
    super({ readableObjectMode: true, writableObjectMode: true, readableHighWaterMark: 4, writableHighWaterMark: 64 });
    this.swarm = new Swarm({ ...options, torrent });
    this.keepSwarm = options.keepSwarm ?? false;
    const stall = options.stallTimeoutMs ?? 120_000;
    this.swarm.on('piece', (p) => {
      this.lastProgress = Date.now();
      // the frame's reader owns the piece from here: another listener may look at the index only
      if (!this.push({ index: p.index, piece: p.piece.transfer() } satisfies PieceFrame)) this.swarm.pause();
    });
    this.swarm.on('done', () => {
      this.finalStats = this.swarm.stats();
      this.completed.abort();
      this.push(null);
      if (!this.keepSwarm) this.swarm.destroy();
    });
    this.watchdog = setInterval(() => {
      if (this.swarm.complete || this.destroyed) return;
      const idle = Date.now() - this.lastProgress;
      if (stall > 0 && idle > stall) {
        this.destroy(new FetchError(`no piece arrived for ${Math.round(stall / 1000)} s: ${this.missingSummary()}`));
      } else if (this.inputEnded && !this.swarm.hasPeersLeft && idle > 1000) {
        this.destroy(new FetchError(`no peers left to try: ${this.missingSummary()}`));
      }
    }, 500);
    this.watchdog.unref();
  }

  /** Aborted once every wanted piece is verified: an endless peer source ends on it. */
  get done(): AbortSignal {
    return this.completed.signal;
  }

  /** e.g. "12 of 40 wanted pieces missing" */
  missingSummary(): string {
    return `${this.swarm.wanted - this.swarm.done} of ${this.swarm.wanted} wanted pieces missing`;
  }

  override _write(rec: PeerRecord, _enc: BufferEncoding, cb: (error?: Error | null) => void): void {
    this.swarm.addPeer(rec);
    cb();
  }

  override _final(cb: (error?: Error | null) => void): void {
    this.inputEnded = true;
    cb();
  }

  override _read(): void {
    this.swarm.resume();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    clearInterval(this.watchdog);
    if (!(this.keepSwarm && this.swarm.complete)) this.swarm.destroy();
    cb(err);
  }
}
