import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { piecesForFiles } from '../metainfo/pieces.js';
import { feedFromStdin, parsePeerArgs, resolvePeerArgs } from '../cli/peer-args.js';
import { resolveTorrent } from '../client/metadata.js';
import { DHT_BOOLEAN_OPTIONS, DHT_HELP, DHT_STRING_OPTIONS, startClientDht } from '../cli/dht-args.js';
import { TRANSPORT_BOOLEAN_OPTIONS, TRANSPORT_HELP, transportsOf } from '../cli/transport-args.js';
import { DhtDiscovery } from '../dht/discovery.js';
import type { DhtNode } from '../dht/node.js';
import type { Torrent } from '../metainfo/torrent.js';
import { PeerFeed } from '../peers/feed.js';
import { peerKey, peerLine, type PeerRecord } from '../peers/record.js';
import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import type { Command } from '../cli/io.js';
import { parsePieceList } from '../cli/pieces-arg.js';
import { Progress, progressMode } from '../cli/progress.js';
import { clock, human } from '../cli/units.js';
import { Reporter, VERBOSITY_HELP, verbosityOf } from '../cli/reporter.js';
import { resolveSelect } from '../cli/select.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import { FetchError, FetchStream } from '../streams/fetch.js';
import { FileStore } from '../storage/file-store.js';
import { UnsafePathError } from '../storage/safe-path.js';
import { DiskWatch } from '../swarm/disk-watch.js';
import type { SwarmStats } from '../swarm/swarm.js';
import { Session } from '../session/session.js';
import { TokenBucket } from '../wire/bandwidth.js';
import { readHaveSet } from '../streams/have-set.js';
import { writeFrames } from '../streams/piece-frames.js';
import { WebSeeds, webSeedUrls } from '../webseed/start.js';

