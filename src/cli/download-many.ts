/**
 * `download` with several torrents: one session (port, DHT node, hashing thread, connection
 * cap) for all of them, at most --max-active downloading at once and the rest queued in the
 * order they came, each into its own folder. Requests may keep arriving while others run (`-i -`
 * fed by another command); the command ends once the requests have ended and every job has.
 * One torrent failing is that torrent's failure, said in the summary; the others go on.
 */
import { join } from 'node:path';
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
}

/** Runs every request; resolves with the exit status (0: all complete). */
export async function downloadMany(requests: AsyncIterable<DownloadRequest>, o: ManyOptions): Promise<number> {
  const entries: Entry[] = [];
  const byHash = new Map<string, Entry>();
  const slots = new ActiveLimit(o.maxActive);
  const running: Array<Promise<void>> = [];
  const bar = setInterval(() => draw(entries, o), 250);
  try {
    try {
      for await (const req of requests) {
        if (o.io.signal.aborted) break;
        const entry: Entry = { where: req.where, name: req.where, infoHash: null, job: null, result: null, error: null };
        entries.push(entry);
        running.push(runOne(req, entry, byHash, slots, o));
      }
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
  const failed = entries.filter((e) => e.result === null);
  const bytes = entries.reduce((n, e) => n + (e.result?.bytes ?? 0), 0);
  const seconds = o.progress.seconds;
  o.progress.finish();
  // the summary, and a line per failed torrent: said even with --quiet when something failed
  const summary = `${entries.length - failed.length} of ${entries.length} torrents complete, ${human(bytes)} in ${clock(seconds)} (${human(bytes / Math.max(0.001, seconds))}/s)`;
  if (failed.length > 0) report(o.io, 'download', `${summary}; ${failed.length} failed:`);
  else if (!o.quiet) report(o.io, 'download', summary);
  for (const e of failed) report(o.io, 'download', `${e.name}${e.infoHash ? ` (${e.infoHash.slice(0, 8)})` : ''}: ${e.error ?? 'interrupted'}`);
  if (o.io.signal.aborted && failed.length > 0) return 130;
  return failed.length === 0 ? 0 : 1;
}

async function runOne(req: DownloadRequest, entry: Entry, byHash: Map<string, Entry>, slots: ActiveLimit, o: ManyOptions): Promise<void> {
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
  if (byHash.has(hash)) {
    entry.error = `the same torrent as ${byHash.get(hash)!.where}`;
    return;
  }
  byHash.set(hash, entry);
  const release = await slots.acquire(o.io.signal);
  if (release === null) return;
  try {
    const dir = req.output ?? (o.flat ? o.out : join(o.out, hash));
    const job = new DownloadJob(src, dir, {
      ...o.job, session: o.session, signal: o.io.signal, ...(req.select ? { select: req.select } : {}),
      log: (line, level) => o.job.log?.(`${entry.name}: ${line}`, level),
    });
    entry.job = job;
    if (o.json) job.on('event', (ev) => o.io.stdout.write(JSON.stringify(ev) + '\n'));
    try {
      entry.result = await job.result;
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
  }
  o.progress.update({ done, total, bytes, left, peers, upRate, failed: o.failed() }, force);
}

/** At most `n` holders at once; the others wait in the order they asked. */
export class ActiveLimit {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(n: number) {
    this.free = n;
  }

  /** A release function once a place is free; null if `signal` aborts first. */
  acquire(signal: AbortSignal): Promise<(() => void) | null> {
    if (signal.aborted) return Promise.resolve(null);
    const release = (): void => {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(once(release));
    }
    return new Promise((resolve) => {
      const go = (): void => {
        signal.removeEventListener('abort', stop);
        resolve(once(release));
      };
      const stop = (): void => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(null);
      };
      this.waiting.push(go);
      signal.addEventListener('abort', stop, { once: true });
    });
  }
}

function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    f();
  };
}
