/**
 * Log lines of a command that talks to peers, by how much they matter (log.ts): one peer's
 * trouble is counted (the progress line and the summary show the count) and printed only with
 * -v/--verbose; notices are printed unless -q/--quiet, which leaves only errors.
 */
import type { LogLevel } from '../log.js';
import type { Args } from './args.js';
import { report, type Io } from './io.js';

export type Verbosity = 'quiet' | 'normal' | 'verbose';

/** The options every peer-talking command takes for it (parseArgs: boolean, alias v). */
export const VERBOSITY_HELP = `  -v, --verbose        print every peer failure (refused, timed out, dropped) with its reason
  -q, --quiet          no progress line; print errors only
`;

export function verbosityOf(a: Args): Verbosity {
  if (a.bool('quiet')) return 'quiet';
  return a.bool('verbose') ? 'verbose' : 'normal';
}

export class Reporter {
  /** peer failures seen (printed only when verbose) */
  failed = 0;
  private readonly io: Io;
  private readonly cmd: string;
  readonly verbosity: Verbosity;

  constructor(io: Io, cmd: string, verbosity: Verbosity) {
    this.io = io;
    this.cmd = cmd;
    this.verbosity = verbosity;
  }

  /** A log line from the engine, shown or counted by its level. */
  readonly log = (line: string, level: LogLevel = 'notice'): void => {
    if (level === 'peer') this.failed++;
    if (level !== 'notice') {
      if (this.verbosity === 'verbose') report(this.io, this.cmd, line);
    } else if (this.verbosity !== 'quiet') {
      report(this.io, this.cmd, line);
    }
  };
}
