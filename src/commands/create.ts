import { writeFile } from 'node:fs/promises';
import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import { report, type Command } from '../cli/io.js';
import { Progress, progressMode } from '../cli/progress.js';
import { createTorrent, scanPath } from '../metainfo/create.js';
import { MetainfoError } from '../metainfo/torrent.js';
import { describeSystemError } from '../cli/input.js';

const URL_RE = /^(?:https?|udp|wss?):\/\/\S+$/i;

export const create: Command = {
  name: 'create',
  synopsis: 'PATH [-o FILE] [--announce URL[,URL]]... [--piece-length N] [--private] [--comment TEXT] [--web-seed URL]... [--source TEXT] [--pad] [--v2|--hybrid] [--no-date] [--name NAME]',
  help: `usage: torrent-tools create PATH [options] > x.torrent

Hashes PATH (a file, or a directory and everything in it) on all cores and writes a .torrent
to stdout (never to a terminal) or to -o FILE. Files go in byte order of their paths, so the
same input with --no-date gives byte-identical output. Symlinks are not followed and special
files (FIFOs, sockets, devices) are skipped, each with a warning on stderr.

options:
  -o, --output FILE     write the torrent here instead of stdout
  --announce URL        a tracker; repeatable. Each --announce is its own BEP 12 tier;
                        URL,URL puts several trackers in one tier
  --piece-length N      bytes per piece, a power of two from 16 KiB; 256K, 4M accepted
                        (default: about 1,500 pieces, between 16 KiB and 16 MiB)
  --private             set the private flag (BEP 27: trackers only, no DHT/PEX)
  --comment TEXT        a comment
  --web-seed URL        a BEP 19 web seed; repeatable
  --source TEXT         the info.source field (changes the info hash; used by private sites)
  --pad                 BEP 47 pad files so that every file starts on a piece boundary
  --v2                  a v2-only torrent (BEP 52: SHA-256 merkle trees of 16 KiB
                        blocks, file tree, piece layers); only v2 clients read it
  --hybrid              both views of the same files (v1 pieces with pad files and
                        the v2 tree), as libtorrent 2 and qBittorrent make by default;
                        same info hashes as libtorrent for the same files and options
  --no-date             leave out the creation date (reproducible output)
  --name NAME           the torrent's name (default: PATH's base name)
  --quiet               no progress bar
  -h, --help            show this help

examples:
  torrent-tools create data/ --announce http://127.0.0.1:6969/announce -o data.torrent
  torrent-tools create --no-date movie.mkv | torrent-tools info | jq .infoHash
  torrent-tools create --hybrid data/ -o data.torrent
`,
  async run(argv, io) {
    const a = parseArgs(argv, {
      string: ['output', 'announce', 'piece-length', 'comment', 'web-seed', 'source', 'name'],
      repeat: ['announce', 'web-seed'],
      boolean: ['private', 'pad', 'v2', 'hybrid', 'no-date', 'quiet', 'progress'],
      alias: { o: 'output' },
    });
    if (a.positional.length !== 1) throw new UsageError('expected one PATH');
    const out = a.str('output');
    if (out === undefined && io.stdout.isTTY) throw new UsageError('refusing to write a binary .torrent to a terminal (use -o FILE or redirect stdout)');
    const tiers = a.list('announce').map((v) => v.split(',').map((u) => u.trim()).filter((u) => u.length > 0));
    for (const u of tiers.flat()) if (!URL_RE.test(u)) throw new UsageError(`--announce: not a tracker URL: ${JSON.stringify(u)}`);
    for (const u of a.list('web-seed')) if (!/^https?:\/\/\S+$/i.test(u)) throw new UsageError(`--web-seed: not an http(s) URL: ${JSON.stringify(u)}`);
    const pl = a.size('piece-length', 16 * 1024, 128 * 1024 * 1024);
    if (pl !== undefined && (pl & (pl - 1)) !== 0) throw new UsageError(`--piece-length: ${pl} is not a power of two`);
    if (a.bool('v2') && a.bool('hybrid')) throw new UsageError('--v2 and --hybrid: give one (--hybrid has the v2 view too)');
    const version = a.bool('v2') ? 2 : a.bool('hybrid') ? 'hybrid' : 1;
    if (version !== 1 && a.bool('pad')) throw new UsageError('--pad: v2 and hybrid torrents always start each file on a piece boundary');
    const path = a.positional[0]!;
    const progress = new Progress(io, progressMode(io, { quiet: a.bool('quiet'), progress: a.bool('progress') }), 'create');
    let bytes: Buffer;
    try {
      const scan = await scanPath(path, (m) => report(io, 'create', `warning: ${m}`));
      bytes = await createTorrent(scan, {
        announce: tiers,
        pieceLength: pl,
        private: a.bool('private'),
        comment: a.str('comment'),
        webSeeds: a.list('web-seed'),
        source: a.str('source'),
        pad: a.bool('pad'),
        version,
        date: a.bool('no-date') ? null : Math.floor(Date.now() / 1000),
        name: a.str('name'),
        signal: io.signal,
        onProgress: (done, total) => progress.update({ done, total, bytes: done * (pl ?? 0), left: (total - done) * (pl ?? 0) }),
      });
    } catch (e) {
      if (e instanceof MetainfoError) throw new CliError(e.message);
      const sys = describeSystemError(e, path);
      if (sys !== null) throw new CliError(sys);
      throw e;
    } finally {
      progress.finish();
    }
    if (out !== undefined) await writeFile(out, bytes);
    else await new Promise<void>((resolve, reject) => io.stdout.write(bytes, (e) => (e ? reject(e) : resolve())));
    return 0;
  },
};
