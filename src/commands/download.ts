import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import { type Command, type Io } from '../cli/io.js';
import { parsePeerArgs, resolvePeerArgs } from '../cli/peer-args.js';
import { Progress, progressMode } from '../cli/progress.js';
import { clock, human } from '../cli/units.js';
import { Reporter, VERBOSITY_HELP, verbosityOf } from '../cli/reporter.js';
import { resolveSelect } from '../cli/select.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import { DHT_BOOLEAN_OPTIONS, DHT_HELP, DHT_STRING_OPTIONS, startClientDht } from '../cli/dht-args.js';
import { TRANSPORT_BOOLEAN_OPTIONS, TRANSPORT_HELP, transportsOf } from '../cli/transport-args.js';
import { DownloadJob, type DownloadResult } from '../client/download.js';
import { UnsafePathError } from '../storage/safe-path.js';
import { SelectError } from '../metainfo/select.js';
import type { TorrentSource } from '../metainfo/source.js';
import { Session } from '../session/session.js';
import type { UtpStats } from '../utp/endpoint.js';
import type { DhtNode } from '../dht/node.js';
import { downloadMany, type DownloadRequest } from '../cli/download-many.js';
import { readTorrentList, TorrentListError } from '../cli/torrent-list.js';
import { describeSystemError } from '../cli/input.js';
import { open } from 'node:fs/promises';
import { addAbortSignal, type Readable } from 'node:stream';
import { serveArgv, startServing } from '../cli/serve.js';

