/**
 * Noticing that standard output's reader has gone, also while we have nothing to write: a
 * producer that sits idle (`announce --watch` between new peers, `dht get-peers --watch`,
 * `fetch-pieces` waiting for peers) would otherwise learn it only at its next write (EPIPE),
 * which may never come, and the pipeline `announce --watch | fetch-pieces | assemble` would
 * never end.
 *
 * A pipe's writer is told its readers are gone by poll() (POLLERR), which Node does not expose.
 * GNU tail does it for us: `tail -f` exits as soon as its standard output is a pipe without a
 * reader (coreutils 8.28 and later), so a `tail -f /dev/null` sharing our standard output
 * exits exactly when our reader goes. Where standard output is not a pipe, or no such tail
 * runs, the reader's departure is still seen at the next write.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fstatSync } from 'node:fs';
import type { Writable } from 'node:stream';

export interface ReaderWatch {
  /** aborted once the reader has gone (EPIPE on a write, or the pipe seen without a reader) */
  readonly signal: AbortSignal;
  stop(): void;
}

/** how often tail looks at its output (its -s; it checks the pipe between sleeps) */
const CHECK_SECONDS = '0.25';

export function watchReader(out: Writable, fd: number): ReaderWatch {
  const gone = new AbortController();
  const onError = (e: NodeJS.ErrnoException): void => {
    if (e.code === 'EPIPE') gone.abort();
  };
  out.on('error', onError);
  let tail: ChildProcess | null = null;
  let stopped = false;
  const kill = (): void => {
    tail?.kill('SIGKILL');
  };
  if (isPipe(fd)) {
    tail = spawn('tail', ['-f', '-s', CHECK_SECONDS, '/dev/null'], { stdio: ['ignore', fd, 'ignore'] });
    tail.on('error', () => {}); // no tail here: the next write tells, as before
    tail.on('exit', () => {
      if (!stopped) gone.abort();
    });
    tail.unref();
    process.once('exit', kill);
  }
  return {
    signal: gone.signal,
    stop() {
      stopped = true;
      out.off('error', onError);
      kill();
      process.off('exit', kill);
    },
  };
}

function isPipe(fd: number): boolean {
  try {
    return fstatSync(fd).isFIFO();
  } catch {
    return false;
  }
}
