import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Io } from './io.js';

export interface Input {
  stream: Readable;
  /** how errors name it: `stdin` or the path */
  name: string;
}

/** FILE, or stdin for `-` or no argument. Byte stages read 64 KiB at a time (Node's default is 16). */
export function openInput(file: string | undefined, io: Io): Input {
  if (file === undefined || file === '-') return { stream: io.stdin, name: 'stdin' };
  return { stream: createReadStream(file, { highWaterMark: 64 * 1024 }), name: file };
}

const SYSTEM_MESSAGES: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'not a directory',
  ENOSPC: 'no space left on device',
  EMFILE: 'too many open files',
  EROFS: 'read-only file system',
  EEXIST: 'already exists',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by peer',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EADDRINUSE: 'address already in use',
};

/** `path: what` for a Node system error, or null when `e` is not one. */
export function describeSystemError(e: unknown, fallbackWhere?: string): string | null {
  if (!(e instanceof Error)) return null;
  const err = e as NodeJS.ErrnoException;
  if (typeof err.code !== 'string' || !(err.code in SYSTEM_MESSAGES || typeof err.syscall === 'string')) return null;
  const what = SYSTEM_MESSAGES[err.code] ?? err.message;
  const where = err.path ?? fallbackWhere;
  return where ? `${where}: ${what}` : what;
}
