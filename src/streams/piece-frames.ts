/**
 * The piece stream between fetch-pieces and assemble (design.md §2): concatenated bencoded
 * dicts, one per verified piece, `d5:indexi<N>e5:piece<len>:<bytes>e`. Length-prefixed, so the
 * reader slices pieces out without scanning them, and `| torrent-tools bdecode` still reads it.
 * More keys may be added later; readers ignore keys they don't know.
 */
import { Transform, type TransformCallback, type Writable } from 'node:stream';
import { BencodeDecoder } from '../bencode/decoder.js';
import { BencodeError } from '../bencode/errors.js';
import type { BValue } from '../bencode/types.js';
import { BufferPool } from '../storage/buffer-pool.js';
import { alignedPiecePool } from '../storage/direct-io.js';
import type { HashPool } from '../storage/hash-pool.js';
import { PieceLease } from '../storage/piece-lease.js';
import { mismatchName, pieceCheck } from '../metainfo/piece-check.js';
import { pieceSize } from '../metainfo/pieces.js';
import type { Torrent } from '../metainfo/torrent.js';
import { ChunkParserStream, type ChunkParser } from './chunk-parser.js';
import { DeferredError } from './deferred-error.js';

/**
 * A piece on its way between stages. Whoever holds the frame holds its lease (piece-lease.ts):
 * a stage that pushes the frame on hands the lease on with it; the one that is done with the
 * bytes (assemble once they are on disk, writeFrames once `out` has them) releases it, so a
 * pooled buffer (the fetch stage's, the frame parser's) serves a later piece.
 */
export interface PieceFrame {
  index: number;
  piece: PieceLease;
}

/** A frame of bytes from no pool (tests, a library's own pieces): releasing it frees nothing. */
export function pieceFrame(index: number, bytes: Buffer): PieceFrame {
  return { index, piece: new PieceLease(bytes) };
}

/**
 * Whether a frame's piece is the torrent's: null, or why it is refused. Hashing on `hasher`'s
 * thread moves the bytes there and back (PieceLease.sha1); the caller still holds the lease.
 * Null `hasher`: the stream is trusted, only the index and size are checked.
 */
export async function checkPiece(torrent: Torrent, hasher: HashPool | null, f: PieceFrame): Promise<string | null> {
  if (f.index >= torrent.pieceCount) return 'index beyond the torrent';
  const size = pieceSize(torrent, f.index);
  const length = f.piece.bytes.length;
  if (length !== size) return `${length} bytes, expected ${size}`;
  if (hasher === null) return null;
  const c = pieceCheck(torrent, f.index);
  if (c.kind === 'pending') return mismatchName(c);
  const { digest } = await f.piece.digest(hasher, c.digest);
  return digest.equals(c.want) ? null : mismatchName(c);
}

/** A piece stream that is well-formed bencode but not a valid frame, or not bencode at all. */
export class PieceStreamError extends Error {
  readonly offset: number;
  constructor(offset: number, reason: string) {
    super(`byte ${offset}: ${reason}`);
    this.name = 'PieceStreamError';
    this.offset = offset;
  }
}

/** The frame header: everything up to the piece bytes. The trailing 'e' follows them. */
export function frameHeader(index: number, pieceLength: number): Buffer {
  return Buffer.from(`d5:indexi${index}e5:piece${pieceLength}:`, 'latin1');
}

const TRAILER = Buffer.from('e', 'latin1');

/**
 * `{index, piece}` objects in, frames out. The piece bytes are pushed as they are, never
 * copied into a bigger buffer: a frame costs two small allocations whatever the piece size.
 * Leases are detached, not released (a Transform cannot know when the next stage is done with
 * the bytes): where frames go straight to a file or pipe, `writeFrames` is the stage that recycles.
 */
export class PieceFrameEncoder extends Transform {
  constructor(options: { highWaterMark?: number } = {}) {
    super({ writableObjectMode: true, readableObjectMode: false, writableHighWaterMark: 1, readableHighWaterMark: options.highWaterMark ?? 1024 * 1024 });
  }

  override _transform(f: PieceFrame, _enc: BufferEncoding, cb: TransformCallback): void {
    const piece = f.piece.detach();
    this.push(frameHeader(f.index, piece.length));
    this.push(piece);
    cb(null, TRAILER);
  }
}

/**
 * The last stage of a pipeline that writes the piece stream to `out` (stdout): like
 * PieceFrameEncoder piped into `out`, and each piece is released once `out` has handed its bytes
 * to the kernel, so its buffer goes back to the fetch stage instead of to the garbage
 * collector. Waiting for each frame's write is also the backpressure. Ends `out` at the end.
 */
export function writeFrames(out: Writable): (frames: AsyncIterable<PieceFrame>) => Promise<void> {
  const written = (chunk: Buffer): Promise<void> => new Promise((resolve, reject) => out.write(chunk, (e) => (e ? reject(e) : resolve())));
  return async (frames) => {
    for await (const f of frames) {
      const piece = f.piece.bytes;
      out.write(frameHeader(f.index, piece.length));
      out.write(piece);
      await written(TRAILER); // a stream writes in order: the piece is out too
      f.piece.release();
    }
    await new Promise<void>((resolve) => out.end(resolve));
  };
}

