import { createWriteStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { contentDir } from '../cli/content-dir.js';
import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import { printLine, report, type Command, type Io } from '../cli/io.js';
import { Reporter, verbosityOf } from '../cli/reporter.js';
import { Progress, progressMode } from '../cli/progress.js';
import { clock, human } from '../cli/units.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import { FileStore } from '../storage/file-store.js';
import { UnsafePathError } from '../storage/safe-path.js';
import { verifyPieces } from '../storage/verify.js';
import { Bitfield } from '../swarm/bitfield.js';
import { Swarm } from '../swarm/swarm.js';
import { Session } from '../session/session.js';
import type { Torrent } from '../metainfo/torrent.js';
import type { OpenFiles } from '../storage/open-files.js';
import type { Fault } from '../swarm/uploader.js';
import { AnnounceLoop } from '../tracker/loop.js';

/** TORRENT_TOOLS_FAULT (test-only): corrupt | stall:N | disconnect:N — real bad bytes on a real socket. */
function faultFromEnv(v: string | undefined): Fault | undefined {
  if (!v) return undefined;
  const [kind, n] = v.split(':');
  if (kind === 'corrupt') return { corrupt: true };
  if (kind === 'stall') return { stallAfter: Number(n ?? 0) };
  if (kind === 'disconnect') return { disconnectAfter: Number(n ?? 1) };
  throw new UsageError(`TORRENT_TOOLS_FAULT: unknown fault ${JSON.stringify(v)}`);
}

export const seed: Command = {
  name: 'seed',
  synopsis: 'TORRENT... [DIR] | FOLDER... [--port N] [--host ADDR] [--skip-verify] [--tracker URL]... [--no-announce] [--max-peers N] [--max-connections N] [--max-open-files N] [--max-upload-rate RATE] [--slots N] [--stats FILE] [--quiet|--progress]',
  help: `usage: torrent-tools seed TORRENT [DIR] [options]
       torrent-tools seed TORRENT... DIR [options]
       torrent-tools seed FOLDER... [options]

Serves one torrent or many from one process and one port. DIR is the folder that holds each
torrent's content (DIR/NAME), or the content itself when DIR/NAME does not exist and DIR's
last component is NAME; without DIR, the folder the .torrent file is in. A FOLDER argument
means every *.torrent in it, each with its content beside it (FOLDER/NAME).

Checks each torrent's files (or trusts them with --skip-verify), listens for peers on --port
(TCP, IPv6 and IPv4; incoming handshakes are routed by info hash, plaintext or MSE), announces
each torrent to its trackers (and --tracker) at their interval, and serves the pieces it has,
read from disk: BEP 3 choking per torrent (the interested peers that take the most get the
upload slots every 10 s, plus one optimistic unchoke rotating every 30 s; a free slot goes at
once to a peer that becomes interested; a peer that takes nothing of what it is sent loses its
slot in 2 s), BEP 6 (have all, reject, allowed fast), at most --max-peers connections per
torrent (when full, an idle or non-reading one makes room for a newcomer) and
--max-connections in all, bounded memory whatever the number of peers and torrents. A torrent
that cannot be served (unreadable, no valid piece) is reported and the others are served.

stdout gets NDJSON events: {"event":"listening","port":P,"torrents":N} once every torrent is
ready (with "infoHash" and "pieces" when there is one), a {"event":"serving",…} line per
torrent, then {"event":"stats",…} every --stats-interval seconds (with a "torrents" list of
per-torrent figures when there are several). Runs until SIGINT/SIGTERM, then tells the
trackers 'stopped' and exits 0, or 1 when a torrent could not be served.

options:
  --port N          TCP port to listen on (default 6881; 0 = any free port)
  --host ADDR       address to listen on (default: all)
  --skip-verify     do not hash the files first; serve every piece
  --max-peers N     connections per torrent at most (default 100)
  --max-connections N  connections at most, all torrents together (default 500)
  --max-open-files N  files open at most, all torrents together (default 512)
  --max-upload-rate RATE  bytes/s sent at most, all torrents together (500K, 4M; default 0:
                    unlimited)
  --slots N         regular upload slots per torrent (default 4)
  --stats FILE      also append the stats records to FILE
  --stats-interval S  seconds between stats records (default 10)
  --tracker URL     also announce to this tracker (repeatable)
  --no-announce     do not announce to any tracker
  -v, --verbose     print every peer failure (dropped, not reading) with its reason
  -q, --quiet       no status line; print errors only
  --progress        progress as NDJSON on stderr (numeric fields, the same keys every time)
  --strict          refuse a torrent file with non-canonical bencode, names that
                    need mapping to safe ones, or pieces over 128 MiB
  -h, --help        show this help

examples:
  torrent-tools seed x.torrent data/ --port 6881 | jq -c 'select(.event == "stats")'
  torrent-tools seed library/ --port 6881 | jq -c 'select(.event == "serving") | .name'
`,
  async run(argv, io) {
    const a = parseArgs(argv, {
      string: ['port', 'host', 'max-peers', 'max-connections', 'max-open-files', 'max-upload-rate', 'slots', 'stats', 'stats-interval', 'tracker'],
      repeat: ['tracker'],
      boolean: ['skip-verify', 'quiet', 'verbose', 'progress', 'strict', 'no-announce'],
      alias: { v: 'verbose', q: 'quiet' },
    });
    if (a.positional.length === 0) throw new UsageError('expected TORRENT [DIR], or FOLDER');
    const port = a.int('port', 0, 65535) ?? 6881;
    const maxPeers = a.int('max-peers', 1, 10_000) ?? 100;
    const maxConnections = a.int('max-connections', 1, 100_000) ?? 500;
    const slots = a.int('slots', 1, 100) ?? 4;
    const interval = a.int('stats-interval', 1, 3600) ?? 10;
    const fault = faultFromEnv(io.env['TORRENT_TOOLS_FAULT']);
    const jobs = await seedJobs(a.positional);
    const reporter = new Reporter(io, 'seed', verbosityOf(a));
    const progress = new Progress(io, progressMode(io, { quiet: a.bool('quiet'), progress: a.bool('progress') }), 'seed');
    const session = new Session({ maxConnections, maxOpenFiles: a.int('max-open-files', 8, 1_000_000) ?? 512, maxUploadRate: a.rate('max-upload-rate'), log: reporter.log });
    const served: Served[] = [];
    const refused: string[] = [];
    // read-back caches share one budget: a hundred torrents must not each hold 8 MiB
    const readCacheBytes = Math.max(1024 * 1024, Math.min(8 * 1024 * 1024, Math.floor(64 * 1024 * 1024 / jobs.length)));
    const single = jobs.length === 1;
    try {
      for (const job of jobs) {
        try {
          const s = await openServed(job, { io, skipVerify: a.bool('skip-verify'), strict: a.bool('strict'), progress, single, openFiles: session.openFiles });
          const twin = served.find((x) => x.torrent.infoHash.equals(s.torrent.infoHash));
          if (twin) {
            report(io, 'seed', `note: ${job.torrent}: the same torrent as ${twin.path}: served once`);
            await s.store.close();
          } else served.push(s);
        } catch (e) {
          if (single || !(e instanceof CliError || e instanceof UsageError)) throw e;
          refused.push(e.message);
          report(io, 'seed', `${e.message}: not served`);
        }
      }
      if (served.length === 0) throw new CliError(`none of the ${jobs.length} torrents can be served`);
      let bound: number;
      try {
        bound = await session.listen(port, a.str('host'));
      } catch (e) {
        throw new CliError(`listen on port ${port}: ${(e as Error).message}`);
      }
      for (const s of served) {
        s.swarm = new Swarm({ ...session.swarmOptions(), torrent: s.torrent, serve: s.store, have: s.have.indexes(), wanted: [], maxPeers, slots, fault, readCacheBytes, pex: true });
        s.swarm.on('log', reporter.log);
        session.host(s.swarm);
      }
      const first = served[0]!;
      printLine(io, JSON.stringify({ event: 'listening', port: bound, torrents: served.length, ...(served.length === 1 ? { infoHash: first.torrent.infoHashHex, pieces: first.have.size } : {}) }));
      for (const s of served) printLine(io, JSON.stringify({ event: 'serving', infoHash: s.torrent.infoHashHex, name: s.torrent.name, pieces: s.have.size, of: s.torrent.pieceCount }));
      for (const s of served) {
        const t = s.torrent;
        const tiers = a.bool('no-announce') ? [] : [...t.announce.map((x) => [...x]), ...a.list('tracker').map((u) => [u])];
        s.loop = tiers.length > 0
          ? new AnnounceLoop({
              tiers, infoHash: t.infoHash, peerId: session.peerId, port: bound,
              stats: () => ({ uploaded: s.swarm?.uploaded ?? 0, downloaded: 0, left: (t.pieceCount - s.have.size) * t.pieceLength }),
              onFailure: (f) => reporter.log(`${served.length > 1 ? `${t.name}: ` : ''}${f.tracker}: ${f.message}`),
              onWarning: (tracker, w) => reporter.log(`${tracker}: warning: ${w}`),
            })
          : null;
        s.loop?.start();
      }
      await serveUntilStopped(served, { io, interval, statsFile: a.str('stats'), progress, failed: () => reporter.failed });
    } finally {
      await Promise.all(served.map((s) => s.loop?.stop()));
      for (const s of served) s.swarm?.destroy();
      await session.close();
      await Promise.all(served.map((s) => s.store.close()));
    }
    for (const r of refused) report(io, 'seed', `not served: ${r}`);
    return refused.length > 0 ? 1 : 0;
  },
};

/** One torrent to serve, and where its content is. */
interface SeedJob {
  torrent: string;
  dir: string;
}

/**
 * The arguments as torrents and their folders: TORRENT [DIR], TORRENT... DIR, FOLDER... (every
 * .torrent in it, its content beside it).
 */
async function seedJobs(args: readonly string[]): Promise<SeedJob[]> {
  const kinds = await Promise.all(args.map((p) => stat(p).then((st) => (st.isDirectory() ? 'dir' : 'file'), () => 'missing' as const)));
  const last = args.length - 1;
  // a DIR that does not exist (a typo) is not one more torrent: nothing would be served from it
  if (last > 0 && kinds[last] === 'missing' && !args[last]!.endsWith('.torrent')) throw new CliError(`${args[last]}: no such directory`);
  const hasFile = kinds.some((k) => k !== 'dir');
  // the last folder after torrent files holds their content (the seed TORRENT DIR of old)
  const dataDir = hasFile && last > 0 && kinds[last] === 'dir' ? args[last]! : null;
  const jobs: SeedJob[] = [];
  for (let i = 0; i < args.length; i++) {
    if (dataDir !== null && i === last) break;
    const p = args[i]!;
    if (kinds[i] === 'dir') {
      const names = (await readdir(p)).filter((n) => n.endsWith('.torrent')).sort();
      if (names.length === 0) throw new UsageError(`${p}: no .torrent file in this folder`);
      for (const n of names) jobs.push({ torrent: join(p, n), dir: p });
    } else {
      jobs.push({ torrent: p, dir: dataDir ?? dirname(p) });
    }
  }
  return jobs;
}

interface Served {
  /** the .torrent it came from */
  path: string;
  torrent: Torrent;
  store: FileStore;
  have: Bitfield;
  swarm: Swarm | null;
  loop: AnnounceLoop | null;
}

/** Loads, locates and checks one torrent's content; a CliError says why it cannot be served. */
async function openServed(job: SeedJob, o: { io: Io; skipVerify: boolean; strict: boolean; progress: Progress; single: boolean; openFiles: OpenFiles }): Promise<Served> {
  const src = await loadTorrentArg(job.torrent, o.io, 'seed', { strict: o.strict }).catch((e: unknown) => {
    // a magnet among the arguments: say which
    throw e instanceof UsageError ? new UsageError(`${job.torrent}: ${e.message}`) : e;
  });
  const t = src.torrent;
  if (!t) throw new UsageError(`${job.torrent}: seed needs a .torrent file`);
  const { root: dir, expected } = await contentDir(t, job.dir);
  let store: FileStore;
  try {
    store = await FileStore.open(t, dir, { mode: 'read', maxOpen: 64, openFiles: o.openFiles });
  } catch (e) {
    if (e instanceof UnsafePathError) throw new CliError(`${src.name}: ${e.message}`);
    throw e;
  }
  const have = new Bitfield(t.pieceCount);
  if (o.skipVerify) {
    have.setAll();
    return { path: job.torrent, torrent: t, store, have, swarm: null, loop: null };
  }
  let n = 0;
  o.progress.phase('checking');
  for await (const [i, ok] of verifyPieces(t, dir, { signal: o.io.signal })) {
    if (ok) have.set(i);
    o.progress.update({ done: ++n, total: t.pieceCount, bytes: n * t.pieceLength, left: (t.pieceCount - n) * t.pieceLength });
  }
  if (o.single) o.progress.finish(`${src.name}: ${have.size} of ${t.pieceCount} pieces valid in ${dir}`);
  if (have.size === 0) {
    await store.close();
    throw new CliError(`${expected}: no valid piece of ${src.name} found there: nothing to seed (DIR is the folder that holds ${t.name}, or ${t.name} itself)`);
  }
  if (!have.complete) report(o.io, 'seed', `warning: ${expected}: ${t.pieceCount - have.size} of ${t.pieceCount} pieces are missing or invalid; serving the other ${have.size}`);
  return { path: job.torrent, torrent: t, store, have, swarm: null, loop: null };
}

/** Stats records and the status line until SIGINT/SIGTERM. */
async function serveUntilStopped(served: Served[], o: { io: Io; interval: number; statsFile: string | undefined; progress: Progress; failed: () => number }): Promise<void> {
  const { io, progress } = o;
  const statsFile = o.statsFile !== undefined ? createWriteStream(o.statsFile, { flags: 'a' }) : null;
  const started = Date.now();
  const sum = (f: (s: Swarm) => number): number => served.reduce((n, s) => n + (s.swarm ? f(s.swarm) : 0), 0);
  const size = served.reduce((n, s) => n + s.torrent.length, 0);
  const stats = (): string => {
    const rec: Record<string, unknown> = {
      event: 'stats', seconds: Math.round((Date.now() - started) / 1000), peers: sum((s) => s.connections), uploaded: sum((s) => s.uploaded), uploadRate: Math.round(sum((s) => s.uploadRate())),
    };
    if (served.length > 1) {
      rec['torrents'] = served.map((s) => ({ infoHash: s.torrent.infoHashHex, peers: s.swarm?.connections ?? 0, uploaded: s.swarm?.uploaded ?? 0 }));
    }
    return JSON.stringify(rec) + '\n';
  };
  const statTimer = setInterval(() => {
    const line = stats();
    printLine(io, line);
    statsFile?.write(line);
  }, o.interval * 1000);
  progress.phase('seeding');
  const pieces = served.reduce((n, s) => n + s.have.size, 0);
  const total = served.reduce((n, s) => n + s.torrent.pieceCount, 0);
  const status = (force = false): void => {
    const up = sum((s) => s.uploaded);
    progress.update({ done: pieces, total, bytes: 0, peers: sum((s) => s.connections), upRate: sum((s) => s.uploadRate()), uploaded: up, ratio: up / size, failed: o.failed() }, force);
  };
  const barTimer = setInterval(status, 500);
  await new Promise<void>((resolve) => {
    if (io.signal.aborted) resolve();
    io.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(statTimer);
  clearInterval(barTimer);
  status(true);
  const up = sum((s) => s.uploaded);
  const what = served.length === 1 ? served[0]!.torrent.name : `${served.length} torrents`;
  progress.finish(`${what}: seeded ${clock((Date.now() - started) / 1000)}, uploaded ${human(up)} (ratio ${(up / size).toFixed(2)})`);
  const last = stats();
  io.stdout.write(last);
  statsFile?.end(last);
}
