import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { piecesForFiles } from '../metainfo/pieces.js';
import { parsePeerArgs } from '../cli/peer-args.js';
import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import { report, warnOnce, type Command } from '../cli/io.js';
import { parsePieceList } from '../cli/pieces-arg.js';
import { Progress, progressMode } from '../cli/progress.js';
import { resolveSelect } from '../cli/select.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import { FetchError, FetchStream } from '../streams/fetch.js';
import { readHaveSet } from '../streams/have-set.js';
import { NdjsonParseStream } from '../streams/ndjson-parse.js';
import { PeerRecordStream } from '../streams/peers.js';
import { PieceFrameEncoder } from '../streams/piece-frames.js';

export const fetchPieces: Command = {
  name: 'fetch-pieces',
  synopsis: 'TORRENT [--peer HOST:PORT]... [--have FILE] [--pieces LIST | --select FILE...] [--sequential] [--max-peers N] [--timeout S] [--stats FILE] [--quiet|--progress]',
  summary: 'download and verify pieces from peers (NDJSON on stdin), write the piece stream',
  help: `usage: torrent-tools fetch-pieces TORRENT [options] < peers.ndjson > pieces.bin

Reads peers as NDJSON on stdin ({"ip":…,"port":…} per line, as announce and dht print them;
peers may keep arriving while it runs) and from --peer, downloads the wanted pieces from all
of them at once, checks each piece's SHA-1, and writes the verified pieces to stdout in the
piece stream format (see torrent-tools-formats(7)), in completion order. It refuses a terminal.
Exit 0 when every wanted piece was written; 1 with a summary of what is missing otherwise.

Pieces are picked rarest first (random among equals), started pieces first; each peer gets
about 3 s of its measured rate in requests (2..500 blocks of 16 KiB). A piece that fails its
hash is fetched again, and the peer that sent the bad block is banned.

options:
  --peer HOST:PORT     a peer to use (repeatable); [v6]:port for IPv6
  --have FILE          skip the pieces in this have-set (assemble's events, verify's output)
  --pieces LIST        only these pieces, e.g. 0-99,200
  --select FILE        only the pieces these files need (a path as 'info' shows it, or an
                       index); repeatable
  --sequential         pick pieces in order (for assemble --stdout into a player)
  --max-peers N        connections at most (default 50)
  --max-memory BYTES   pieces in flight at most, in bytes (default 16777216)
  --timeout S          give up when no piece arrives for S seconds (default 120; 0 = never)
  --stats FILE         append NDJSON stats (rate, peers, pieces, per-peer figures) every second
  --port N             our listening port, advertised to peers
  --quiet              no progress bar
  --progress           progress as NDJSON on stderr
  --strict             refuse a torrent file with non-canonical bencode
  -h, --help           show this help

examples:
  torrent-tools announce x.torrent | torrent-tools fetch-pieces x.torrent | torrent-tools assemble x.torrent -o out/
  torrent-tools fetch-pieces x.torrent --peer 127.0.0.1:6881 < /dev/null | torrent-tools bdecode | jq -c '{index}'
`,
  async run(argv, io) {
    const a = parseArgs(argv, {
      string: ['peer', 'have', 'pieces', 'select', 'max-peers', 'max-memory', 'timeout', 'stats', 'port'],
      repeat: ['peer', 'select'],
      boolean: ['sequential', 'quiet', 'progress', 'strict'],
    });
    if (a.positional.length !== 1) throw new UsageError('expected one TORRENT');
    if (io.stdout.isTTY) throw new UsageError('refusing to write the binary piece stream to a terminal (pipe it into assemble, or redirect it)');
    if (a.has('pieces') && a.has('select')) throw new UsageError('--pieces and --select exclude each other');
    const peers = parsePeerArgs(a.list('peer'));
    const maxPeers = a.int('max-peers', 1, 10_000) ?? 50;
    const maxMemory = a.int('max-memory', 1, Number.MAX_SAFE_INTEGER);
    const timeout = a.int('timeout', 0, 86_400) ?? 120;
    const port = a.int('port', 1, 65535);
    const src = await loadTorrentArg(a.positional[0]!, io, 'fetch-pieces', { strict: a.bool('strict') });
    const t = src.torrent;
    if (!t) throw new UsageError('fetch-pieces needs a .torrent file here');
    let wanted: number[] | undefined;
    if (a.has('pieces')) wanted = parsePieceList(a.str('pieces')!, t.pieceCount);
    else if (a.has('select')) wanted = piecesForFiles(t, [...resolveSelect(t, a.list('select'))]);
    const have = a.has('have')
      ? await readHaveSet(a.str('have')!, t.pieceCount).catch((e: Error) => {
          throw new CliError(`${a.str('have')}: ${e.message}`);
        })
      : undefined;

    const fetch = new FetchStream({
      torrent: t, wanted, have, maxPeers, port, sequential: a.bool('sequential'),
      maxInFlightBytes: maxMemory, stallTimeoutMs: timeout * 1000,
    });
    const swarm = fetch.swarm;
    const log = (m: string): void => report(io, 'fetch-pieces', m);
    swarm.on('log', log);
    for (const p of peers) fetch.peers.write(p);
    const warn = warnOnce(io, 'fetch-pieces');
    // peers on stdin, unless it is a terminal (then only --peer)
    if (!io.stdin.isTTY) {
      pipeline(io.stdin, new NdjsonParseStream({ maxLineLength: 64 * 1024 }), new PeerRecordStream((line, why) => warn('peer', `stdin:${line}: not a peer, skipped: ${why}`)), fetch.peers).catch((e: Error) => {
        if (!fetch.destroyed) log(`warning: stdin: ${e.message}; no more peers will be read`);
        fetch.peers.end();
      });
    } else {
      fetch.peers.end();
    }
    if (peers.length === 0 && io.stdin.isTTY) throw new UsageError('no peers: give --peer HOST:PORT, or pipe peers in (announce, dht get-peers)');

    const progress = new Progress(io, progressMode(io, { quiet: a.bool('quiet'), progress: a.bool('progress') }), 'fetch');
    const statsOut = a.has('stats') ? createWriteStream(a.str('stats')!, { flags: 'a' }) : null;
    const ticker = setInterval(() => {
      const s = swarm.stats();
      progress.update({ done: s.done, total: s.wanted, bytes: s.downloaded, extra: { peers: s.peers } });
      statsOut?.write(JSON.stringify({ event: 'stats', time: Date.now() / 1000, ...s }) + '\n');
    }, 1000);
    try {
      await pipeline(fetch, new PieceFrameEncoder(), io.stdout, { signal: io.signal });
    } catch (e) {
      if (e instanceof FetchError) throw new CliError(e.message);
      throw e;
    } finally {
      clearInterval(ticker);
      const s = swarm.stats();
      progress.update({ done: s.done, total: s.wanted, bytes: s.downloaded, extra: { peers: s.peers } }, true);
      progress.finish();
      statsOut?.end(JSON.stringify({ event: 'stats', time: Date.now() / 1000, ...s }) + '\n');
      fetch.destroy();
    }
    if (!swarm.complete) throw new CliError(fetch.missingSummary());
    return 0;
  },
};