export interface PieceFrameDecoderOptions {
  /** the largest piece accepted (the torrent's piece length) */
  maxPieceLength: number;
  /** pieces in the torrent: an index outside [0, pieceCount) is an error */
  pieceCount?: number;
}

/**
 * Where piece stream bytes become frames, for the stream decoder below and the fd reader
 * (piece-frame-reader.ts). Built on the streaming bencode decoder, so a frame split across
 * any chunk boundaries is fine and unknown keys are skipped. Limits come from the torrent:
 * nothing larger than one piece plus a little room for keys is buffered.
 *
 * A piece gathered from several chunks (every full-size piece bigger than a read) lands in a
 * buffer from a pool; releasing the frame's lease gives it back. A fresh buffer per piece was
 * 1 GiB of garbage per GiB, which let `assemble`'s RSS climb to ~100 MiB before the collector
 * caught up.
 */
export class FrameParser implements ChunkParser<PieceFrame> {
  private readonly decoder: BencodeDecoder;
  private readonly pieceCount: number | undefined;
  private readonly pool: BufferPool;
  /** the pool buffer the decoder is gathering into, until its frame is out */
  private gathering: Buffer | null = null;

  /**
   * `reusesInput`: the caller overwrites each chunk once write() returns, so every string is
   * copied out (a full-size piece into the pool) instead of sliced from the chunk.
   */
  constructor(options: PieceFrameDecoderOptions & { reusesInput?: boolean; alignedPieces?: boolean }) {
    this.pieceCount = options.pieceCount;
    // enough for the frames a reader buffers, those a consumer holds (assemble: 4) and the
    // one gathering; a consumer that keeps more only costs fresh buffers
    this.pool = options.alignedPieces === true ? alignedPiecePool(options.maxPieceLength, 8) : new BufferPool(options.maxPieceLength, 8);
    this.decoder = new BencodeDecoder({
      maxDepth: 8,
      maxStringLength: options.maxPieceLength,
      maxValueSize: options.maxPieceLength + 64 * 1024,
      copyStrings: options.reusesInput === true,
      allocString: (n) => {
        if (n !== this.pool.size) return Buffer.allocUnsafe(n);
        this.gathering = this.pool.take();
        return this.gathering;
      },
    });
  }

  /** Feeds bytes; calls `onFrame` for each frame they complete. Throws PieceStreamError. */
  write(chunk: Buffer, onFrame: (f: PieceFrame) => void): void {
    this.frames(onFrame, (emit) => this.decoder.write(chunk, emit));
  }

  /** Where the bytes of the piece being gathered go next (see BencodeDecoder.pendingString), or null. */
  pendingPiece(): Buffer | null {
    return this.decoder.pendingString();
  }

  /** `n` bytes were read into pendingPiece(): calls `onFrame` if they complete a frame. */
  filled(n: number, onFrame: (f: PieceFrame) => void): void {
    this.frames(onFrame, (emit) => this.decoder.filled(n, emit));
  }

  /** Runs a decoder step whose values are frames; a bencode error becomes a PieceStreamError. */
  private frames(onFrame: (f: PieceFrame) => void, step: (emit: (v: BValue, start: number) => void) => void): void {
    try {
      step((v, start) => onFrame(this.frame(v, start)));
    } catch (e) {
      throw e instanceof BencodeError ? new PieceStreamError(e.offset, e.reason) : e;
    }
  }

  /** The input ended: throws PieceStreamError inside a frame. */
  end(): void {
    try {
      this.decoder.end();
    } catch (e) {
      throw e instanceof BencodeError ? new PieceStreamError(e.offset, `truncated piece stream: ${e.reason}`) : e;
    }
  }

  private frame(v: BValue, start: number): PieceFrame {
    if (!(v instanceof Map)) throw new PieceStreamError(start, 'expected a dict (a piece frame)');
    const index = v.get('index');
    const piece = v.get('piece');
    if (typeof index !== 'number' || index < 0) throw new PieceStreamError(start, 'frame has no non-negative integer "index"');
    if (this.pieceCount !== undefined && index >= this.pieceCount) {
      throw new PieceStreamError(start, `piece index ${index} is beyond the torrent's ${this.pieceCount} pieces`);
    }
    if (!Buffer.isBuffer(piece)) throw new PieceStreamError(start, 'frame has no byte string "piece"');
    if (piece !== this.gathering) return pieceFrame(index, piece);
    this.gathering = null;
    return { index, piece: this.pool.lease(piece) };
  }
}

/**
 * Piece stream bytes in, `{index, piece}` out (see FrameParser). A malformed frame ends the
 * output: every frame before it comes out, then a DeferredError with the PieceStreamError
 * (deferred-error.ts), so the frames read with the bad one are assembled and journalled
 * before anything fails. What follows the bad frame is not parsed.
 */
export class PieceFrameDecoder extends ChunkParserStream<PieceFrame | DeferredError> {
  constructor(options: PieceFrameDecoderOptions) {
    // each frame is one piece: a readable buffer of 2 frames bounds memory to ~3 pieces
    super(new FrameParser(options), { writable: 256 * 1024, readable: 2, defer: (e) => e instanceof PieceStreamError });
  }
}
