/**
 * The metadata step every command that takes a magnet shares: the peers we have (the feed)
 * are asked for the info dict by BEP 9, and the result becomes a Torrent, cached in a file so
 * that a resumed run needs no metadata again.
 */
import type { LogLevel } from '../log.js';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../storage/write-atomic.js';
import { torrentFileFromMetadata } from '../metainfo/from-metadata.js';
import { MetainfoError, parseTorrent, type Torrent } from '../metainfo/torrent.js';
import type { PeerFeed } from '../peers/feed.js';
import type { PeerRecord } from '../peers/record.js';
import { resolvePeers } from '../peers/resolve.js';
import { MetadataSwarm } from '../swarm/metadata-swarm.js';
import { JobError } from '../errors.js';
import type { TorrentSource } from '../metainfo/source.js';
import type { ConnectionBudget } from '../session/budget.js';
import type { Bandwidth } from '../wire/bandwidth.js';
import type { HandedPeer } from '../swarm/hand-over.js';
import type { Transports } from '../swarm/connector.js';
import { LayerFetcher, isV2Connection } from '../swarm/layer-fetch.js';
import type { PeerConnection } from '../wire/peer-connection.js';

/** The metadata could not be had: what was tried, in one line. */
export class MetadataError extends JobError {}

export interface MetadataStepOptions {
  feed: PeerFeed;
  /** give up after this long without the metadata (0 = never) */
  timeoutMs: number;
  signal: AbortSignal;
  maxSize?: number;
  maxPeers?: number;
  port?: number;
  peerId?: Buffer;
  pex?: boolean;
  /** connections at most across the torrents of a session */
  budget?: ConnectionBudget | null;
  /** the rate limits its connections are charged to */
  bandwidth?: Bandwidth;
  /** how peers are dialled (default TCP only) */
  transports?: Transports;
  log: (message: string, level?: LogLevel) => void;
  /** every peer the step adds as a candidate (for --print-peers) */
  onPeer?: (rec: PeerRecord) => void;
  /** a source besides the feed's inputs may still bring peers (the DHT) */
  morePeers?: () => boolean;
  /**
   * the connections open when the metadata arrives, for the torrent's swarm to take over
   * (default: they are closed)
   */
  onHandOver?: (peers: HandedPeer[]) => void;
  /** takes incoming connections for this magnet to the metadata step meanwhile (a session's port) */
  host?: SessionHost;
}

/** Where incoming connections are routed from (Session). */
export interface SessionHost {
  host(route: MetadataSwarm): void;
  unhost(route: MetadataSwarm): void;
}

/** A magnet's x.pe peers into the feed (the feed remembers each once), host names looked up once. */
export async function addMagnetPeers(src: TorrentSource, feed: PeerFeed, log: (message: string) => void): Promise<void> {
  for (const rec of await resolvePeers(src.magnet?.peers ?? [], 'magnet', (m) => log(`warning: x.pe ${m}`))) feed.add(rec);
}

/** The verified raw info dict of `src` from its peers; MetadataError saying what was tried otherwise. */
export async function fetchMetadataFromPeers(src: TorrentSource, o: MetadataStepOptions): Promise<Buffer> {
  const swarm = new MetadataSwarm({
    infoHash: src.infoHash, infoHashV2: src.magnet?.infoHashV2, maxSize: o.maxSize, maxPeers: o.maxPeers,
    port: o.port, peerId: o.peerId, pex: o.pex, budget: o.budget, bandwidth: o.bandwidth, transports: o.transports,
  });
  swarm.on('log', o.log);
  if (o.onPeer) swarm.on('peer', o.onPeer);
  o.host?.host(swarm);
  let watch: NodeJS.Timeout | undefined;
  let abort: (() => void) | undefined;
  try {
    const info = await new Promise<Buffer>((resolve, reject) => {
      const started = Date.now();
      const fail = (why: string): void => reject(new MetadataError(`no metadata for ${src.infoHash.toString('hex')}: ${why}: ${swarm.summary()}`));
      watch = setInterval(() => {
        if (o.timeoutMs > 0 && Date.now() - started > o.timeoutMs) fail(`nothing within ${Math.round(o.timeoutMs / 1000)} s`);
        // a moment's grace: peers on stdin may still be on their way into the connector
        else if (o.feed.ended && !o.morePeers?.() && !swarm.hasPeersLeft && Date.now() - started > 500) fail('no peers left to try');
      }, 250);
      abort = (): void => reject(new MetadataError('interrupted before the metadata arrived'));
      if (o.signal.aborted) return abort();
      o.signal.addEventListener('abort', abort, { once: true });
      swarm.once('metadata', resolve);
      o.feed.switchTo((rec) => swarm.addPeer(rec));
    });
    o.onHandOver?.(swarm.handOver());
    return info;
  } finally {
    clearInterval(watch);
    if (abort) o.signal.removeEventListener('abort', abort);
    o.feed.switchTo(null);
    o.host?.unhost(swarm);
    swarm.destroy();
  }
}