export const download: Command = {
  name: 'download',
  synopsis: 'TORRENT|MAGNET... -o DIR [-i FILE|-] [--flat] [--max-active N] [--peer HOST:PORT]... [--tracker URL]... [--web-seed URL]... [--no-web-seeds] [--select FILE]... [--port N] [--max-peers N] [--max-connections N] [--max-open-files N] [--max-download-rate RATE] [--max-upload-rate RATE] [--max-memory BYTES] [--no-utp|--no-tcp] [--os-cache] [--seed [--seed-ratio R] [--seed-time S]] [--serve [PORT]] [--json] [--quiet|--progress]',
  help: `usage: torrent-tools download TORRENT|MAGNET -o DIR [options]
       torrent-tools download TORRENT|MAGNET... -o DIR [options]
       torrent-tools download -i FILE|- -o DIR [options]

The pipeline 'announce --watch | fetch-pieces | assemble' in one process, built from the very
same stages: it asks the trackers (and --peer) for peers, downloads and verifies pieces from
all of them, writes them under DIR, and meanwhile uploads the pieces it has to other peers
(BEP 3 choking: tit-for-tat plus an optimistic unchoke), listening on --port. Peers learnt by
PEX (BEP 11) and the DHT (BEP 5, announced with our port; not for private torrents) join in,
and peers that ask get the torrent's metadata (BEP 9).

A magnet URI (or a bare info hash) works in place of a .torrent: the metadata is fetched from
the peers first (the magnet's tr= trackers and x.pe= peers, --peer, --tracker) as
fetch-metadata does, and cached as DIR/.torrent-tools/HASH.torrent, so a resumed run needs no
metadata again. A magnet's so= selects files (BEP 53) unless --select is given.

Several torrents (arguments, or -i: one per line, read as they arrive, '-' for stdin) share
one process: one port (incoming peers are routed by info hash), one DHT node, one hashing
thread, --max-connections and --max-memory in all. At most --max-active download at once; the
rest wait their turn. Each goes into its own folder DIR/INFOHASH (the 40 hex digits: known
before a magnet's metadata, so a rerun resumes), or straight into DIR with --flat. A list line
is a path, a magnet or an info hash, or a JSON object: {"torrent": …, "output": DIR,
"select": [FILE…]}. One torrent failing does not stop the others.

It resumes by itself: what is already in DIR is verified first (all cores) and only the rest
is fetched. On a terminal, one progress line that fits its width (pieces and percent, the
rate over the last seconds, peers, upload, ETA) and a summary at the end; peers that fail are
counted there and printed only with -v. --json prints assemble's NDJSON events on stdout,
each with the torrent's "infoHash". Exit 0 once every wanted piece of every torrent is on
disk; 1 with a line per torrent that failed otherwise.

options:
  -o, --output DIR     where the files go
  -i, --input FILE     also download every torrent listed in FILE ('-': stdin), one per line
  --flat               several torrents: each into DIR itself, not DIR/INFOHASH
  --max-active N       several torrents: downloading at once at most (default 8)
  --peer HOST:PORT     also use this peer, for every torrent (repeatable)
  --tracker URL        also announce to this tracker (repeatable)
  --no-announce        use no tracker (only --peer)
  --web-seed URL       also fetch from this HTTP(S) mirror (BEP 19; repeatable); the torrent's
                       url-list (a magnet's ws=) is used too
  --no-web-seeds       use no web seed from the torrent (only --web-seed)
  --select FILE        only this file (repeatable; a path as 'info' shows it, or an index)
  --port N             listen for peers on N (default 6881; 0 = any)
  --max-peers N        connections per torrent at most (default 50)
  --max-connections N  connections at most, all torrents together (default 500)
  --max-open-files N   files open at most, all torrents together (default 512)
  --max-download-rate RATE  bytes/s received at most, all torrents together (500K, 4M;
                       default 0: unlimited); a list record's maxDownloadRate limits its
                       torrent within it
  --max-upload-rate RATE    bytes/s sent at most, all torrents together (likewise)
  --max-memory BYTES   pieces in flight at most, in bytes, all torrents together (default
                       16M for one torrent, 64M for several), as in fetch-pieces
${TRANSPORT_HELP}  --os-cache           write through the page cache (default: whole blocks go straight to the
                       disk with O_DIRECT where the file system allows it)
${DHT_HELP}  --seed               keep seeding after the download, with the same connections, until
                       SIGINT, --seed-ratio or --seed-time
  --seed-ratio R       stop seeding once uploaded/size reaches R (e.g. 1.5)
  --seed-time S        stop seeding after S seconds
  --serve [PORT]       one torrent: stream its files over HTTP on 127.0.0.1:PORT (default: a
                       free port; the URL is printed on stderr, and with --json as
                       {"event":"serving","url":…}) while downloading, until SIGINT. An
                       HTML index at /, each file at its path (percent-encoded); Range
                       requests (seeking) are answered as the pieces arrive, and the pieces
                       just ahead of each open response are fetched first. Files not
                       selected are 404; a multi-range request gets its first range
  --timeout S          give up when no piece arrives for S seconds (default 120)
  --json               print the NDJSON events (piece, complete, then sources: payload bytes
                       per peer and web seed, also when the download fails) on stdout
${VERBOSITY_HELP}  --progress           progress as NDJSON on stderr (numeric fields, the same keys every time)
  -h, --help           show this help

examples:
  torrent-tools download x.torrent -o out/
  torrent-tools download 'magnet:?xt=urn:btih:…&x.pe=127.0.0.1:6881' -o out/
  torrent-tools download x.torrent -o out/ --json | jq -c 'select(.event == "complete")'
  torrent-tools download x.torrent -o out/ --no-announce --web-seed https://mirror.example/pub/ --json | jq -c 'select(.event == "sources")'
  torrent-tools download x.torrent -o out/ --serve 8888 & mpv http://127.0.0.1:8888/movie.mkv
  ls *.torrent | torrent-tools download -i - -o out/ --json | jq -c 'select(.event == "complete")'
`,
  async run(argv, io) {
    const a = parseArgs(serveArgv(argv), {
      string: ['serve', 'output', 'input', 'peer', 'tracker', 'select', 'port', 'max-peers', 'max-connections', 'max-open-files', 'max-active', 'max-download-rate', 'max-upload-rate', 'max-memory', 'seed-ratio', 'seed-time', 'timeout', 'web-seed', ...DHT_STRING_OPTIONS],
      repeat: ['peer', 'tracker', 'select', 'web-seed'],
      boolean: ['seed', 'json', 'quiet', 'verbose', 'progress', 'strict', 'no-announce', 'no-web-seeds', 'os-cache', 'flat', ...DHT_BOOLEAN_OPTIONS, ...TRANSPORT_BOOLEAN_OPTIONS],
      alias: { o: 'output', v: 'verbose', q: 'quiet', i: 'input' },
    });
    const list = a.str('input');
    if (a.positional.length === 0 && list === undefined) throw new UsageError('expected a TORRENT, or -i FILE');
    const many = a.positional.length > 1 || list !== undefined;
    const out = a.str('output');
    if (out === undefined) throw new UsageError('-o DIR is required');
    const peerArgs = parsePeerArgs(a.list('peer'));
    const port = a.int('port', 0, 65535) ?? 6881;
    const maxPeers = a.int('max-peers', 1, 10_000) ?? 50;
    const maxConnections = a.int('max-connections', 1, 100_000) ?? 500;
    const maxActive = a.int('max-active', 1, 10_000) ?? 8;
    const maxMemory = a.size('max-memory', 1, Number.MAX_SAFE_INTEGER);
    const timeout = a.int('timeout', 0, 86_400) ?? 120;
    const ratioText = a.str('seed-ratio');
    if (ratioText !== undefined && !/^\d+(?:\.\d+)?$/.test(ratioText)) throw new UsageError('--seed-ratio: expected a number like 1.5');
    const seedTime = a.int('seed-time', 1, 365 * 86_400);
    const select = a.list('select');
    const servePort = a.has('serve') ? (a.str('serve') === '' ? 0 : a.int('serve', 0, 65535) ?? 0) : null;
    if (many && servePort !== null) throw new UsageError('--serve streams one torrent: give one TORRENT (not several, nor -i)');
    if (many && select.length > 0) throw new UsageError('--select names files of one torrent: give it in the list records ("select") with several');
    const load = (arg: string): Promise<TorrentSource> => loadTorrentArg(arg, io, 'download', { strict: a.bool('strict'), allowMagnet: true, allowInfoHash: true });
    const single = many ? null : await load(a.positional[0]!);
    const reporter = new Reporter(io, 'download', verbosityOf(a));
    const log = reporter.log;
    const trackers = a.list('tracker');
    const transports = transportsOf(a);
    const session = new Session({
      ...transports, maxConnections, maxOpenFiles: a.int('max-open-files', 8, 1_000_000) ?? 512, log,
      maxDownloadRate: a.rate('max-download-rate'), maxUploadRate: a.rate('max-upload-rate'),
    });
    let dht: DhtNode | null = null;
    try {
      try {
        await session.listen(port);
      } catch (e) {
        // uTP only: without the UDP port there is no way to reach anyone
        if (!transports.tcp) throw new CliError(`cannot bind UDP port ${port} for uTP (${(e as Error).message})`);
        log(`warning: cannot listen on port ${port} (${(e as Error).message}); downloading without incoming connections`);
        await session.dialOnly();
      }
      // on the session's UDP socket: DHT, trackers (and uTP) on the one port
      dht = await startClientDht(a, io, 'download', single?.torrent?.private ?? false, log, session.udp);
      session.useDht(dht);
      const peers = await resolvePeerArgs(peerArgs, io, 'download');
      const seed = a.bool('seed') ? { ratio: ratioText === undefined ? undefined : Number(ratioText), seconds: seedTime } : undefined;
      const progress = new Progress(io, progressMode(io, { quiet: a.bool('quiet'), progress: a.bool('progress') }), 'download');
      const common = {
        peers, trackers, announce: !a.bool('no-announce'), webSeeds: a.list('web-seed'), useUrlList: !a.bool('no-web-seeds'), maxPeers, osCache: a.bool('os-cache'), timeoutMs: timeout * 1000, log, seed,
      };
      if (single === null) {
        // memory and read-back caches are for all torrents together
        const active = Math.max(1, maxActive);
        return await downloadMany(requestsOf(a.positional, list, io, load), {
          io, session, out, flat: a.bool('flat'), maxActive, json: a.bool('json'), progress, failed: () => reporter.failed, quiet: a.bool('quiet'),
          job: { ...common, maxMemory: Math.floor((maxMemory ?? 64 * 1024 * 1024) / active), readCache: Math.max(1024 * 1024, Math.floor(32 * 1024 * 1024 / active)) },
        });
      }
      const tiers = (a.bool('no-announce') ? 0 : single.trackers.length) + trackers.length;
      // a magnet's ws= do not count: a web seed cannot give the metadata (BEP 19 serves files)
      const webSeeds = single.torrent ? a.list('web-seed').length + (a.bool('no-web-seeds') ? 0 : single.torrent.urlList.length) : 0;
      if (tiers === 0 && !dht && peers.length === 0 && webSeeds === 0 && (single.magnet?.peers.length ?? 0) === 0) {
        throw new UsageError('no way to find peers: no trackers, no web seeds and no DHT; give --peer, --tracker or --web-seed');
      }
      // --select names files; checked against the torrent once it is known (a usage error if unknown)
      if (single.torrent && select.length > 0) resolveSelect(single.torrent, select);
      const stream = servePort === null ? null : await startServing(servePort, single, io, a.bool('json'));
      try {
        const job = new DownloadJob(single, out, { ...common, session, maxMemory, signal: io.signal, ...(select.length > 0 ? { select } : {}), ...(stream ? { stream } : {}) });
        const code = await downloadOne(job, single, io, progress, reporter, () => new Progress(io, progressMode(io, { quiet: a.bool('quiet'), progress: a.bool('progress') }), 'seeding'), a.bool('json'), () => session.utpStats());
        await stream?.until(io.signal); // serving on after the download, until SIGINT
        return code;
      } finally {
        await stream?.close();
      }
    } finally {
      await session.close();
      // the DHT node's state is saved and its socket closed however the command ends
      await dht?.close();
    }
  },
};

