/**
 * `download` with several torrents: one session (port, DHT node, hashing thread, connection
 * cap) for all of them, at most --max-active downloading at once and the rest queued in the
 * order they came, each into its own folder. Requests may keep arriving while others run (`-i -`
 * fed by another command); the command ends once the requests have ended and every job has.
 * One torrent failing is that torrent's failure, said in the summary; the others go on.
 */
import { setMaxListeners } from 'node:events';
import { Turns } from '../turns.js';
import { join, resolve } from 'node:path';
import { DownloadJob, type DownloadOptions, type DownloadResult } from '../client/download.js';
import type { TorrentSource } from '../metainfo/source.js';
import type { Session } from '../session/session.js';
import { clock, human } from './units.js';
import { report, type Io } from './io.js';
import type { Progress } from './progress.js';

/** One torrent to download, as the arguments or a list line gave it. */
export interface DownloadRequest {
  /** where it came from, for messages: "argument 2", "list.txt:3" */
  where: string;
  /** the torrent, or why it cannot be had (a bad line, an unreadable file) */
  load: () => Promise<TorrentSource>;
  /** its own folder instead of DIR/HASH */
  output?: string;
  select?: string[];
  /** its own rate limits in bytes/s, within the global ones */
  maxDownloadRate?: number;
  maxUploadRate?: number;
}

export interface ManyOptions {
  io: Io;
  session: Session;
  out: string;
  /** every torrent straight into `out` instead of out/INFOHASH */
  flat: boolean;
  maxActive: number;
  /** options every job gets (peers, trackers, limits, seeding) */
  job: Omit<DownloadOptions, 'session' | 'select' | 'signal'>;
  json: boolean;
  progress: Progress;
  failed: () => number;
  quiet: boolean;
}

interface Entry {
  where: string;
  name: string;
  infoHash: string | null;
  job: DownloadJob | null;
  result: DownloadResult | null;
  error: string | null;
  /** the same torrent as an earlier request: skipped, not failed */
  duplicate: boolean;
  /** when its last piece was on disk (ms since the batch started) */
  doneAt: number;
}

/** Every content path (DIR/NAME) in use, so that --flat cannot mix two torrents' files. */
type Claims = Map<string, Entry>;

/** Runs every request; resolves with the exit status (0: all complete). */
export async function downloadMany(requests: AsyncIterable<DownloadRequest>, o: ManyOptions): Promise<number> {
  // every job listens to the one signal (its pipeline, its seeding): not a leak
  setMaxListeners(0, o.io.signal);
  const entries: Entry[] = [];
  const byHash = new Map<string, Entry>();
  const claims: Claims = new Map();
  const started = Date.now();
  let listEnded = false;
  const slots = new Turns(o.maxActive);
  const running: Array<Promise<void>> = [];
  const bar = setInterval(() => draw(entries, o), 250);
  try {
    try {
      for await (const req of requests) {
        if (o.io.signal.aborted) break;
        const entry: Entry = { where: req.where, name: req.where, infoHash: null, job: null, result: null, error: null, duplicate: false, doneAt: 0 };
        entries.push(entry);
        running.push(runOne(req, entry, { byHash, claims, slots, started }, o));
      }
      listEnded = !o.io.signal.aborted;
    } catch (e) {
      // interrupted while waiting for the list's next line: the jobs end on the same signal
      if (!o.io.signal.aborted) throw e;
    } finally {
      // whatever happened to the list, the jobs started give back what they hold first
      await Promise.all(running);
    }
  } finally {
    clearInterval(bar);
    draw(entries, o, true);
  }
  const torrents = entries.filter((e) => !e.duplicate);
  const failed = torrents.filter((e) => e.result === null);
  const bytes = torrents.reduce((n, e) => n + (e.result?.bytes ?? 0), 0);
  // the rate is over the downloading, not the seeding after it
  const seconds = Math.max(0.001, ...torrents.map((e) => e.doneAt)) / 1000;
  o.progress.finish();
  // the summary (short enough for 80 columns), and a line per failed torrent: said even with
  // --quiet when something failed
  const complete = torrents.length - failed.length;
  const summary = `${complete}/${torrents.length} torrent${torrents.length === 1 ? '' : 's'} complete, ${human(bytes)} in ${clock(seconds)}, ${human(bytes / seconds)}/s`;
  if (failed.length > 0) report(o.io, 'download', `${summary}; ${failed.length} failed:`);
  else if (!o.quiet) report(o.io, 'download', summary);
  for (const e of failed) report(o.io, 'download', `${e.name}${e.infoHash ? ` (${e.infoHash.slice(0, 8)})` : ''}: ${e.error ?? 'interrupted'}`);
  // what the torrents shared: one port, one DHT node (its figures as `dht serve` prints them)
  if (o.json) {
    o.io.stdout.write(JSON.stringify({ event: 'session', torrents: torrents.length, complete, failed: failed.length, port: o.session.port, dht: o.session.dht?.stats() ?? null }) + '\n');
  }
  // interrupted before the list ended, or with torrents unfinished: not a normal end
  if (o.io.signal.aborted && (failed.length > 0 || !listEnded)) return 130;
  return failed.length === 0 ? 0 : 1;
}

