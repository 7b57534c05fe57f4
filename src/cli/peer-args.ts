import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PeerFeed } from '../peers/feed.js';
import { parseHostPort, type PeerRecord } from '../peers/record.js';
import { resolvePeers, type NamedPeer } from '../peers/resolve.js';
import { NdjsonParseStream } from '../streams/ndjson-parse.js';
import { PeerRecordStream } from '../streams/peers.js';
import { UsageError } from './errors.js';
import { report, warnOnce, type Io } from './io.js';

/** `--peer HOST:PORT` values, checked (a usage error otherwise); names are looked up by resolvePeerArgs. */
export function parsePeerArgs(values: readonly string[]): NamedPeer[] {
  return values.map((v) => {
    const hp = parseHostPort(v);
    if (!hp) throw new UsageError(`--peer: expected HOST:PORT or [IPv6]:PORT, got ${JSON.stringify(v)}`);
    return hp;
  });
}

/** `--peer` values as peer records (source "cli"), host names looked up once. */
export function resolvePeerArgs(peers: readonly NamedPeer[], io: Io, cmd: string): Promise<PeerRecord[]> {
  return resolvePeers(peers, 'cli', (m) => report(io, cmd, `warning: --peer ${m}`));
}

/**
 * Peers on stdin (unless it is a terminal) into a feed; the feed ends with stdin. Returns the
 * way to stop reading when no more peers are needed (the job is done): a normal end, so the
 * cut-off input is no warning.
 */
export function feedFromStdin(io: Io, cmd: string, feed: PeerFeed): () => void {
  if (io.stdin.isTTY) {
    feed.end();
    return () => {};
  }
  const done = new AbortController();
  const warn = warnOnce(io, cmd);
  const sink = new Writable({
    objectMode: true,
    write: (rec: PeerRecord, _enc, cb) => {
      feed.add(rec);
      cb();
    },
  });
  pipeline(io.stdin, new NdjsonParseStream({ maxLineLength: 64 * 1024 }), new PeerRecordStream((line, why) => warn('peer', `stdin:${line}: not a peer, skipped: ${why}`)), sink, { signal: done.signal })
    .catch((e: Error) => {
      if (!done.signal.aborted) report(io, cmd, `warning: stdin: ${e.message}; no more peers will be read`);
    })
    .finally(() => feed.end());
  return () => done.abort();
}