/** The torrents of the arguments, then those of the -i list as its lines arrive. */
async function* requestsOf(args: readonly string[], list: string | undefined, io: Io, load: (arg: string) => Promise<TorrentSource>): AsyncIterable<DownloadRequest> {
  let n = 0;
  for (const arg of args) yield { where: `argument ${++n}`, load: () => load(arg) };
  if (list === undefined) return;
  const name = list === '-' ? 'stdin' : list;
  let input: Readable;
  if (list === '-') input = io.stdin as Readable;
  else {
    const fh = await open(list).catch((e: unknown) => {
      throw new CliError(describeSystemError(e, list) ?? `${list}: ${(e as Error).message}`);
    });
    input = fh.createReadStream();
  }
  // SIGINT while the list waits for its next line (an idle pipe) must end the wait
  addAbortSignal(io.signal, input);
  for await (const item of readTorrentList(input, name)) {
    if (item instanceof TorrentListError) {
      const reason = item.reason;
      yield { where: item.where, load: () => Promise.reject(new CliError(reason)) };
      continue;
    }
    yield {
      where: item.where, load: () => load(item.input), output: item.output, ...(item.select ? { select: item.select } : {}),
      maxDownloadRate: item.maxDownloadRate, maxUploadRate: item.maxUploadRate,
    };
  }
}

