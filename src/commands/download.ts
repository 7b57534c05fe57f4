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
import { DownloadJob, type DownloadResult } from '../client/download.js';
import type { Torrent } from '../metainfo/torrent.js';
import { FileStore } from '../storage/file-store.js';
import { UnsafePathError } from '../storage/safe-path.js';
import { verifyPieces } from '../storage/verify.js';
import { Bitfield } from '../swarm/bitfield.js';
import { Seeder } from '../swarm/seeder.js';
import { AnnounceLoop } from '../tracker/loop.js';
import { SelectError } from '../metainfo/select.js';
import type { DhtNode } from '../dht/node.js';

export const download: Command = {
  name: 'download',
  synopsis: 'TORRENT|MAGNET -o DIR [--peer HOST:PORT]... [--tracker URL]... [--select FILE]... [--port N] [--max-peers N] [--max-memory BYTES] [--os-cache] [--seed [--seed-ratio R] [--seed-time S]] [--json] [--quiet|--progress]',
  help: `usage: torrent-tools download TORRENT|MAGNET -o DIR [options]

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

It resumes by itself: what is already in DIR is verified first (all cores) and only the rest
is fetched. On a terminal, one progress line that fits its width (the whole torrent's pieces
and percent, the rate over the last seconds, peers, upload, ETA) and a summary at the end;
peers that fail are counted there and printed only with -v. --json prints assemble's NDJSON
events on stdout. Exit 0 once every wanted piece is on disk.

options:
  -o, --output DIR     where the files go
  --peer HOST:PORT     also use this peer (repeatable)
  --tracker URL        also announce to this tracker (repeatable)
  --no-announce        use no tracker (only --peer)
  --select FILE        only this file (repeatable; a path as 'info' shows it, or an index)
  --port N             listen for peers on N (default 6881; 0 = any)
  --max-peers N        connections at most (default 50)
  --max-memory BYTES   pieces in flight at most, in bytes (default 16M; 64M accepted), as in
                       fetch-pieces
  --os-cache           write through the page cache (default: whole blocks go straight to the
                       disk with O_DIRECT where the file system allows it)
${DHT_HELP}  --seed               keep seeding after the download, until SIGINT, --seed-ratio or --seed-time
  --seed-ratio R       stop seeding once uploaded/size reaches R (e.g. 1.5)
  --seed-time S        stop seeding after S seconds
  --timeout S          give up when no piece arrives for S seconds (default 120)
  --json               print the NDJSON events (piece, complete) on stdout
${VERBOSITY_HELP}  --progress           progress as NDJSON on stderr (numeric fields, the same keys every time)
  -h, --help           show this help

examples:
  torrent-tools download x.torrent -o out/
  torrent-tools download 'magnet:?xt=urn:btih:…&x.pe=127.0.0.1:6881' -o out/
  torrent-tools download x.torrent -o out/ --json | jq -c 'select(.event == "complete")'
`,
  async run(argv, io) {
    const a = parseArgs(argv, {
      string: ['output', 'peer', 'tracker', 'select', 'port', 'max-peers', 'max-memory', 'seed-ratio', 'seed-time', 'timeout', ...DHT_STRING_OPTIONS],
      repeat: ['peer', 'tracker', 'select'],
      boolean: ['seed', 'json', 'quiet', 'verbose', 'progress', 'strict', 'no-announce', 'os-cache', ...DHT_BOOLEAN_OPTIONS],
      alias: { o: 'output', v: 'verbose', q: 'quiet' },
    });
    if (a.positional.length !== 1) throw new UsageError('expected one TORRENT');
    const out = a.str('output');
    if (out === undefined) throw new UsageError('-o DIR is required');
    const peerArgs = parsePeerArgs(a.list('peer'));
    const port = a.int('port', 0, 65535) ?? 6881;
    const maxPeers = a.int('max-peers', 1, 10_000) ?? 50;
    const maxMemory = a.size('max-memory', 1, Number.MAX_SAFE_INTEGER);
    const timeout = a.int('timeout', 0, 86_400) ?? 120;
    const ratioText = a.str('seed-ratio');
    if (ratioText !== undefined && !/^\d+(?:\.\d+)?$/.test(ratioText)) throw new UsageError('--seed-ratio: expected a number like 1.5');
    const seedTime = a.int('seed-time', 1, 365 * 86_400);
    const src = await loadTorrentArg(a.positional[0]!, io, 'download', { strict: a.bool('strict'), allowMagnet: true, allowInfoHash: true });
    const reporter = new Reporter(io, 'download', verbosityOf(a));
    const log = reporter.log;
    const trackers = a.list('tracker');
    const dht = await startClientDht(a, io, 'download', src.torrent?.private ?? false, log);
    try {
      return await downloadWith(dht);
    } finally {
      // the DHT node's state is saved and its socket closed however the command ends
      await dht?.close();
    }

    async function downloadWith(dht: DhtNode | null): Promise<number> {
      const peers = await resolvePeerArgs(peerArgs, io, 'download');
      const tiers = (a.bool('no-announce') ? 0 : src.trackers.length) + trackers.length;
      if (tiers === 0 && !dht && peers.length === 0 && (src.magnet?.peers.length ?? 0) === 0) {
        throw new UsageError('no way to find peers: no trackers and no DHT; give --peer or --tracker');
      }
      // --select names files; checked against the torrent once it is known (a usage error if unknown)
      const select = a.list('select');
      if (src.torrent && select.length > 0) resolveSelect(src.torrent, select);
      const job = new DownloadJob(src, out!, {
        peers, trackers, announce: !a.bool('no-announce'), dht, port, maxPeers, maxMemory, osCache: a.bool('os-cache'),
        timeoutMs: timeout * 1000, signal: io.signal, log, ...(select.length > 0 ? { select } : {}),
      });
      if (a.bool('json')) job.on('event', (ev) => io.stdout.write(JSON.stringify(ev) + '\n'));
      const progress = new Progress(io, progressMode(io, { quiet: a.bool('quiet'), progress: a.bool('progress') }), 'download');
      const draw = (force = false): void => {
        const s = job.stats();
        const pl = s.pieceLength;
        if (s.phase === 'checking') {
          progress.phase('checking');
          progress.update({ done: s.done, total: s.total, bytes: s.done * pl, left: (s.total - s.done) * pl, failed: reporter.failed }, force);
        } else if (s.phase === 'downloading' || s.phase === 'done') {
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
      }
      clearInterval(bar);
      draw(true);
      progress.finish(summary(result, reporter.failed));
      if (!a.bool('seed')) return 0;
      // seeding afterwards: the same port, a seeder over what is now on disk
      const t = result.torrent;
      return seedAfter(t, out!, result, io, {
        ratio: ratioText === undefined ? Infinity : Number(ratioText), seedTime, trackers: a.bool('no-announce') ? trackers.map((u) => [u]) : [...t.announce.map((x) => [...x]), ...trackers.map((u) => [u])],
        log, progress: new Progress(io, progressMode(io, { quiet: a.bool('quiet'), progress: a.bool('progress') }), 'seeding'),
      });
    }
  },
};

/** `--seed`: serve what is on disk until SIGINT, the ratio or the time; announced as a seed. */
async function seedAfter(t: Torrent, dir: string, done: DownloadResult, io: Io, o: { ratio: number; seedTime: number | undefined; trackers: string[][]; log: Reporter['log']; progress: Progress }): Promise<number> {
  const store = await FileStore.open(t, dir, { mode: 'read', maxOpen: 64 });
  const onDisk = new Bitfield(t.pieceCount);
  for await (const [i, ok] of verifyPieces(t, dir)) if (ok) onDisk.set(i);
  const seeder = new Seeder({ torrent: t, store, have: onDisk, peerId: done.peerId });
  seeder.on('log', o.log);
  const port = await seeder.listen(done.port ?? 0).catch(() => seeder.listen(0));
  const loop = o.trackers.length > 0
    ? new AnnounceLoop({
        tiers: o.trackers, infoHash: t.infoHash, peerId: done.peerId, port,
        stats: () => ({ uploaded: done.uploaded + seeder.uploaded, downloaded: t.length, left: 0 }),
        onFailure: (f) => o.log(`${f.tracker}: ${f.message}`, 'notice'),
      })
    : null;
  loop?.start();
  const started = Date.now();
  const status = (force = false): void => {
    const up = done.uploaded + seeder.uploaded;
    o.progress.update({ done: onDisk.size, total: t.pieceCount, bytes: 0, peers: seeder.peers, upRate: seeder.uploadRate(), uploaded: up, ratio: up / t.length }, force);
  };
  try {
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        status();
        const up = done.uploaded + seeder.uploaded;
        if (up / t.length >= o.ratio || (o.seedTime !== undefined && Date.now() - started >= o.seedTime * 1000)) finish();
      }, 500);
      function finish(): void {
        clearInterval(check);
        resolve();
      }
      if (io.signal.aborted) finish();
      io.signal.addEventListener('abort', finish, { once: true });
    });
  } finally {
    status(true);
    const up = done.uploaded + seeder.uploaded;
    o.progress.finish(`${t.name}: seeded ${clock((Date.now() - started) / 1000)}, uploaded ${human(up)} in all (ratio ${(up / t.length).toFixed(2)})`);
    await loop?.stop();
    await seeder.close();
    await store.close();
  }
  return 0;
}

/** The closing line, short enough for a narrow terminal: what came, how fast, from how many. */
function summary(r: DownloadResult, failed: number): string {
  const rate = r.seconds > 0 ? r.bytes / r.seconds : 0;
  const parts = [`${r.torrent.name}: ${human(r.bytes)} in ${clock(r.seconds)}`, `${human(rate)}/s`, `${r.peersUsed} peer${r.peersUsed === 1 ? '' : 's'}`];
  if (r.resumed > 0) parts.push(`${r.resumed} pieces kept`);
  if (r.uploaded > 0) parts.push(`up ${human(r.uploaded)}`);
  if (failed > 0) parts.push(`${failed} failed`);
  return parts.join(', ');
}