interface Batch {
  byHash: Map<string, Entry>;
  claims: Claims;
  slots: Turns;
  started: number;
}

async function runOne(req: DownloadRequest, entry: Entry, b: Batch, o: ManyOptions): Promise<void> {
  let src: TorrentSource;
  try {
    src = await req.load();
  } catch (e) {
    entry.error = (e as Error).message;
    return;
  }
  const hash = src.infoHash.toString('hex');
  entry.name = src.torrent?.name ?? src.name;
  entry.infoHash = hash;
  const first = b.byHash.get(hash);
  if (first) {
    entry.duplicate = true;
    if (!o.quiet) report(o.io, 'download', `note: ${req.where}: the same torrent as ${first.where}: skipped`);
    return;
  }
  b.byHash.set(hash, entry);
  const dir = req.output ?? (o.flat ? o.out : join(o.out, hash));
  // two torrents of one name in one folder would write into each other's files (a magnet
  // without a name is checked by its info hash, which is its name until the metadata comes)
  const content = resolve(dir, src.torrent?.name ?? src.magnet?.name ?? hash);
  const other = b.claims.get(content);
  if (other) {
    entry.error = `${content} is already ${other.name}'s (from ${other.where}): give it its own folder (without --flat, or "output")`;
    return;
  }
  b.claims.set(content, entry);
  const release = await b.slots.acquire(o.io.signal);
  if (release === null) return;
  try {
    const job = new DownloadJob(src, dir, {
      ...o.job, session: o.session, signal: o.io.signal, ...(req.select ? { select: req.select } : {}),
      maxDownloadRate: req.maxDownloadRate, maxUploadRate: req.maxUploadRate,
      log: (line, level) => o.job.log?.(`${entry.name}: ${line}`, level),
    });
    entry.job = job;
    if (o.json) job.on('event', (ev) => o.io.stdout.write(JSON.stringify(ev) + '\n'));
    try {
      entry.result = await job.result;
      entry.doneAt = Date.now() - b.started;
      if (!o.quiet) report(o.io, 'download', `${entry.name}: complete, ${human(entry.result.bytes)} in ${clock(entry.result.seconds)}`);
    } catch (e) {
      entry.error = (e as Error).message;
    }
    // seeding on (--seed) is no download: the next queued torrent starts beside it
    release();
    await job.closed.catch(() => {});
  } finally {
    release();
  }
}

/** The whole batch on one progress line: pieces of every started torrent, their peers and upload. */
function draw(entries: readonly Entry[], o: ManyOptions, force = false): void {
  let done = 0;
  let total = 0;
  let bytes = 0;
  let left = 0;
  let peers = 0;
  let upRate = 0;
  let uploaded = 0;
  for (const e of entries) {
    if (e.job === null) continue;
    const s = e.job.stats();
    if (s.phase === 'downloading' || s.phase === 'seeding' || s.phase === 'done') {
      done += s.valid + s.done;
      total += s.valid + s.total;
      left += Math.max(0, (s.total - s.done) * s.pieceLength);
    }
    bytes += s.bytes;
    peers += s.swarm?.peers ?? 0;
    upRate += s.uploadRate;
    uploaded += s.uploaded;
  }
  o.progress.update({ done, total, bytes, left, peers, upRate, uploaded, failed: o.failed() }, force);
}