export const fetchPieces: Command = {
  name: 'fetch-pieces',
  synopsis: 'TORRENT|MAGNET [--peer HOST:PORT]... [--web-seed URL]... [--no-web-seeds] [--have FILE] [--pieces LIST | --select FILE...] [--sequential] [--max-peers N] [--max-download-rate RATE] [--max-upload-rate RATE] [--no-utp|--no-tcp] [--timeout S] [--stats FILE] [--print-peers FILE] [--save-torrent FILE] [--serve-from DIR] [--quiet|--progress]',
  help: `usage: torrent-tools fetch-pieces TORRENT|MAGNET [options] < peers.ndjson > pieces.bin

Reads peers as NDJSON on stdin ({"ip":…,"port":…} per line, as announce and dht print them;
peers may keep arriving while it runs) and from --peer, downloads the wanted pieces from all
of them at once, checks each piece's hash (SHA-1, or the merkle root for a v2-only torrent), and writes the verified pieces to stdout in the
piece stream format (see torrent-tools-formats(7)), in completion order. It refuses a terminal.
Exit 0 when every wanted piece was written; 1 with a summary of what is missing otherwise.

Pieces are picked rarest first (random among equals), started pieces first; each peer gets
about 3 s of its measured rate in requests (2..500 blocks of 16 KiB). A piece that fails its
hash is fetched again, and the peer that sent the bad block is banned. Peers learnt by PEX
(BEP 11) and the DHT (BEP 5; --no-dht turns it off) are used too, and the torrent's
metadata is served to peers that ask (BEP 9).

Given a magnet, it first gets the metadata from the same peers (and the magnet's x.pe=) as
fetch-metadata does; --save-torrent keeps it for the next run. A magnet's so= selects files.

options:
  --peer HOST:PORT     a peer to use (repeatable); [v6]:port for IPv6
  --web-seed URL       also fetch from this HTTP(S) mirror (BEP 19; repeatable): whole pieces
                       by range requests, hash-checked like any peer's; the torrent's
                       url-list (a magnet's ws=) is used too
  --no-web-seeds       use no web seed from the torrent (only --web-seed)
  --have FILE          skip the pieces in this have-set (assemble's events, verify's output)
  --pieces LIST        only these pieces, e.g. 0-99,200
  --select FILE        only the pieces these files need (a path as 'info' shows it, or an
                       index); repeatable
  --sequential         pick pieces in order (for assemble --stdout into a player)
  --max-peers N        connections at most (default 50)
  --max-memory BYTES   pieces in flight at most, in bytes (default 16M; 64M accepted)
  --max-download-rate RATE  bytes/s received at most (500K, 4M; default 0: unlimited)
  --max-upload-rate RATE    bytes/s of pieces sent at most with --serve-from (likewise)
${TRANSPORT_HELP}  --timeout S          give up when no piece arrives for S seconds (default 120; 0 = never)
  --stats FILE         append NDJSON stats (rate, peers, pieces, per-peer figures with each
                       connection's "transport", tcp or utp; a web seed named by its URL; the
                       uTP endpoint's "utpPackets") every second
  --print-peers FILE   append every peer learnt (given, PEX) as NDJSON, as announce prints them
  --save-torrent FILE  magnet: write the fetched .torrent here, or read it from here if it is
                       already there and matches the info hash
  --max-metadata BYTES magnet: believe a metadata_size up to this (default 8388608)
  --serve-from DIR     upload while downloading: listen on --port (default 6881) and serve
                       the pieces in DIR (where assemble writes): those in --have at once,
                       the ones fetched now once they read back from DIR with a good hash
  --port N             our listening port, advertised to peers
${DHT_HELP}${VERBOSITY_HELP}  --progress           progress as NDJSON on stderr (numeric fields, the same keys every time)
  --strict             refuse a torrent file with non-canonical bencode, names
                       that need mapping to safe ones, or pieces over 128 MiB
  -h, --help           show this help

examples:
  torrent-tools announce x.torrent | torrent-tools fetch-pieces x.torrent | torrent-tools assemble x.torrent -o out/
  torrent-tools fetch-pieces x.torrent --web-seed http://mirror.example/pub/ < /dev/null | torrent-tools assemble x.torrent -o out/
  torrent-tools fetch-pieces x.torrent --peer 127.0.0.1:6881 < /dev/null | torrent-tools bdecode | jq -c '{index}'
`,
  async run(argv, io) {
    const a = parseArgs(argv, {
      string: ['peer', 'have', 'pieces', 'select', 'max-peers', 'max-memory', 'max-download-rate', 'max-upload-rate', 'timeout', 'stats', 'port', 'print-peers', 'save-torrent', 'max-metadata', 'serve-from', 'web-seed', ...DHT_STRING_OPTIONS],
      repeat: ['peer', 'select', 'web-seed'],
      boolean: ['no-web-seeds', 'sequential', 'quiet', 'verbose', 'progress', 'strict', ...DHT_BOOLEAN_OPTIONS, ...TRANSPORT_BOOLEAN_OPTIONS],
      alias: { v: 'verbose', q: 'quiet' },
    });
    if (a.positional.length !== 1) throw new UsageError('expected one TORRENT');
    if (io.stdout.isTTY) throw new UsageError('refusing to write the binary piece stream to a terminal (pipe it into assemble, or redirect it)');
    if (a.has('pieces') && a.has('select')) throw new UsageError('--pieces and --select exclude each other');
    const peers = parsePeerArgs(a.list('peer'));
    const maxPeers = a.int('max-peers', 1, 10_000) ?? 50;
    const maxMemory = a.size('max-memory', 1, Number.MAX_SAFE_INTEGER);
    const timeout = a.int('timeout', 0, 86_400) ?? 120;
    const port = a.int('port', 1, 65535);
    const src = await loadTorrentArg(a.positional[0]!, io, 'fetch-pieces', { strict: a.bool('strict'), allowMagnet: true });
    // a magnet's ws= do not count: a web seed cannot give the metadata (BEP 19 serves files)
    const webSeedCount = src.torrent ? a.list('web-seed').length + (a.bool('no-web-seeds') ? 0 : src.torrent.urlList.length) : 0;
    if (peers.length === 0 && webSeedCount === 0 && io.stdin.isTTY && (src.magnet?.peers.length ?? 0) === 0 && (a.bool('no-dht') || src.torrent?.private)) {
      throw new UsageError('no peers: give --peer HOST:PORT, or pipe peers in (announce, dht get-peers)');
    }
    const reporter = new Reporter(io, 'fetch-pieces', verbosityOf(a));
    const log = reporter.log;
    const printPeers = a.has('print-peers') ? createWriteStream(a.str('print-peers')!, { flags: 'a' }) : null;
    const printed = new Set<string>();
    const onPeer = (p: PeerRecord): void => {
      if (printPeers && !printed.has(peerKey(p)) && printed.size < 100_000) {
        printed.add(peerKey(p));
        printPeers.write(peerLine(p));
      }
    };
    const feed = new PeerFeed();
    for (const p of await resolvePeerArgs(peers, io, 'fetch-pieces')) feed.add(p);
    const stopPeers = feedFromStdin(io, 'fetch-pieces', feed);
    // the session first: our uTP endpoint (and with --serve-from the listening port) on the
    // process's one UDP socket, which the DHT shares
    const transports = transportsOf(a);
    const session = new Session({ ...transports, log });
    let dht: DhtNode | null = null;
    let discovery: DhtDiscovery | null = null;
    const dhtActive = (): boolean => dht !== null && dht.table.size > 0;
    let t: Torrent;
    try {
      await openSession(session, a.has('serve-from') ? port ?? 6881 : null, transports.tcp, log);
      // the DHT finds peers too (not for private torrents: BEP 27); announced only when we serve
      dht = await startClientDht(a, io, 'fetch-pieces', src.torrent?.private ?? false, log, session.udp);
      session.useDht(dht);
      discovery = dht ? new DhtDiscovery(dht, src.infoHash, { port: a.has('serve-from') ? port ?? 6881 : null, onPeer: (rec) => feed.add(rec), onLog: log }) : null;
      discovery?.start();
      ({ torrent: t } = await resolveTorrent(src, {
        feed, cacheFile: a.str('save-torrent'), timeoutMs: timeout * 1000, signal: io.signal, maxPeers, port: session.port ?? port,
        maxSize: a.int('max-metadata', 1, 1 << 30), log, onPeer, morePeers: dhtActive, transports: session.transports,
      }));
    } catch (e) {
      discovery?.stop();
      await session.close();
      await dht?.close();
      throw e;
    }
    if (t.private && dht) {
      // the metadata says private: no DHT for it after all
      discovery?.stop();
      await dht.close();
      dht = null;
    }
    let wanted: number[] | undefined;
    let have: Set<number> | undefined;
    const serveDir = a.str('serve-from');
    let serve: FileStore | undefined;
    try {
      if (a.has('pieces')) wanted = parsePieceList(a.str('pieces')!, t.pieceCount);
      else if (a.has('select')) wanted = piecesForFiles(t, [...resolveSelect(t, a.list('select'))]);
      else if (src.magnet?.select) wanted = piecesForFiles(t, [...resolveSelect(t, src.magnet.select.map(String))]);
      have = a.has('have')
        ? await readHaveSet(a.str('have')!, t.pieceCount).catch((e: Error) => {
            throw new CliError(`${a.str('have')}: ${e.message}`);
          })
        : undefined;

      if (serveDir !== undefined) {
        try {
          serve = await FileStore.open(t, serveDir, { mode: 'read', maxOpen: 64 });
        } catch (e) {
          if (e instanceof UnsafePathError) throw new CliError(`${src.name}: ${e.message}`);
          throw e;
        }
      }
    } catch (e) {
      await session.close();
      throw e;
    }
    if (t.private) session.useDht(null);
    // token buckets on every connection's socket (wire/bandwidth.ts); none when nothing is limited
    const down = a.rate('max-download-rate') ?? 0;
    const up = a.rate('max-upload-rate') ?? 0;
    const bandwidth = down > 0 || up > 0 ? { down: new TokenBucket(down), up: new TokenBucket(up) } : undefined;
    const fetch = new FetchStream(t, {
      ...session.swarmOptions(), bandwidth, wanted, have, maxPeers, port: session.port ?? port, sequential: a.bool('sequential'),
      maxInFlightBytes: maxMemory, stallTimeoutMs: timeout * 1000, serve, dhtPort: dht?.address().port,
    });
    const swarm = fetch.swarm;
    swarm.on('log', log);
    // web seeds: in-process peers in front of HTTP servers (webseed/web-seed-peer.ts), dialled like any
    const webSeeds = new WebSeeds();
    for (const { rec, dial } of webSeeds.start(t, webSeedUrls(t, a.list('web-seed'), !a.bool('no-web-seeds'), log), log, timeout > 0 ? Math.min(timeout, 30) * 1000 : undefined)) swarm.addPeer(rec, dial);
    let watch: DiskWatch | null = null;
    if (serve) {
      session.host(swarm);
      const w = new DiskWatch(t, serve, (i) => swarm.markWritten(i));
      swarm.on('piece', (p) => w.add(p.index));
      watch = w;
    }
    swarm.on('peer', onPeer);
    feed.switchTo((rec) => swarm.addPeer(rec));
    swarm.on('dht-node', (n) => dht?.addNode(n.ip, n.port));
    // the inputs are over when stdin is, unless the DHT (once bootstrapped) may bring more
    feed.onEnd(() => void (dht ? dht.ready() : Promise.resolve()).then(() => !dhtActive() && fetch.end()));

    const progress = new Progress(io, progressMode(io, { quiet: a.bool('quiet'), progress: a.bool('progress') }), 'fetch');
    const statsOut = a.has('stats') ? createWriteStream(a.str('stats')!, { flags: 'a' }) : null;
    // per-peer records name each connection's transport; the uTP endpoint's packet counts beside
    const statsLine = (s: SwarmStats): string => JSON.stringify({ event: 'stats', time: Date.now() / 1000, ...s, utpPackets: session.utpStats() }) + '\n';
    const ticker = setInterval(() => {
      const s = swarm.stats();
      progress.update({ done: s.done, total: s.wanted, bytes: s.downloaded, left: (s.wanted - s.done) * t.pieceLength, peers: s.peers, upRate: serve ? swarm.uploadRate() : 0, failed: reporter.failed });
      statsOut?.write(statsLine(s));
    }, 1000);
    // our reader gone (assemble failed, | head had enough) ends us too, normally, even while idle
    const readerGone = io.readerGone ?? new AbortController().signal;
    try {
      await pipeline(fetch, writeFrames(io.stdout), { signal: AbortSignal.any([io.signal, readerGone]) });
    } catch (e) {
      if (e instanceof FetchError) throw new CliError(e.message);
      if (readerGone.aborted && !io.signal.aborted) return 0;
      throw e;
    } finally {
      stopPeers();
      clearInterval(ticker);
      const s = fetch.finalStats ?? swarm.stats();
      progress.update({ done: s.done, total: s.wanted, bytes: s.downloaded, left: (s.wanted - s.done) * t.pieceLength, peers: s.peers, failed: reporter.failed }, true);
      const used = s.perPeer.filter((p) => p.downloaded > 0).length;
      progress.finish(`${t.name}: ${s.done} pieces, ${human(s.downloaded)} in ${clock(progress.seconds)} (${human(s.downloaded / Math.max(0.001, progress.seconds))}/s) from ${used} peer${used === 1 ? '' : 's'}${reporter.failed > 0 ? `, ${reporter.failed} peer failures (-v shows them)` : ''}`);
      statsOut?.end(statsLine(s));
      printPeers?.end();
      watch?.stop();
      fetch.destroy();
      await webSeeds.close();
      await session.close();
      discovery?.stop();
      await dht?.close();
      await serve?.close();
    }
    if (!swarm.complete) throw new CliError(fetch.missingSummary());
    return 0;
  },
};

/**
 * Serving (`port` given): listens there, TCP and UDP, or warns and serves no one; else a UDP
 * socket on any port to dial uTP from. uTP only (no TCP) and no UDP socket: nothing can work.
 */
async function openSession(session: Session, port: number | null, tcp: boolean, log: (line: string) => void): Promise<void> {
  if (port !== null) {
    try {
      await session.listen(port);
      return;
    } catch (e) {
      if (!tcp) throw new CliError(`cannot bind UDP port ${port} for uTP (${(e as Error).message})`);
      log(`warning: cannot listen on port ${port} (${(e as Error).message}); serving no one`);
    }
  }
  await session.dialOnly().catch((e: Error) => {
    throw new CliError(`cannot bind a UDP port for uTP (${e.message})`);
  });
}
