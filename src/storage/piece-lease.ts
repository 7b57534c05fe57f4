/**
 * Who owns a piece's buffer. A verified piece travels from the stage that filled it (the swarm,
 * the piece-stream parser) to the one that is done with it (assemble once it is on disk,
 * writeFrames once stdout has it), and its buffer should then go back to the pool it came from
 * for a later piece: a fresh buffer per piece was 1 GiB of garbage per GiB (buffer-pool.ts).
 * Between the two, stages that push, hash and hold the piece must agree on who may still touch
 * the buffer; a lease states it and checks it:
 *
 * - It owns exactly one buffer; `bytes` is where the bytes are now. Hashing on another thread
 *   (`sha1()`) moves the memory there and back, so the buffer object changes: the lease follows
 *   it, and its holder cannot read the bytes meanwhile (they are not on this thread).
 * - It ends exactly once: `release()` (done with the bytes: the buffer may be overwritten from
 *   now on), `detach()` (the bytes go on to something that cannot say when it is done with them,
 *   a Transform's push: the buffer is left to the garbage collector), or `transfer()` (the next
 *   holder gets a lease of its own; this one is spent).
 * - Anything done to an ended lease, or to one whose bytes are on the hashing thread, throws
 *   PieceLeaseError. A second release would hand one buffer to two pieces, which otherwise shows
 *   up only as corrupt data somewhere far from the bug.
 *
 * A lease that is dropped without ending only leaves its buffer to the garbage collector: a
 * consumer that stops early (an error, a test) costs a fresh buffer later, nothing else.
 */
import type { PieceDigest } from '../metainfo/piece-check.js';
import type { HashPool } from './hash-pool.js';

/** Where a released buffer goes (BufferPool). */
export interface BufferHome {
  give(buf: Buffer): void;
}

/** A lease used against its rules: a bug in the holder, never bad input. */
export class PieceLeaseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PieceLeaseError';
  }
}

type State = 'held' | 'hashing' | 'released' | 'detached' | 'handed on';

const WHY: Record<Exclude<State, 'held'>, string> = {
  hashing: 'its bytes are on the hashing thread',
  released: 'it was released',
  detached: 'it was detached',
  'handed on': 'it was handed on (transfer)',
};

export class PieceLease {
  private buf: Buffer;
  private readonly home: BufferHome | null;
  private state: State = 'held';

  /** A lease on `buf`; `home` takes the buffer back on release (null: the collector does). */
  constructor(buf: Buffer, home: BufferHome | null = null) {
    this.buf = buf;
    this.home = home;
  }

  /** The piece's bytes, where they are now. */
  get bytes(): Buffer {
    this.check('read');
    return this.buf;
  }

  /** Released, detached or handed on: nothing more may be done with it. */
  get ended(): boolean {
    return this.state !== 'held' && this.state !== 'hashing';
  }

  /**
   * The SHA-1 of the bytes, computed on `hasher`'s thread. The memory moves there and back (or
   * is read in place when shared), so `bytes` is another Buffer afterwards; until the digest is
   * back nothing may be done with the lease. If the hashing thread dies, the lease is the
   * holder's again (its bytes may be gone with the thread) and the promise rejects.
   */
  async sha1(hasher: Pick<HashPool, 'digest'>): Promise<Buffer> {
    return (await this.digest(hasher, null)).digest;
  }

  /** The digest `how` says (null: SHA-1; piece-check.ts), on `hasher`'s thread, as sha1(). */
  async digest(hasher: Pick<HashPool, 'digest'>, how: PieceDigest | null, withLeaves = false): Promise<{ digest: Buffer; leaves?: Buffer }> {
    this.check('hash');
    this.state = 'hashing';
    try {
      const { data, ...r } = await hasher.digest(this.buf, how, withLeaves);
      this.buf = data;
      return r;
    } finally {
      this.state = 'held';
    }
  }

  /** Done with the bytes: the buffer goes home and may be overwritten from now on. */
  release(): void {
    this.end('release', 'released');
    this.home?.give(this.buf);
  }

  /** Ends the lease but leaves the bytes with the caller for good: the buffer never goes home. */
  detach(): Buffer {
    this.end('detach', 'detached');
    return this.buf;
  }

  /** Hands the piece on: the new holder's lease, for the same buffer; this one is spent. */
  transfer(): PieceLease {
    this.end('transfer', 'handed on');
    return new PieceLease(this.buf, this.home);
  }

  private end(op: string, next: State): void {
    this.check(op);
    this.state = next;
  }

  private check(op: string): void {
    if (this.state !== 'held') throw new PieceLeaseError(`PieceLease: cannot ${op}: ${WHY[this.state]}`);
  }
}
