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
  const stream = createReadStream(file, { highWaterMark: 64 * 1024 });
  // a read error (EISDIR) carries no path: every file error must name its file
  stream.on('error', (e: NodeJS.ErrnoException) => void (e.path ??= file));
  return { stream, name: file };
}

/**
 * What a file that should be a .torrent looks like instead, or null when it may be one: the
 * usual mix-ups (the tracker's web page saved, a PDF, an archive, a magnet link pasted into a
 * file, an empty download) said in words rather than as a bencode error at byte 0.
 */
export function describeNonTorrent(b: Buffer): string | null {
  if (b.length === 0) return 'it is empty';
  if (b[0] === 0x64) return null; // 'd': a dictionary, maybe a torrent
  const head = b.subarray(0, 512).toString('latin1');
  if (head.startsWith('%PDF')) return 'it is a PDF document';
  if (/^\s*<(!doctype html|html|head|body)/i.test(head)) return 'it is an HTML page (a web page saved instead of the torrent?)';
  if (/^\s*</.test(head)) return 'it is XML or HTML';
  if (head.startsWith('PK\x03\x04')) return 'it is a ZIP archive';
  if (head.startsWith('\x1f\x8b')) return 'it is gzip-compressed';
  if (/^\s*magnet:\?/i.test(head)) return 'it holds a magnet link: give the link itself as the argument';
  if (/^\s*[[{]/.test(head)) return 'it is JSON (bdecode prints JSON; bencode turns it back into a torrent)';
  if (/^[\x09\x0a\x0d\x20-\x7e]*$/.test(head)) return 'it is text';
  return null;
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
