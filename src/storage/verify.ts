/**
 * Hashing what is on disk, on every core: worker threads each take blocks of pieces, read them
 * with their own file store and hash them (SHA-1, BEP 52 piece digests, or both); results come
 * back in index order. `verify` compares the digests with the torrent's, `create` writes them. A missing or short file makes its
 * pieces unreadable (a null digest), never an error.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { pieceCheck } from '../metainfo/piece-check.js';
import type { Torrent } from '../metainfo/torrent.js';

/** Pieces per unit of work: big enough to read sequentially, small enough to balance. */
const BLOCK = 32;

export interface VerifyOptions {
  workers?: number;
  /** only these pieces (default: all) */
  pieces?: readonly number[];
  signal?: AbortSignal;
  /**
   * what each digest is: the piece's SHA-1 (default), its BEP 52 digest (`pieceRoot` of the
   * file's bytes in it, see v2PieceShape), or both (20 + 32 bytes); `create` makes v2 torrents
   */
  digests?: PieceDigests;
}

export type PieceDigests = 'sha1' | 'v2' | 'both';

/** What a worker needs to rebuild the torrent's layout (a structured-clone-able subset). */
export interface VerifyJob {
  root: string;
  torrent: HashLayout;
  digests: PieceDigests;
}

/** What hashing needs of a torrent: the file layout (no hashes: `create` has none yet). */
export type HashLayout = Pick<Torrent, 'name' | 'multiFile' | 'files' | 'length' | 'pieceLength' | 'pieceCount'>;

/**
 * Yields `[index, valid]` for every wanted piece in ascending index order, verifying on
 * `workers` threads (default: every core) by the piece check (metainfo/piece-check.ts): SHA-1,
 * a v2-only torrent's merkle digests, or a hybrid's both. A v2 piece that cannot be checked
 * yet (its piece layer unknown) is not valid.
 */
export async function* verifyPieces(torrent: Torrent, root: string, options: VerifyOptions = {}): AsyncGenerator<[number, boolean]> {
  const digests = torrent.version === 2 ? 'v2' : torrent.version === 'hybrid' ? 'both' : 'sha1';
  for await (const [i, digest] of hashPieces(torrent, root, { ...options, digests })) {
    const c = pieceCheck(torrent, i);
    // a hybrid piece whose layer is unknown is checked by the SHA-1 at the front of both
    const got = c.kind === 'sha1' && digest !== null ? digest.subarray(0, 20) : digest;
    yield [i, got !== null && c.kind !== 'pending' && got.equals(c.want)];
  }
}

/** Yields `[index, digest]` (null when the piece cannot be read) in ascending index order. */
export async function* hashPieces(layout: HashLayout, root: string, options: VerifyOptions = {}): AsyncGenerator<[number, Buffer | null]> {
  const wanted = options.pieces ? [...options.pieces].sort((a, b) => a - b) : Array.from({ length: layout.pieceCount }, (_, i) => i);
  const blocks: number[][] = [];
  for (let i = 0; i < wanted.length; i += BLOCK) blocks.push(wanted.slice(i, i + BLOCK));
  const n = Math.max(1, Math.min(options.workers ?? availableParallelism(), blocks.length));
  const job: VerifyJob = {
    root,
    digests: options.digests ?? 'sha1',
    torrent: { name: layout.name, multiFile: layout.multiFile, files: layout.files, length: layout.length, pieceLength: layout.pieceLength, pieceCount: layout.pieceCount },
  };
  const done = new Map<number, Array<Buffer | null>>(); // block number → digests
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  const poke = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  let next = 0;
  const workers: Worker[] = [];
  const feed = (w: Worker): void => {
    if (next < blocks.length) w.postMessage({ block: next, pieces: blocks[next++] });
    else w.postMessage(null);
  };
  for (let k = 0; k < n; k++) {
    const w = new Worker(new URL('./verify-worker.js', import.meta.url), { workerData: job });
    w.on('message', (m: { block: number; digests: Array<Uint8Array | null> }) => {
      done.set(m.block, m.digests.map((d) => (d === null ? null : Buffer.from(d.buffer, d.byteOffset, d.byteLength))));
      feed(w);
      poke();
    });
    w.on('error', (e) => {
      failure ??= e;
      poke();
    });
    workers.push(w);
    feed(w);
  }
  const onAbort = (): void => {
    failure ??= Object.assign(new Error('aborted'), { name: 'AbortError' });
    poke();
  };
  options.signal?.addEventListener('abort', onAbort);
  try {
    for (let b = 0; b < blocks.length; b++) {
      while (!done.has(b)) {
        if (failure) throw failure;
        await new Promise<void>((r) => (wake = r));
      }
      const digests = done.get(b)!;
      done.delete(b);
      const pieces = blocks[b]!;
      for (let i = 0; i < pieces.length; i++) yield [pieces[i]!, digests[i]!];
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
