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
import { randomBytes } from 'node:crypto';
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
import type { SwarmStats } from '../swarm/swarm.js';
import { AnnounceLoop } from '../tracker/loop.js';
import { makePeerId } from '../wire/protocol.js';
import type { LogLevel } from '../log.js';
import { resolveTorrent } from './metadata.js';
import { pickFreePort } from './port.js';

export interface DownloadOptions {
  /** peers to try besides those the trackers and the DHT give (addresses, not names) */
  peers?: readonly PeerRecord[];
  /** use the torrent's (or magnet's) trackers (default true) */
  announce?: boolean;
  /** more trackers, each a tier of its own */
  trackers?: readonly string[];
  /** a started DHT node to find peers with (not for private torrents); the caller closes it */
  dht?: DhtNode | null;
  /** only these files: paths as `info` shows them, or indexes (default: a magnet's so=, else all) */
  select?: ReadonlyArray<string | number>;
  /** listen for peers here (default 0: a free port, the one announced) */
  port?: number;
  /** connections at most (default 50) */
  maxPeers?: number;
  /** bytes of pieces in flight at most (default 16 MiB) */
  maxMemory?: number;
  /** write through the page cache (default: around it where the file system allows) */
  osCache?: boolean;
  /** give up when no piece (or no metadata) arrives for this long (default 120 s; 0 = never) */
  timeoutMs?: number;
  /** our BEP 20 peer id (default: -TK0100- and 12 random bytes) */
  peerId?: Buffer;
  /** stops the download (the job then rejects with an AbortError) */
  signal?: AbortSignal;
  /** one line per thing worth saying, with how much it matters ('peer': one peer's trouble) */
  log?: (line: string, level: LogLevel) => void;
}

/** What `download --json` prints: the metadata step (magnets), then assemble's events. */
export type DownloadEvent =
  | { event: 'metadata'; source: 'file' | 'cache' | 'peers'; infoHash: string; name: string; bytes: number }
  | AssembleEvent;

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
  phase: 'starting' | 'metadata' | 'checking' | 'downloading' | 'done';
  /** the torrent's piece length, once known (0 before) */
  pieceLength: number;
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
  swarm: SwarmStats | null;
}

export class DownloadJob extends EventEmitter<{ event: [DownloadEvent] }> implements PromiseLike<DownloadResult>, AsyncIterable<DownloadEvent> {
  /** settles when the download is complete (or failed, or was aborted) */
  readonly result: Promise<DownloadResult>;
  private progress: DownloadProgress = { phase: 'starting', pieceLength: 0, done: 0, total: 0, valid: 0, bytes: 0, uploadRate: 0, swarm: null };
  private fetch: FetchStream | null = null;

  constructor(input: Torrent | string | TorrentSource, dir: string, options: DownloadOptions = {}) {
    super();
    this.result = this.run(input, dir, options);
    this.result.catch(() => {}); // a job nobody awaits must not crash the process
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
    if (f !== null && this.progress.phase === 'downloading') {
      this.progress.swarm = f.swarm.stats();
      this.progress.uploadRate = f.swarm.uploadRate();
    }
    return { ...this.progress };
  }

  private async run(input: Torrent | string | TorrentSource, dir: string, o: DownloadOptions): Promise<DownloadResult> {
    await Promise.resolve(); // listeners and iterators attach before the first event
    const started = Date.now();
    const logAt = o.log ?? ((): void => {});
    const log = (line: string): void => logAt(line, 'notice');
    const signal = o.signal ?? new AbortController().signal;
    const src = isSource(input) ? input : await loadSource(input, (m) => log(`warning: ${m}`));
    const peerId = o.peerId ?? makePeerId(randomBytes);
    const port = o.port === undefined || o.port === 0 ? await pickFreePort() : o.port;
    const timeoutMs = o.timeoutMs ?? 120_000;
    const feed = new PeerFeed();
    for (const p of o.peers ?? []) feed.add(p);
    let torrent: Torrent | undefined = src.torrent;
    let have = 0;
    let fetch: FetchStream | null = null;
    const tiers = [...(o.announce === false ? [] : src.trackers.map((x) => [...x])), ...(o.trackers ?? []).map((u) => [u])];
    const loop = tiers.length > 0
      ? new AnnounceLoop({
          tiers, infoHash: src.infoHash, peerId, port,
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
    const dht = o.dht && !src.torrent?.private ? o.dht : null;
    let discovery = dht ? new DhtDiscovery(dht, src.infoHash, { port, onPeer: (rec) => feed.add(rec), onLog: log }) : null;
    let readStore: FileStore | null = null;
    try {
      loop?.start();
      discovery?.start();
      this.progress.phase = 'metadata';
      const got = await resolveTorrent(src, {
        feed, cacheFile: join(dir, '.torrent-tools', `${src.infoHash.toString('hex')}.torrent`), cacheRoot: dir, timeoutMs, signal,
        maxPeers: o.maxPeers, peerId, port, log: (m, level = 'notice') => logAt(m, level),
      });
      const t = (torrent = got.torrent);
      this.progress.pieceLength = t.pieceLength;
      this.emit('event', { event: 'metadata', source: got.source, infoHash: t.infoHashHex, name: t.name, bytes: t.infoRaw.length });
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
      readStore = await FileStore.open(t, dir, { mode: 'read', maxOpen: 64 });
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
        have: valid, wanted, maxPeers: o.maxPeers, maxInFlightBytes: o.maxMemory, port, serve: readStore, stallTimeoutMs: timeoutMs, peerId,
        dhtPort: tDht?.address().port,
      }));
      f.swarm.on('log', logAt);
      let bound: number | null = port;
      try {
        bound = await f.swarm.listen(port);
      } catch (e) {
        bound = null;
        log(`warning: cannot listen on port ${port} (${(e as Error).message}); downloading without incoming connections`);
      }
      feed.switchTo((rec) => f.swarm.addPeer(rec));
      f.swarm.on('dht-node', (n) => tDht?.addNode(n.ip, n.port));
      this.fetch = f;

      const assemble = new AssembleStream(t, dir, { trust: true, wanted, have: valid, select, osCache: o.osCache, onNotice: (m) => log(`note: ${m}`) });
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
          this.emit('event', ev);
          cb();
        },
      });
      await pipeline(f, assemble, events, { signal });
      if (assemble.remaining > 0) throw new JobError(`${assemble.remaining} of ${this.progress.total} wanted pieces missing`);
      loop?.completed();
      this.progress.phase = 'done';
      const used = (f.finalStats ?? f.swarm.stats()).perPeer.filter((p) => p.downloaded > 0).length;
      return { torrent: t, pieces, bytes: this.progress.bytes, resumed: valid.size, uploaded: f.swarm.uploaded, peersUsed: used, seconds: (Date.now() - started) / 1000, port: bound, peerId };
    } finally {
      // one place gives everything back, whatever happened
      this.progress.swarm = fetch ? fetch.finalStats ?? fetch.swarm.stats() : null;
      feed.switchTo(null);
      fetch?.destroy();
      discovery?.stop();
      await loop?.stop();
      await readStore?.close();
    }
  }
}

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
