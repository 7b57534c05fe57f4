/**
 * The piece stream read straight from a file descriptor (assemble's stdin), frames out: piece
 * bytes are read into the piece's own pooled buffer (the frame's lease gives it back when
 * released), everything between pieces into one reused buffer. A stream over fd 0 hands out a
 * fresh buffer per read: 1 GiB of them per GiB, garbage that held ~35 MiB of assemble's RSS
 * until the collector came round. Here the parser copies out what it keeps (FrameParser
 * `reusesInput`), so the next read may overwrite the buffer at once. A regular file is read
 * with positional-less fs.read (from wherever the shell left the offset); a pipe or socket
 * through net.Socket's `onread`, which reads into a buffer of ours and pauses when the
 * consumer is full. A malformed frame ends the stream as in PieceFrameDecoder: the frames
 * before it, then a DeferredError.
 */
import { close, fstatSync, read } from 'node:fs';
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import { Readable } from 'node:stream';
import { DeferredError } from './deferred-error.js';
import { FrameParser, PieceStreamError, type PieceFrame, type PieceFrameDecoderOptions } from './piece-frames.js';

const CHUNK = 256 * 1024;
/** a piece with at least this much left to gather is read straight into its buffer */
const DIRECT_MIN = 64 * 1024;
/** reads between pieces, when pieces are big: a frame header and a little of the next piece */
const SMALL_READ = 16 * 1024;

export class PieceFrameReader extends Readable {
  private readonly fd: number;
  private readonly parser: FrameParser;
  private readonly buf = Buffer.allocUnsafeSlow(CHUNK);
  private readonly isFile: boolean;
  /** how much a read into `buf` asks for */
  private readonly bufRead: number;
  /** the piece buffer the socket's current read goes into, if any */
  private target: Buffer | null = null;
  private socket: Socket | null = null;
  private reading = false;
  private ended = false;
  /** destroyed during a read: what to do once it returns */
  private afterRead: (() => void) | null = null;

  /** True when `fd` can be read so (a regular file, a pipe or a socket). */
  static canRead(fd: number): boolean {
    try {
      const st = fstatSync(fd);
      return st.isFile() || st.isFIFO() || st.isSocket();
    } catch {
      return false;
    }
  }

  constructor(fd: number, options: PieceFrameDecoderOptions) {
    // a few frames between the reader and the consumer: bounded whatever the stream's length
    super({ objectMode: true, highWaterMark: 2 });
    this.fd = fd;
    // pieces are read into place by the kernel, so they may as well be in memory that direct writes
    // take as it is and the hashing thread reads where it is
    this.parser = new FrameParser({ ...options, reusesInput: true, alignedPieces: true });
    this.isFile = fstatSync(fd).isFile();
    this.bufRead = options.maxPieceLength >= 4 * DIRECT_MIN ? SMALL_READ : CHUNK;
  }

  override _read(): void {
    if (this.isFile) this.readFile();
    else if (this.socket === null) this.openSocket();
    else this.socket.resume();
  }

  /** Feeds `n` bytes of the buffer; false when the consumer is full or the stream failed. */
  private feed(n: number): boolean {
    return this.parse((push) => this.parser.write(this.buf.subarray(0, n), push));
  }

  /** `n` bytes were read into the pending piece; false when the consumer is full or the stream failed. */
  private filled(n: number): boolean {
    return this.parse((push) => this.parser.filled(n, push));
  }

  /** Runs a parser step, pushing its frames; false when the consumer is full or the step failed (the stream is over). */
  private parse(step: (push: (f: PieceFrame) => void) => void): boolean {
    let more = true;
    try {
      step((f) => {
        more = this.push(f) && more;
      });
    } catch (e) {
      this.fail(e);
      return false;
    }
    return more;
  }

  /**
   * A malformed frame ends the stream after the frames before it, which are pushed already: a
   * DeferredError follows them (deferred-error.ts) and nothing more is read. Destroying the
   * stream would drop them, and the pipeline would drop the pieces its consumer is writing.
   * Any other error (the descriptor's) fails it at once.
   */
  private fail(e: unknown): void {
    if (!(e instanceof PieceStreamError)) {
      this.destroy(e as Error);
      return;
    }
    this.ended = true;
    this.socket?.pause();
    this.push(new DeferredError(e));
    this.push(null);
  }

  /** The rest of the piece being gathered, when it is worth reading into place. */
  private pendingPiece(): Buffer | null {
    const t = this.parser.pendingPiece();
    return t !== null && t.length >= DIRECT_MIN ? t : null;
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    try {
      this.parser.end();
    } catch (e) {
      this.fail(e); // a frame cut off by the end
      return;
    }
    this.push(null);
  }

  private readFile(): void {
    if (this.reading || this.ended || this.destroyed) return;
    this.reading = true;
    const target = this.pendingPiece();
    read(this.fd, target ?? this.buf, 0, target?.length ?? this.bufRead, null, (err, n) => {
      this.reading = false;
      if (this.destroyed) {
        this.afterRead?.();
        return;
      }
      if (err) this.destroy(err);
      else if (n === 0) this.finish();
      else if (target !== null ? this.filled(n) : this.feed(n)) this.readFile();
    });
  }

  private openSocket(): void {
    // Node's Socket constructor takes `onread` as connect() does; @types/node lists it for connect only
    const options: SocketConstructorOpts & { onread: OnReadOpts } = {
      fd: this.fd,
      readable: true,
      writable: false,
      onread: {
        // asked before each read: into the piece being gathered, or the reused buffer
        buffer: () => (this.target = this.pendingPiece()) ?? this.buf.subarray(0, this.bufRead),
        // returning false pauses the socket until _read resumes it
        callback: (n: number) => !this.destroyed && (this.target !== null ? this.filled(n) : this.feed(n)),
      },
    };
    this.socket = new Socket(options);
    this.socket.on('end', () => this.finish());
    this.socket.on('error', (e) => this.destroy(e));
  }

  /**
   * The descriptor is closed at the end (a socket over it closes it anyway), unless it is
   * stdin, stdout or stderr: a closed 0 is the next descriptor anything opens, and libuv aborts
   * the process (uv__close: `fd > STDERR_FILENO`) when it later closes a pipe that got it.
   */
  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (this.socket !== null) {
      this.socket.destroy();
      cb(err);
    } else if (this.isFile) {
      // a read still running owns the fd until its callback: close after it
      const closeFd = (): void => (this.fd > 2 ? close(this.fd, () => cb(err)) : cb(err));
      if (this.reading) this.afterRead = closeFd;
      else closeFd();
    } else {
      cb(err);
    }
  }
}
