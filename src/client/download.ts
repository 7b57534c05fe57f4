/**
 * A whole download as one call, for programs: `await download('x.torrent', 'out/')`. The same
 * stages the `download` command is made of (the command is this plus a progress bar, --json and
 * seeding afterwards): trackers, the DHT when given a node, the magnet's metadata from peers
 * (cached in DIR/.torrent-tools/HASH.torrent), resume (what is valid in DIR is kept), then
 * `FetchStream → AssembleStream`, uploading each piece once it is on disk.
 *
 * The job is awaitable (the result) and an async iterable of the events `download --json`
 * prints; it is also an EventEmitter ('event'). Every resource it takes (the listening socket,
 * the tracker loop, which says `stopped`, the files) is given back in one place whatever the
 * outcome: success, failure or the abort signal.
 */
import { EventEmitter, on } from 'node:events';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DhtDiscovery } from '../dht/discovery.js';
import type { DhtNode } from '../dht/node.js';
import { JobError } from '../errors.js';
import { piecesForFiles } from '../metainfo/pieces.js';
import { fileIndexes } from '../metainfo/select.js';
import { loadSource, type TorrentSource } from '../metainfo/source.js';
import type { Torrent } from '../metainfo/torrent.js';
import { PeerFeed } from '../peers/feed.js';
import type { PeerRecord } from '../peers/record.js';
import { FileStore } from '../storage/file-store.js';
import { verifyPieces } from '../storage/verify.js';
import { AssembleStream, type AssembleEvent } from '../streams/assemble.js';
import { DeferredError } from '../streams/deferred-error.js';
import { FetchStream } from '../streams/fetch.js';
import type { Swarm, SwarmStats } from '../swarm/swarm.js';
import { Session } from '../session/session.js';
import type { HandedPeer } from '../swarm/hand-over.js';
import { AnnounceLoop } from '../tracker/loop.js';
import type { LogLevel } from '../log.js';
import type { StreamTarget } from '../stream/server.js';
import { resolveTorrent } from './metadata.js';
import { torrentFileFromMetadata } from '../metainfo/from-metadata.js';
import { writeFileAtomic } from '../storage/write-atomic.js';
import type { SourceBytes } from '../swarm/swarm.js';
import { WebSeeds, webSeedUrls } from '../webseed/start.js';

export interface DownloadOptions {
  /** peers to try besides those the trackers and the DHT give (addresses, not names) */
  peers?: readonly PeerRecord[];
  /** use the torrent's (or magnet's) trackers (default true) */
  announce?: boolean;
  /** more trackers, each a tier of its own */
  trackers?: readonly string[];
  /** a started DHT node to find peers with (not for private torrents); the caller closes it */
  dht?: DhtNode | null;
  /**
   * the session this download joins (its port, DHT node, hashing thread and connection cap);
   * default: one of its own, listening on `port`, closed with the job
   */
  session?: Session;
  /** only these files: paths as `info` shows them, or indexes (default: a magnet's so=, else all) */
  select?: ReadonlyArray<string | number>;
  /** listen for peers here, without `session` (default 0: a free port, the one announced) */
  port?: number;
  /** connections at most (default 50) */
  maxPeers?: number;
  /** bytes of pieces in flight at most (default 16 MiB) */
  maxMemory?: number;
  /** this torrent's own rate limits in bytes/s, under the session's (default 0: none of its own) */
  maxDownloadRate?: number;
  maxUploadRate?: number;
  /** bytes of blocks read back for uploading, cached (default 8 MiB) */
  readCache?: number;
  /** write through the page cache (default: around it where the file system allows) */
  osCache?: boolean;
  /** give up when no piece (or no metadata) arrives for this long (default 120 s; 0 = never) */
  timeoutMs?: number;
  /** our BEP 20 peer id, without `session` (default: -TK0100- and 12 random bytes) */
  peerId?: Buffer;
  /**
   * once complete, go on serving with the same connections until the ratio (uploaded ÷ size)
   * or the time is reached, or the signal aborts; `result` settles at completion, `closed`
   * when the seeding ends
   */
  seed?: { ratio?: number; seconds?: number };
  /**
   * streaming (`download --serve`): told the torrent and the swarm once the download starts,
   * so that it serves the files as pieces reach the disk and steers the swarm to its readers
   */
  stream?: StreamTarget;
  /** stops the download (the job then rejects with an AbortError), or ends the seeding */
  signal?: AbortSignal;
  /** more web seeds (BEP 19 URLs) besides the torrent's url-list */
  webSeeds?: readonly string[];
  /** use the torrent's url-list (and a magnet's ws=) as web seeds (default true) */
  useUrlList?: boolean;
  /** one line per thing worth saying, with how much it matters ('peer': one peer's trouble) */
  log?: (line: string, level: LogLevel) => void;
}