/** One torrent: its progress line, its summary, and seeding after it with --seed. */
async function downloadOne(job: DownloadJob, src: TorrentSource, io: Io, progress: Progress, reporter: Reporter, seedingProgress: () => Progress, json: boolean, utp: () => UtpStats | null): Promise<number> {
  if (json) job.on('event', (ev) => io.stdout.write(JSON.stringify(ev) + '\n'));
  const draw = (force = false): void => {
    const s = job.stats();
    const pl = s.pieceLength;
    if (s.phase === 'checking') {
      progress.phase('checking');
      progress.update({ done: s.done, total: s.total, bytes: s.done * pl, left: (s.total - s.done) * pl, failed: reporter.failed }, force);
    } else if (s.phase === 'downloading' || s.phase === 'done' || s.phase === 'seeding') {
      progress.phase('download');
      // the whole torrent's pieces: those valid before the run count as done
      progress.update({
        done: s.valid + s.done, total: s.valid + s.total, bytes: s.bytes, left: Math.max(0, (s.total - s.done) * pl),
        peers: s.swarm?.peers ?? 0, upRate: s.uploadRate, failed: reporter.failed,
      }, force);
    }
  };
  const bar = setInterval(draw, 250);
  let result: DownloadResult;
  try {
    result = await job;
  } catch (e) {
    clearInterval(bar);
    draw(true);
    progress.finish();
    if (e instanceof UnsafePathError) throw new CliError(`${src.name}: ${e.message}`);
    if (e instanceof SelectError) throw new UsageError(`--select: ${e.message}`);
    throw e;
  } finally {
    clearInterval(bar);
  }
  draw(true);
  progress.finish(summary(result, reporter.failed, reporter.verbosity === 'verbose' ? utp() : null));
  if (job.stats().phase !== 'seeding') return 0;
  // seeding on, with the download's connections, until SIGINT, the ratio or the time
  const t = result.torrent;
  const seeding = seedingProgress();
  const started = Date.now();
  const status = (force = false): void => {
    const s = job.stats();
    seeding.update({ done: t.pieceCount, total: t.pieceCount, bytes: 0, peers: s.swarm?.peers ?? 0, upRate: s.uploadRate, uploaded: s.uploaded, ratio: s.uploaded / t.length }, force);
  };
  const timer = setInterval(status, 500);
  try {
    await job.closed;
  } finally {
    clearInterval(timer);
    status(true);
    const up = job.stats().uploaded;
    seeding.finish(`${t.name}: seeded ${clock((Date.now() - started) / 1000)}, uploaded ${human(up)} in all (ratio ${(up / t.length).toFixed(2)})`);
  }
  return 0;
}

/** The closing line, short enough for a narrow terminal: what came, how fast, from how many. */
function summary(r: DownloadResult, failed: number, utp: UtpStats | null): string {
  const rate = r.seconds > 0 ? r.bytes / r.seconds : 0;
  const parts = [`${r.torrent.name}: ${human(r.bytes)} in ${clock(r.seconds)}`, `${human(rate)}/s`, `${r.peersUsed} peer${r.peersUsed === 1 ? '' : 's'}`];
  if (r.resumed > 0) parts.push(`${r.resumed} pieces kept`);
  if (r.uploaded > 0) parts.push(`up ${human(r.uploaded)}`);
  if (failed > 0) parts.push(`${failed} failed`);
  // -v: how the uTP side went (a lossy path shows as resent packets)
  if (utp !== null && utp.packetsSent > 0) parts.push(`uTP ${utp.packetsReceived} packets in, ${utp.packetsSent} out, ${utp.retransmitted} resent`);
  return parts.join(', ');
}