/** Parses metadata bytes as a torrent file, with the magnet's trackers and web seeds. */
export function torrentFromInfo(src: TorrentSource, info: Buffer): { torrent: Torrent; file: Buffer } {
  const file = torrentFileFromMetadata(info, { trackers: src.magnet?.trackers ?? [], webSeeds: src.magnet?.webSeeds ?? [] });
  try {
    // the hash matched, but the content is still a stranger's: validate it like any torrent
    // a v2 torrent's piece layers are not in the info dict: the swarm fetches them from peers
    return { torrent: parseTorrent(file, { onWarning: () => {}, allowMissingLayers: true }), file };
  } catch (e) {
    if (e instanceof MetainfoError) throw new MetadataError(`metadata from peers: ${e.message}`);
    throw e;
  }
}

/** A cached torrent for this info hash, or null when there is none or it is not the right one. */
export async function readCachedTorrent(file: string, infoHash: Buffer): Promise<Torrent | null> {
  try {
    const t = parseTorrent(await readFile(file), { onWarning: () => {}, allowMissingLayers: true });
    // a hybrid cached from a btmh magnet is named by its SHA-1 but was asked for by its v2 hash
    return t.infoHash.equals(infoHash) || t.infoHashV2?.subarray(0, 20).equals(infoHash) ? t : null;
  } catch {
    return null;
  }
}

/**
 * The torrent behind a magnet or info hash: from `cacheFile` when it holds the right one, else
 * fetched from peers and then written there (confined to `cacheRoot` when given).
 */
export async function resolveTorrent(src: TorrentSource, o: MetadataStepOptions & { cacheFile?: string; cacheRoot?: string }): Promise<{ torrent: Torrent; source: 'file' | 'cache' | 'peers' }> {
  // the magnet's x.pe peers serve the download too, whether or not the metadata is cached
  await addMagnetPeers(src, o.feed, o.log);
  if (src.torrent) return { torrent: src.torrent, source: 'file' };
  if (o.cacheFile !== undefined) {
    const cached = await readCachedTorrent(o.cacheFile, src.infoHash);
    if (cached) return { torrent: cached, source: 'cache' };
  }
  const info = await fetchMetadataFromPeers(src, o);
  const { torrent, file } = torrentFromInfo(src, info);
  if (o.cacheFile !== undefined) {
    await writeFileAtomic(o.cacheFile, file, o.cacheRoot).catch((e: Error) => o.log(`warning: cannot cache the torrent in ${o.cacheFile}: ${e.message}`));
  }
  return { torrent, source: 'peers' };
}

/**
 * The piece layers a v2 torrent made from a magnet's metadata lacks, asked of the connections
 * the metadata step handed over (BEP 52 hash requests, every answer proved up to the file's
 * pieces root; layer-fetch.ts), so that the .torrent written is whole. Only connections whose
 * peer's handshake named the v2 hash are asked: a hybrid's peer met under its SHA-1 takes a
 * hash request as a violation (libtorrent). Fills `t.pieceLayers`; MetadataError when some are still missing
 * after `timeoutMs` or when no peer is left to ask.
 */
export async function fetchLayersFrom(t: Torrent, handed: HandedPeer[], o: { timeoutMs: number; signal: AbortSignal }): Promise<void> {
  const v2 = t.infoHashV2?.subarray(0, 20);
  const fetcher = new LayerFetcher(t);
  if (!fetcher.missing) {
    for (const h of handed) h.drop();
    return;
  }
  const conns: Array<{ conn: PeerConnection; has: (i: number) => boolean }> = [];
  for (const h of handed) {
    if (v2 === undefined || !isV2Connection(h.conn, v2)) {
      h.drop();
      continue;
    }
    const pieces = h.take();
    if (pieces === null) continue;
    const haves = new Set(pieces.haves);
    const bits = pieces.bitfield;
    const has = (i: number): boolean => pieces.haveAll || haves.has(i) || (bits !== null && i >> 3 < bits.length && (bits[i >> 3]! & (0x80 >> (i & 7))) !== 0);
    conns.push({ conn: h.conn, has });
  }
  let tick: NodeJS.Timeout | undefined;
  let abort: (() => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const missing = (why: string): void => reject(new MetadataError(`the piece layers of ${t.name} (not part of the metadata): ${why}`));
      const askAll = (): void => {
        for (const c of conns) fetcher.ask(c.conn, c.has);
      };
      for (const c of conns) {
        c.conn.on('message', (m) => {
          if (m.type === 'hashes') {
            const r = fetcher.onHashes(c.conn, m);
            if (r.kind === 'bad') c.conn.close(null);
            else if (!fetcher.missing) return resolve();
          } else if (m.type === 'hash-reject') {
            fetcher.onReject(c.conn, m);
          }
          askAll();
        });
        c.conn.on('close', () => {
          fetcher.onClose(c.conn);
          askAll();
        });
      }
      if (conns.length === 0) return missing('no peer met under the v2 hash');
      tick = setInterval(() => {
        if (o.timeoutMs > 0 && Date.now() - started > o.timeoutMs) missing(`none within ${Math.round(o.timeoutMs / 1000)} s`);
        else if (conns.every((c) => c.conn.closed)) missing('no peer left to ask');
        else askAll();
      }, 1000);
      abort = (): void => reject(new MetadataError('interrupted before the piece layers arrived'));
      if (o.signal.aborted) return abort();
      o.signal.addEventListener('abort', abort, { once: true });
      askAll();
    });
  } finally {
    clearInterval(tick);
    if (abort) o.signal.removeEventListener('abort', abort);
    for (const c of conns) c.conn.close(null);
  }
}
