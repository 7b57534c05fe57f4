/**
 * A uTP connection as the peer connection sees a TCP socket (WireSocket): 'connect' once an
 * outgoing connection is up, 'data' in order, write() with a callback once the bytes are on
 * the network, 'drain', 'end' when the other end's FIN and all before it have come, then
 * 'close'. Failures are 'error' with the code a socket would give (ECONNREFUSED for a RESET
 * to our SYN, ETIMEDOUT, ECONNRESET), then 'close'.
 */
import { EventEmitter } from 'node:events';
import type { WireSocket } from '../wire/memory-pipe.js';
import type { ConnectionEvents, UtpConnection } from './connection.js';

export class UtpStream extends EventEmitter implements WireSocket, ConnectionEvents {
  /** set by the endpoint right after construction */
  conn!: UtpConnection;
  destroyed = false;
  private closeEmitted = false;
  private errored = false;

  constructor(readonly remoteAddress: string, readonly remotePort: number) {
    super();
  }

  /** bytes written and not yet sent (those in flight are the transport's, as a socket's kernel buffer) */
  get writableLength(): number {
    return this.conn.unsent;
  }

  get writableNeedDrain(): boolean {
    return this.conn.needDrain;
  }

  // small writes of one turn of the event loop go out together anyway: the endpoint flushes once per turn
  setNoDelay(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}

  write(data: Uint8Array, cb?: (err?: Error | null) => void): boolean {
    if (this.destroyed) {
      if (cb) process.nextTick(cb, Object.assign(new Error('write after uTP stream was destroyed'), { code: 'ERR_STREAM_DESTROYED' }));
      return false;
    }
    return this.conn.write(data, cb);
  }

  /** Stops 'data'; what arrives meanwhile is held and shrinks the window we advertise, so the sender slows. */
  pause(): this {
    this.conn.pause();
    return this;
  }

  resume(): this {
    this.conn.resume();
    return this;
  }

  /** Ends the stream: what was written still goes, then a FIN; 'close' follows at once. */
  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.conn.close();
    this.emitClose();
    return this;
  }

  // ---- ConnectionEvents ----

  connected(): void {
    this.emit('connect');
  }

  data(chunk: Buffer): void {
    if (!this.destroyed) this.emit('data', chunk);
  }

  end(): void {
    if (this.destroyed) return;
    this.emit('end');
    // as a net.Socket without allowHalfOpen: the other end's FIN ends ours too
    this.destroy();
  }

  error(code: string, message: string): void {
    if (this.destroyed) return;
    this.errored = true;
    this.destroyed = true;
    const err: NodeJS.ErrnoException = Object.assign(new Error(message), { code });
    process.nextTick(() => {
      this.emit('error', err);
      this.emitClose();
    });
  }

  closed(): void {
    if (this.errored) return;
    this.destroyed = true;
    this.emitClose();
  }

  drain(): void {
    if (!this.destroyed) this.emit('drain');
  }

  written(cb: (err?: Error | null) => void, err?: Error): void {
    cb(err ?? null);
  }

  private emitClose(): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    process.nextTick(() => this.emit('close'));
  }
}
