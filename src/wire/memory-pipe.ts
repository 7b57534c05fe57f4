/**
 * A connection between two PeerConnections of this process without a socket: what one end
 * writes, the other reads, as the same buffers. A web seed (webseed/web-seed-peer.ts) is such
 * a peer; through a loopback TCP socket every byte it served cost a write into the kernel and
 * a read out of it (a third of the main thread's time at 200 MB/s), for nothing a socket gives.
 *
 * It behaves as a socket does where PeerConnection looks: bytes arrive later, never during the
 * write (a reply written while a message is handled must not be handled inside that handler),
 * in order, as 'data'; write() says false past a high-water mark and 'drain' follows once the
 * reader has taken the bytes; pause() stops delivery (download limits); a write's callback runs
 * once the reader has taken its bytes; destroy() ends both ends, the other after the bytes
 * written before it ('end', 'close').
 *
 * Buffers are handed over, not copied: a writer must not change one after writing it (ours
 * never do: a socket's writes keep the buffer until sent too), and the reader consumes each
 * during the 'data' call, as it does a socket's reused read buffer (frame-decoder.ts).
 */
import { EventEmitter } from 'node:events';

/** What PeerConnection needs of its transport: the part of net.Socket it uses. */
export interface WireSocket {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  /** bytes written and not yet taken by the other side */
  readonly writableLength: number;
  readonly writableNeedDrain: boolean;
  setNoDelay(noDelay?: boolean): unknown;
  cork(): void;
  uncork(): void;
  write(data: Uint8Array, cb?: (err?: Error | null) => void): boolean;
  destroy(): unknown;
  pause(): unknown;
  resume(): unknown;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'error', listener: (err: NodeJS.ErrnoException) => void): unknown;
  on(event: 'close' | 'end' | 'drain', listener: () => void): unknown;
}

/** Bytes in flight to the other end before write() says wait (a socket's send buffer, roughly). */
const HIGH_WATER = 1024 * 1024;

interface Pending {
  bytes: Buffer;
  taken: ((err?: Error | null) => void) | undefined;
}

class PipeEnd extends EventEmitter implements WireSocket {
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 0;
  other!: PipeEnd;
  /** written by the other end, not delivered yet */
  private readonly inbox: Pending[] = [];
  private head = 0;
  inboxBytes = 0;
  private paused = false;
  private scheduled = false;
  /** the other end was destroyed: deliver what it wrote before, then end */
  private ending = false;
  destroyed = false;
  writableNeedDrain = false;

  get writableLength(): number {
    return this.other.inboxBytes;
  }

  setNoDelay(): this {
    return this;
  }

  // every write of a tick is delivered in one go anyway
  cork(): void {}
  uncork(): void {}

  write(data: Uint8Array, cb?: (err?: Error | null) => void): boolean {
    if (this.destroyed || this.other.destroyed) return false;
    const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
    this.other.take(bytes, cb);
    if (this.other.inboxBytes < HIGH_WATER) return true;
    this.writableNeedDrain = true;
    return false;
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    this.paused = false;
    this.schedule();
    return this;
  }

  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.inbox.length = 0;
    this.head = 0;
    this.inboxBytes = 0;
    this.other.ending = true;
    this.other.schedule();
    process.nextTick(() => this.emit('close'));
    return this;
  }

  private take(bytes: Buffer, taken: Pending['taken']): void {
    this.inbox.push({ bytes, taken });
    this.inboxBytes += bytes.length;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.destroyed) return;
    this.scheduled = true;
    // after I/O, as a socket's bytes come: a writer that keeps writing cannot starve the loop
    setImmediate(() => {
      this.scheduled = false;
      this.deliver();
    });
  }

  private deliver(): void {
    while (!this.paused && !this.destroyed && this.head < this.inbox.length) {
      const p = this.inbox[this.head]!;
      this.inbox[this.head++] = undefined as unknown as Pending;
      this.inboxBytes -= p.bytes.length;
      this.emit('data', p.bytes);
      p.taken?.(null);
    }
    if (this.head === this.inbox.length) {
      this.inbox.length = 0;
      this.head = 0;
    }
    const w = this.other;
    if (w.writableNeedDrain && this.inboxBytes < HIGH_WATER && !w.destroyed) {
      w.writableNeedDrain = false;
      w.emit('drain');
    }
    if (this.ending && this.inboxBytes === 0 && !this.destroyed) {
      this.destroyed = true;
      this.emit('end');
      this.emit('close');
    }
  }
}

/** Two connected ends: what one writes, the other reads. */
export function memoryPipe(): [WireSocket, WireSocket] {
  const a = new PipeEnd();
  const b = new PipeEnd();
  a.other = b;
  b.other = a;
  return [a, b];
}
