/**
 * The TORRENT argument most commands take: a .torrent path, '-' for stdin, a magnet URI, or
 * (where it makes sense) a bare info hash.
 */
import { readFile } from 'node:fs/promises';
import { MagnetError, parseInfoHash } from '../metainfo/magnet.js';
import { sourceOfMagnet, sourceOfTorrent, type TorrentSource } from '../metainfo/source.js';
import { LIMITS, MetainfoError, parseTorrent } from '../metainfo/torrent.js';
import { CliError, UsageError } from './errors.js';
import { describeNonTorrent, describeSystemError } from './input.js';
import { warnOnce, type Io } from './io.js';

export type { TorrentSource };

export interface TorrentArgOptions {
  strict?: boolean;
  allowMagnet?: boolean;
  allowInfoHash?: boolean;
}

async function readAll(stream: NodeJS.ReadableStream, limit: number, name: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of stream as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) throw new CliError(`${name}: larger than ${limit} bytes: not a torrent file`);
    parts.push(c);
  }
  return Buffer.concat(parts, n);
}

export async function loadTorrentArg(arg: string, io: Io, cmd: string, options: TorrentArgOptions = {}): Promise<TorrentSource> {
  if (/^magnet:/i.test(arg)) {
    if (!options.allowMagnet) throw new UsageError('this command needs a .torrent file, not a magnet URI (fetch-metadata makes one)');
    try {
      return sourceOfMagnet(arg);
    } catch (e) {
      if (e instanceof MagnetError) throw new CliError(`magnet: ${e.message}`);
      throw e;
    }
  }
  const hash = parseInfoHash(arg);
  if (hash !== null && options.allowInfoHash) {
    return { infoHash: hash, name: hash.toString('hex'), trackers: [] };
  }
  const name = arg === '-' ? 'stdin' : arg;
  let buf: Buffer;
  try {
    buf = arg === '-' ? await readAll(io.stdin, LIMITS.torrentBytes, name) : await readFile(arg);
  } catch (e) {
    if (e instanceof CliError) throw e;
    const sys = describeSystemError(e, name);
    if (sys !== null) throw new CliError(sys);
    throw e;
  }
  const warn = warnOnce(io, cmd);
  try {
    return sourceOfTorrent(parseTorrent(buf, { strict: options.strict, onWarning: (m) => warn(m, `${name}: ${m}`) }), name);
  } catch (e) {
    if (e instanceof MetainfoError) {
      const looks = describeNonTorrent(buf);
      throw new CliError(looks === null ? `${name}: ${e.message}` : `${name}: not a torrent file: ${looks}`);
    }
    throw e;
  }
}
