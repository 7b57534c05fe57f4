/**
 * The fetch stage: peers in (its `peers` side, PeerRecord objects), verified pieces out, in
 * completion order. Built on the swarm engine; when the consumer is slow, the swarm starts no
 * new piece (backpressure reaches the peers instead of piling up in memory).
 */
import { Readable, Writable } from 'node:stream';
import type { PeerRecord } from '../peers/record.js';
import { Swarm, type SwarmOptions, type SwarmStats } from '../swarm/swarm.js';
import type { PieceFrame } from './piece-frames.js';

export interface FetchOptions extends SwarmOptions {
  /** fail when no piece arrives for this long (default 120 s; 0 = never) */
  stallTimeoutMs?: number;
}

export class FetchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FetchError';
  }
}

export class FetchStream extends Readable {
  readonly swarm: Swarm;
  /** write PeerRecords here; ending it says no more peers will come */
  readonly peers: Writable;
  private inputEnded = false;
  /** the swarm's figures at the moment the last piece arrived (its peers are gone after) */
  finalStats: SwarmStats | null = null;
  private lastProgress = Date.now();
  private readonly watchdog: NodeJS.Timeout;

  constructor(options: FetchOptions) {
    // a few pieces of buffer between the swarm and the consumer: bounded whatever the torrent size
    super({ objectMode: true, highWaterMark: 4 });
    this.swarm = new Swarm(options);
    const stall = options.stallTimeoutMs ?? 120_000;
    this.swarm.on('piece', (p) => {
      this.lastProgress = Date.now();
      if (!this.push({ index: p.index, piece: p.piece, release: p.release } satisfies PieceFrame)) this.swarm.pause();
    });
    this.swarm.on('done', () => {
      this.finalStats = this.swarm.stats();
      this.push(null);
      this.swarm.destroy();
    });
    this.peers = new Writable({
      objectMode: true,
      highWaterMark: 64,
      write: (rec: PeerRecord, _enc, cb) => {
        this.swarm.addPeer(rec);
        cb();
      },
      final: (cb) => {
        this.inputEnded = true;
        cb();
      },
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

  /** e.g. "12 of 40 wanted pieces missing" */
  missingSummary(): string {
    return `${this.swarm.wanted - this.swarm.done} of ${this.swarm.wanted} wanted pieces missing`;
  }

  override _read(): void {
    this.swarm.resume();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    clearInterval(this.watchdog);
    this.swarm.destroy();
    cb(err);
  }
}