/** What `download --json` prints: the metadata step (magnets), then assemble's events, each with the info hash. */
export type DownloadEvent = (
  | { event: 'metadata'; source: 'file' | 'cache' | 'peers'; name: string; bytes: number }
  | AssembleEvent
  /** payload bytes per peer and web seed: the last record of a download, complete or not (none if it failed before the swarm started) */
  | { event: 'sources'; sources: SourceBytes[] }
) & { infoHash: string };

export interface DownloadResult {
  torrent: Torrent;
  /** pieces this run wrote */
  pieces: number;
  /** pieces that were already valid in the directory */
  resumed: number;
  /** payload bytes written in this run */
  bytes: number;
  /** payload bytes uploaded to other peers meanwhile */
  uploaded: number;
  /** peers that sent us data */
  peersUsed: number;
  /** from the start to the last piece on disk */
  seconds: number;
  /** the port we listened on (null when we could not) */
  port: number | null;
  peerId: Buffer;
}

/** Where the job is, for a progress display. */
export interface DownloadProgress {
  phase: 'starting' | 'metadata' | 'checking' | 'downloading' | 'seeding' | 'done';
  /** the torrent's piece length, once known (0 before) */
  pieceLength: number;
  /** the torrent's size, once known (0 before) */
  size: number;
  /** checking: pieces checked; downloading: wanted pieces on disk */
  done: number;
  /** checking: pieces in the torrent; downloading: wanted pieces in this run */
  total: number;
  /** checking: pieces found valid so far; downloading: pieces that were valid before */
  valid: number;
  /** payload bytes on disk in this run */
  bytes: number;
  /** bytes/s we upload */
  uploadRate: number;
  /** payload bytes uploaded in this run */
  uploaded: number;
  swarm: SwarmStats | null;
}

export class DownloadJob extends EventEmitter<{ event: [DownloadEvent] }> implements PromiseLike<DownloadResult>, AsyncIterable<DownloadEvent> {
  /** settles when the download is complete (or failed, or was aborted) */
  readonly result: Promise<DownloadResult>;
  /** settles when everything the job took is given back: after the seeding, with `seed` */
  readonly closed: Promise<DownloadResult>;
  private progress: DownloadProgress = { phase: 'starting', pieceLength: 0, size: 0, done: 0, total: 0, valid: 0, bytes: 0, uploadRate: 0, uploaded: 0, swarm: null };
  private fetch: FetchStream | null = null;

  constructor(input: Torrent | string | TorrentSource, dir: string, options: DownloadOptions = {}) {
    super();
    let completed: (r: DownloadResult) => void = () => {};
    const early = new Promise<DownloadResult>((resolve) => (completed = resolve));
    this.closed = this.run(input, dir, options, (r) => completed(r));
    this.result = Promise.race([early, this.closed]);
    // a job nobody awaits must not crash the process
    this.result.catch(() => {});
    this.closed.catch(() => {});
  }

