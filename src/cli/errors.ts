/** A failure to report as `torrent-tools <cmd>: <message>` with an exit status (1 by default). */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** Bad arguments: exit status 2, the synopsis follows the message. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

/**
 * One line, safe for a terminal: control characters (which a remote peer or tracker may have
 * put in a message) are written as \xNN escapes, and the text is cut at `max` characters.
 */
export function escapeLine(s: string, max = 2000): string {
  const t = s.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return t.length > max ? t.slice(0, max) + '…' : t;
}
