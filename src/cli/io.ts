import type { Readable, Writable } from 'node:stream';
import { escapeLine } from './errors.js';

/** What a command may touch of the outside world: given by cli.ts, replaced in tests. */
export interface Io {
  stdin: Readable & { isTTY?: boolean };
  /**
   * The descriptor behind `stdin` (the CLI's fd 0, absent in tests): a command may read it
   * itself instead (assemble, into reused memory), and then never touches `stdin`, whose
   * stream is only made when first asked for (making it puts a pipe in non-blocking mode).
   */
  stdinFd?: number;
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  env: Readonly<Record<string, string | undefined>>;
  /** aborted on SIGINT/SIGTERM */
  signal: AbortSignal;
  /**
   * Aborted once stdout's reader has gone, even while nothing is written (reader-watch.ts): a
   * command that can sit idle ends on it, normally (exit 0). Watched only once asked for.
   */
  readonly readerGone?: AbortSignal;
  /** the progress line on stderr, if one is drawn: report() takes it off before a log line */
  statusLine?: StatusLine;
}

/** A line redrawn in place at the bottom of the terminal (progress.ts). */
export interface StatusLine {
  clear(): void;
  redraw(): void;
}

export interface Command {
  name: string;
  /** one line: the arguments */
  synopsis: string;
  /** the whole --help text (synopsis and options) */
  help: string;
  /** returns the exit status; throws CliError/UsageError for failures */
  run(argv: string[], io: Io): Promise<number>;
}

/** Writes `torrent-tools <cmd>: <message>` to stderr, on one escaped line. */
export function report(io: Io, cmd: string, message: string): void {
  io.statusLine?.clear();
  io.stderr.write(`torrent-tools ${cmd}: ${escapeLine(message)}\n`);
  io.statusLine?.redraw();
}

/**
 * A line on stdout (NDJSON records of a command that also draws a progress line): the line is
 * taken off first and put back after, so that a terminal showing both gets no record glued to it.
 */
export function printLine(io: Io, line: string): void {
  io.statusLine?.clear();
  io.stdout.write(line.endsWith('\n') ? line : line + '\n');
  io.statusLine?.redraw();
}

/** A warning that is printed only the first time its key is seen. */
export function warnOnce(io: Io, cmd: string): (key: string, message: string) => void {
  const seen = new Set<string>();
  return (key, message) => {
    if (seen.has(key)) return;
    seen.add(key);
    report(io, cmd, `warning: ${message}`);
  };
}