  then<A = DownloadResult, B = never>(onFulfilled?: ((r: DownloadResult) => A | PromiseLike<A>) | null, onRejected?: ((e: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.result.then(onFulfilled, onRejected);
  }

  /** The events from now on, until the job ends; throws what the job fails with. */
  async *[Symbol.asyncIterator](): AsyncIterator<DownloadEvent> {
    const stop = new AbortController();
    const iter = on(this, 'event', { signal: stop.signal });
    void this.result.then(() => setImmediate(() => stop.abort()), () => setImmediate(() => stop.abort()));
    try {
      for await (const [ev] of iter as AsyncIterable<[DownloadEvent]>) yield ev;
    } catch (e) {
      if (!stop.signal.aborted) throw e;
    }
    await this.result; // its failure, if any, is the iteration's
  }

  /** Figures for a progress display (cheap; call it as often as you draw). */
  stats(): DownloadProgress {
    const f = this.fetch;
    if (f !== null && (this.progress.phase === 'downloading' || this.progress.phase === 'seeding')) {
      this.progress.swarm = f.swarm.stats();
      this.progress.uploadRate = f.swarm.uploadRate();
      this.progress.uploaded = f.swarm.uploaded;
    }
    return { ...this.progress };
  }

  private async run(input: Torrent | string | TorrentSource, dir: string, o: DownloadOptions, completed: (r: DownloadResult) => void): Promise<DownloadResult> {
    await Promise.resolve(); // listeners and iterators attach before the first event
    const started = Date.now();
    const logAt = o.log ?? ((): void => {});
    const log = (line: string): void => logAt(line, 'notice');
    const signal = o.signal ?? new AbortController().signal;
    const src = isSource(input) ? input : await loadSource(input, (m) => log(`warning: ${m}`));
    const infoHash = src.infoHash.toString('hex');
    // `sources` is the last event: a piece whose write ends after an interrupt is not said after it
    let sourcesSent = false;
    const emit = (ev: DistributiveOmit<DownloadEvent, 'infoHash'>): void => {
      if (!sourcesSent) this.emit('event', { ...ev, infoHash } as DownloadEvent);
    };
    const own = o.session ? null : new Session({ peerId: o.peerId, dht: o.dht });
    const session = o.session ?? own!;
    const bandwidth = session.bandwidthFor({ down: o.maxDownloadRate, up: o.maxUploadRate });
    if (own) {
      await own.listen(o.port ?? 0).catch(async (e: Error) => {
        log(`warning: cannot listen on port ${o.port ?? 0} (${e.message}); downloading without incoming connections`);
        await own.dialOnly(); // uTP can still be dialled, from a UDP port of its own
      });
    }
    const peerId = session.peerId;
    // trackers are told a port even when we could not listen: the one asked for
    const port = session.port ?? o.port ?? 0;
    const timeoutMs = o.timeoutMs ?? 120_000;
    const feed = new PeerFeed();
    for (const p of o.peers ?? []) feed.add(p);
    let torrent: Torrent | undefined = src.torrent;
    let have = 0;
    let fetch: FetchStream | null = null;
    const tiers = [...(o.announce === false ? [] : src.trackers.map((x) => [...x])), ...(o.trackers ?? []).map((u) => [u])];
    const loop = tiers.length > 0
      ? new AnnounceLoop({
          tiers, infoHash: src.infoHash, peerId, port, udp: session.udp,
          // before the metadata is known the size is too; 'left' must not say we are a seed
          stats: () => ({
            uploaded: fetch?.swarm.uploaded ?? 0,
            downloaded: fetch?.swarm.stats().downloaded ?? 0,
            left: torrent ? Math.max(0, (torrent.pieceCount - have) * torrent.pieceLength) : 1,
          }),
          onPeers: (list) => list.forEach((p) => feed.add(p)),
          // a dead tracker is said once; its further failures are routine (-v shows them)
          onFailure: (f, repeated) => logAt(`${f.tracker}: ${f.message}`, repeated ? 'detail' : 'notice'),
          onWarning: (tracker, w) => log(`${tracker}: warning: ${w}`),
        })
      : null;
    // the DHT finds peers too, never for a private torrent (BEP 27)
    const dht = session.dht && !src.torrent?.private ? session.dht : null;
    let discovery = dht ? new DhtDiscovery(dht, src.infoHash, { port: session.port, onPeer: (rec) => feed.add(rec), onLog: log }) : null;
    let readStore: FileStore | null = null;
    // the connections the metadata came over, kept for the download
    let handed: HandedPeer[] = [];
    // web seeds: in-process peers in front of HTTP servers (webseed/web-seed-peer.ts)
    const webSeeds = new WebSeeds();
    const sendSources = (swarm: Swarm): void => {
      if (sourcesSent) return;
      emit({ event: 'sources', sources: swarm.sources() });
      sourcesSent = true;
    };
    try {
      loop?.start();
      discovery?.start();
      this.progress.phase = 'metadata';
      const got = await resolveTorrent(src, {
        feed, cacheFile: join(dir, '.torrent-tools', `${infoHash}.torrent`), cacheRoot: dir, timeoutMs, signal,
        maxPeers: o.maxPeers, peerId, port: session.port ?? undefined, budget: session.budget, bandwidth, transports: session.transports, log: (m, level = 'notice') => logAt(m, level),
        onHandOver: (peers) => (handed = peers), host: session,
      });
      const t = (torrent = got.torrent);
      this.progress.pieceLength = t.pieceLength;
      this.progress.size = t.length;
      emit({ event: 'metadata', source: got.source, name: t.name, bytes: t.infoRaw.length });
      // the metadata may say private: then no DHT for it after all (BEP 27)
      const tDht = t.private ? null : dht;
      if (t.private && discovery) {
        discovery.stop();
        discovery = null;
      }
      const specs = o.select ?? src.magnet?.select ?? [];
      const select = specs.length > 0 ? fileIndexes(t, specs) : undefined;
      const wanted = select ? new Set(piecesForFiles(t, [...select])) : undefined;

      // resume: whatever is already valid in DIR is kept (no hashing threads when nothing is there)
      readStore = await FileStore.open(t, dir, { mode: 'read', maxOpen: 64, openFiles: session.openFiles });
      const valid = new Set<number>();
      const onDisk = await Promise.all(readStore.paths.map((p, i) => (t.files[i]!.pad ? false : stat(p).then(() => true, () => false))));
      if (onDisk.some(Boolean)) {
        Object.assign(this.progress, { phase: 'checking', done: 0, total: t.pieceCount, valid: 0 });
        for await (const [i, ok] of verifyPieces(t, dir, { signal })) {
          if (ok) valid.add(i);
          this.progress.done++;
          this.progress.valid = valid.size;
        }
      }
      have = valid.size;

      const f = (fetch = new FetchStream(t, {
        ...session.swarmOptions(bandwidth), dhtPort: tDht ? session.dhtPort : undefined,
        have: valid, wanted, maxPeers: o.maxPeers, maxInFlightBytes: o.maxMemory, readCacheBytes: o.readCache, serve: readStore, stallTimeoutMs: timeoutMs,
        keepSwarm: o.seed !== undefined,
      }));
      f.swarm.on('log', logAt);
      // a v2 magnet's layers came from peers: cached with the metadata, a resumed run needs them not again
      if (got.source !== 'file') {
        f.swarm.on('layers', () => {
          const cacheFile = join(dir, '.torrent-tools', `${infoHash}.torrent`);
          const file = torrentFileFromMetadata(t.infoRaw, { trackers: src.magnet?.trackers ?? [], webSeeds: src.magnet?.webSeeds ?? [] }, t.pieceLayers);
          writeFileAtomic(cacheFile, file, dir).catch((e: Error) => log(`warning: cannot cache the piece layers in ${cacheFile}: ${e.message}`));
        });
      }
      session.host(f.swarm);
      for (const h of handed.splice(0)) f.swarm.takeOver(h);
      feed.switchTo((rec) => f.swarm.addPeer(rec));
      f.swarm.on('dht-node', (n) => tDht?.addNode(n.ip, n.port));
      this.fetch = f;
      const wsUrls = webSeedUrls(t, o.webSeeds ?? [], o.useUrlList !== false, log);
      for (const { rec, dial } of webSeeds.start(t, wsUrls, logAt)) f.swarm.addPeer(rec, dial);
      await o.stream?.attach({ torrent: t, dir, swarm: f.swarm, files: select, openFiles: session.openFiles });

      const assemble = new AssembleStream(t, dir, { trust: true, wanted, have: valid, select, osCache: o.osCache, openFiles: session.openFiles, writeTurns: session.writeTurns, onNotice: (m) => log(`note: ${m}`) });
      Object.assign(this.progress, { phase: 'downloading', done: 0, total: assemble.remaining, bytes: 0, valid: valid.size });
      let pieces = 0;
      const events = new Writable({
        objectMode: true,
        write: (ev: AssembleEvent | DeferredError, _enc, cb) => {
          // the fetch stage never ends so, but the sink is where one is raised (deferred-error.ts)
          if (ev instanceof DeferredError) return cb(ev.error);
          if (ev.event === 'piece') {
            pieces++;
            have++;
            this.progress.done++;
            this.progress.bytes += ev.bytes;
            f.swarm.markWritten(ev.index); // on disk: now we may serve it
          }
          emit(ev);
          cb();
        },
      });
      await pipeline(f, assemble, events, { signal });
      if (assemble.remaining > 0) throw new JobError(`${assemble.remaining} of ${this.progress.total} wanted pieces missing`);
      loop?.completed();
      const used = (f.finalStats ?? f.swarm.stats()).perPeer.filter((p) => p.downloaded > 0).length;
      sendSources(f.swarm);
      const result: DownloadResult = { torrent: t, pieces, bytes: this.progress.bytes, resumed: valid.size, uploaded: f.swarm.uploaded, peersUsed: used, seconds: (Date.now() - started) / 1000, port: session.port, peerId };
      if (o.seed !== undefined) {
        this.progress.phase = 'seeding';
        completed(result);
        await seedUntil(f.swarm, t.length, o.seed, signal);
      }
      this.progress.phase = 'done';
      return result;
    } catch (e) {
      // failed or stopped: which source gave what is most wanted now, so the record comes
      // before the failure does (from the swarm's last figures). None before the swarm exists
      // (a magnet's metadata, a bad torrent), and not twice (a failure while seeding after it).
      if (fetch !== null) sendSources(fetch.swarm);
      throw e;
    } finally {
      // one place gives everything back, whatever happened
      this.progress.swarm = fetch ? fetch.finalStats ?? fetch.swarm.stats() : null;
      if (fetch) {
        this.progress.uploaded = fetch.swarm.uploaded;
        session.unhost(fetch.swarm);
      }
      feed.switchTo(null);
      o.stream?.detach();
      for (const h of handed) h.drop();
      fetch?.destroy();
      fetch?.swarm.destroy();
      await webSeeds.close();
      discovery?.stop();
      await loop?.stop();
      await readStore?.close();
      await own?.close();
    }
  }
}

/** Serving on after completion: until the ratio, the time, or the signal. */
function seedUntil(swarm: Swarm, size: number, until: { ratio?: number; seconds?: number }, signal: AbortSignal): Promise<void> {
  const started = Date.now();
  return new Promise<void>((resolve) => {
    const finish = (): void => {
      clearInterval(check);
      signal.removeEventListener('abort', finish);
      resolve();
    };
    const check = setInterval(() => {
      const ratioReached = until.ratio !== undefined && swarm.uploaded / Math.max(1, size) >= until.ratio;
      const timeUp = until.seconds !== undefined && Date.now() - started >= until.seconds * 1000;
      if (ratioReached || timeUp || swarm.destroyed) finish();
    }, 250);
    if (signal.aborted) finish();
    else signal.addEventListener('abort', finish, { once: true });
  });
}

/** Omit over each member of a union (plain Omit would merge them). */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function isSource(x: Torrent | string | TorrentSource): x is TorrentSource {
  return typeof x === 'object' && 'trackers' in x && !('pieceLength' in x);
}

/**
 * Downloads a torrent (a parsed Torrent, a .torrent path, a magnet URI or an info hash) into
 * `dir`. Await it for the result; iterate it (or listen for 'event') for what `download --json`
 * prints; `stats()` for progress; `options.signal` to stop.
 */
export function download(input: Torrent | string, dir: string, options: DownloadOptions = {}): DownloadJob {
  return new DownloadJob(input, dir, options);
}
