/**
 * A user-space TCP relay on 127.0.0.1 that adds latency: this kernel has no netem qdisc, and a
 * loopback swarm without latency hides every bug that needs requests to be pipelined.
 * Each chunk is delivered oneWayMs after it arrived (RTT + 2 × oneWayMs), bandwidth untouched.
 */
import { connect, createServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

export interface DelayRelayOptions {
  /**
   * bytes held per direction before the sending side is paused (default 4 MiB). Like a TCP
   * window it caps one connection at maxQueuedBytes / oneWayMs (4 MiB per 100 ms = 40 MiB/s).
   */
  maxQueuedBytes?: number;
  /** give up dialling the target after this long (default 10 s) */
  connectTimeoutMs?: number;
}

export interface DelayRelay {
  port: number;
  /** connections accepted so far */
  readonly connections: number;
  /** connections still open */
  readonly active: number;
  /** bytes waiting in the delay queues, all directions together */
  readonly queuedBytes: number;
  close(): Promise<void>;
}

/** Ends a socket abruptly, as a reset would: the peer must see an error, not a clean end. */
function abort(s: Socket): void {
  if (s.destroyed) return;
  if (s.connecting || typeof s.resetAndDestroy !== 'function') s.destroy();
  else s.resetAndDestroy();
}

/** One direction: src → queue of timestamped chunks → dst, one timer at the head's due time. */
class DelayedPipe {
  private readonly queue: Array<{ due: number; chunk: Buffer }> = [];
  private head = 0;
  queued = 0;
  private timer: NodeJS.Timeout | null = null;
  private srcEnded = false;
  private dstBlocked = false;
  private finished = false;

  constructor(private readonly src: Socket, private readonly dst: Socket, delayMs: number, private readonly maxQueued: number) {
    src.on('data', (chunk: Buffer) => {
      this.queue.push({ due: performance.now() + delayMs, chunk });
      this.queued += chunk.length;
      this.flow();
      if (this.timer === null && !this.dstBlocked) this.arm();
    });
    src.on('end', () => {
      this.srcEnded = true;
      if (this.timer === null && !this.dstBlocked) this.arm();
    });
    dst.on('drain', () => {
      this.dstBlocked = false;
      this.flush();
    });
  }

  private arm(): void {
    if (this.head === this.queue.length) return this.maybeEnd();
    const wait = Math.max(0, this.queue[this.head]!.due - performance.now());
    this.timer = setTimeout(() => this.flush(), Math.ceil(wait));
  }

  private flush(): void {
    this.timer = null;
    if (this.dst.destroyed) {
      // bytes for a socket that is gone: TCP would answer them with a reset
      if (this.queued > 0) abort(this.src);
      return;
    }
    const now = performance.now();
    // one segment for what fell due together, as the kernel would coalesce it
    this.dst.cork();
    while (this.head < this.queue.length && this.queue[this.head]!.due <= now && !this.dstBlocked) {
      const { chunk } = this.queue[this.head]!;
      this.queue[this.head++] = undefined as never; // let the chunk go now, not at compaction
      this.queued -= chunk.length;
      if (!this.dst.write(chunk)) this.dstBlocked = true;
    }
    this.dst.uncork();
    if (this.head === this.queue.length || (this.head > 1024 && this.head * 2 > this.queue.length)) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    this.flow();
    if (!this.dstBlocked) this.arm();
  }

  /** Backpressure end to end: the source waits while the destination or our queue is full. */
  private flow(): void {
    if (this.dstBlocked || this.queued > this.maxQueued) this.src.pause();
    else if (this.src.isPaused() && !this.src.destroyed) this.src.resume();
  }

  /** A FIN is delayed like the data before it: the half-close follows the last byte. */
  private maybeEnd(): void {
    if (!this.srcEnded || this.finished) return;
    this.finished = true;
    this.dst.end();
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
    this.head = 0;
    this.queued = 0;
  }
}

export function startDelayRelay(target: { host: string; port: number }, oneWayMs: number, options: DelayRelayOptions = {}): Promise<DelayRelay> {
  const maxQueued = options.maxQueuedBytes ?? 4 * 1024 * 1024;
  const connectTimeout = options.connectTimeoutMs ?? 10_000;
  const open = new Set<Socket>();
  const pipes = new Set<DelayedPipe>();
  let accepted = 0;
  let active = 0;

  // allowHalfOpen: a FIN from one side must not close the other direction's queued data
  const server = createServer({ allowHalfOpen: true }, (inbound) => {
    accepted++;
    active++;
    const outbound = connect({ host: target.host, port: target.port, allowHalfOpen: true, timeout: connectTimeout });
    outbound.once('connect', () => outbound.setTimeout(0));
    outbound.once('timeout', () => outbound.destroy(new Error('connect timeout')));
    const ab = new DelayedPipe(inbound, outbound, oneWayMs, maxQueued);
    const ba = new DelayedPipe(outbound, inbound, oneWayMs, maxQueued);
    for (const s of [inbound, outbound]) {
      s.setNoDelay(true);
      open.add(s);
    }
    pipes.add(ab).add(ba);
    let closed = 0;
    const onClose = (s: Socket, other: Socket, hadError: boolean): void => {
      open.delete(s);
      // a reset or error on one side resets the other; a clean close lets queued data finish
      if (hadError) abort(other);
      if (++closed === 2) {
        active--;
        ab.stop();
        ba.stop();
        pipes.delete(ab);
        pipes.delete(ba);
      }
    };
    inbound.on('error', () => {});
    outbound.on('error', () => {});
    inbound.on('close', (e) => onClose(inbound, outbound, e));
    outbound.on('close', (e) => onClose(outbound, inbound, e));
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      resolve({
        port,
        get connections() {
          return accepted;
        },
        get active() {
          return active;
        },
        get queuedBytes() {
          let n = 0;
          for (const p of pipes) n += p.queued;
          return n;
        },
        close: () =>
          new Promise<void>((done) => {
            for (const p of pipes) p.stop();
            for (const s of open) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
