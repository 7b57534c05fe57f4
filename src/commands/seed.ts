import { createWriteStream } from 'node:fs';
import { contentDir } from '../cli/content-dir.js';
import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import { printLine, report, type Command } from '../cli/io.js';
import { Reporter, verbosityOf } from '../cli/reporter.js';
import { Progress, progressMode } from '../cli/progress.js';
import { clock, human } from '../cli/units.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import { FileStore } from '../storage/file-store.js';
import { UnsafePathError } from '../storage/safe-path.js';
import { verifyPieces } from '../storage/verify.js';
import { Bitfield } from '../swarm/bitfield.js';
import { Seeder } from '../swarm/seeder.js';
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
  synopsis: 'TORRENT DIR [--port N] [--host ADDR] [--skip-verify] [--tracker URL]... [--no-announce] [--max-peers N] [--slots N] [--stats FILE] [--quiet|--progress]',
  help: `usage: torrent-tools seed TORRENT DIR [options]

Checks the torrent's files under DIR (or trusts them with --skip-verify), listens for peers
on --port (TCP, IPv6 and IPv4), announces to the torrent's trackers (and --tracker) at their
interval, and serves the pieces it has, read from disk: BEP 3 choking
(the interested peers that take the most get the upload slots every 10 s, plus one
optimistic unchoke rotating every 30 s; a free slot goes at once to a peer that becomes
interested; a peer that takes nothing of what it is sent loses its slot in 2 s), BEP 6
(have all, reject, allowed fast), at most --max-peers connections (when full, an idle or
non-reading one makes room for a newcomer), bounded memory whatever the number of peers.
Peers may connect with the plaintext handshake or the MSE encrypted one (libtorrent and
qBittorrent try it first). DIR is the folder that holds the torrent's content (DIR/NAME), or
the content itself when DIR/NAME does not exist and DIR's last component is NAME.

stdout gets NDJSON events: {"event":"listening","port":P} once ready, then
{"event":"stats",…} every --stats-interval seconds. Runs until SIGINT/SIGTERM, then tells the
trackers 'stopped' and exits 0.

options:
  --port N          TCP port to listen on (default 6881; 0 = any free port)
  --host ADDR       address to listen on (default: all)
  --skip-verify     do not hash the files first; serve every piece
  --max-peers N     connections at most (default 100)
  --slots N         regular upload slots (default 4)
  --stats FILE      also append the stats records to FILE
  --stats-interval S  seconds between stats records (default 10)
  --tracker URL     also announce to this tracker (repeatable)
  --no-announce     do not announce to any tracker
  -v, --verbose     print every peer failure (dropped, not reading) with its reason
  -q, --quiet       no status line; print errors only
  --progress        progress as NDJSON on stderr (numeric fields, the same keys every time)
  --strict          refuse a torrent file with non-canonical bencode
  -h, --help        show this help

example:
  torrent-tools seed x.torrent data/ --port 6881 | jq -c 'select(.event == "stats")'
`,
  async run(argv, io) {
    const a = parseArgs(argv, {
      string: ['port', 'host', 'max-peers', 'slots', 'stats', 'stats-interval', 'tracker'],
      repeat: ['tracker'],
      boolean: ['skip-verify', 'quiet', 'verbose', 'progress', 'strict', 'no-announce'],
      alias: { v: 'verbose', q: 'quiet' },
    });
    if (a.positional.length !== 2) throw new UsageError('expected TORRENT and DIR');
    const port = a.int('port', 0, 65535) ?? 6881;
    const maxPeers = a.int('max-peers', 1, 10_000) ?? 100;
    const slots = a.int('slots', 1, 100) ?? 4;
    const interval = a.int('stats-interval', 1, 3600) ?? 10;
    const fault = faultFromEnv(io.env['TORRENT_TOOLS_FAULT']);
    const src = await loadTorrentArg(a.positional[0]!, io, 'seed', { strict: a.bool('strict') });
    const t = src.torrent;
    if (!t) throw new UsageError('seed needs a .torrent file');
    const { root: dir, expected } = await contentDir(t, a.positional[1]!);
    let store: FileStore;
    try {
      store = await FileStore.open(t, dir, { mode: 'read', maxOpen: 64 });
    } catch (e) {
      if (e instanceof UnsafePathError) throw new CliError(`${src.name}: ${e.message}`);
      throw e;
    }
    const have = new Bitfield(t.pieceCount);
    const progress = new Progress(io, progressMode(io, { quiet: a.bool('quiet'), progress: a.bool('progress') }), 'seed');
    if (a.bool('skip-verify')) have.setAll();
    else {
      let n = 0;
      for await (const [i, ok] of verifyPieces(t, dir, { signal: io.signal })) {
        if (ok) have.set(i);
        progress.update({ done: ++n, total: t.pieceCount, bytes: n * t.pieceLength, left: (t.pieceCount - n) * t.pieceLength });
      }
      progress.finish(`${src.name}: ${have.size} of ${t.pieceCount} pieces valid in ${dir}`);
      if (have.size === 0) throw new CliError(`${expected}: no valid piece of ${src.name} found there: nothing to seed (DIR is the folder that holds ${t.name}, or ${t.name} itself)`);
      if (!have.complete) report(io, 'seed', `warning: ${expected}: ${t.pieceCount - have.size} of ${t.pieceCount} pieces are missing or invalid; serving the other ${have.size}`);
    }
    const seeder = new Seeder({ torrent: t, store, have, maxPeers, slots, fault });
    const reporter = new Reporter(io, 'seed', verbosityOf(a));
    seeder.on('log', reporter.log);
    let bound: number;
    try {
      bound = await seeder.listen(port, a.str('host'));
    } catch (e) {
      await store.close();
      throw new CliError(`listen on port ${port}: ${(e as Error).message}`);
    }
    printLine(io, JSON.stringify({ event: 'listening', port: bound, infoHash: t.infoHashHex, pieces: have.size }));
    const tiers = a.bool('no-announce') ? [] : [...t.announce.map((x) => [...x]), ...a.list('tracker').map((u) => [u])];
    const loop = tiers.length > 0
      ? new AnnounceLoop({
          tiers, infoHash: t.infoHash, peerId: seeder.peerId, port: bound,
          stats: () => ({ uploaded: seeder.uploaded, downloaded: 0, left: (t.pieceCount - have.size) * t.pieceLength }),
          onFailure: (f) => reporter.log(`${f.tracker}: ${f.message}`),
          onWarning: (tracker, w) => reporter.log(`${tracker}: warning: ${w}`),
        })
      : null;
    loop?.start();
    const statsFile = a.has('stats') ? createWriteStream(a.str('stats')!, { flags: 'a' }) : null;
    const started = Date.now();
    const stats = (): string =>
      JSON.stringify({ event: 'stats', seconds: Math.round((Date.now() - started) / 1000), peers: seeder.peers, uploaded: seeder.uploaded, uploadRate: Math.round(seeder.uploadRate()) }) + '\n';
    const statTimer = setInterval(() => {
      const line = stats();
      printLine(io, line);
      statsFile?.write(line);
    }, interval * 1000);
    progress.phase('seeding');
    const status = (force = false): void =>
      progress.update({ done: have.size, total: t.pieceCount, bytes: 0, peers: seeder.peers, upRate: seeder.uploadRate(), uploaded: seeder.uploaded, ratio: seeder.uploaded / t.length, failed: reporter.failed }, force);
    const barTimer = setInterval(status, 500);
    await new Promise<void>((resolve) => {
      if (io.signal.aborted) resolve();
      io.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    clearInterval(statTimer);
    clearInterval(barTimer);
    status(true);
    progress.finish(`${t.name}: seeded ${clock((Date.now() - started) / 1000)}, uploaded ${human(seeder.uploaded)} (ratio ${(seeder.uploaded / t.length).toFixed(2)})`);
    await loop?.stop();
    await seeder.close();
    await store.close();
    const last = stats();
    io.stdout.write(last);
    statsFile?.end(last);
    return 0;
  },
};
