import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import { report, type Command } from '../cli/io.js';
import { addMagnetPeers, fetchLayersFrom, fetchMetadataFromPeers, torrentFromInfo } from '../client/metadata.js';
import { torrentFileFromMetadata } from '../metainfo/from-metadata.js';
import type { HandedPeer } from '../swarm/hand-over.js';
import { writeFileAtomic } from '../storage/write-atomic.js';
import { feedFromStdin, parsePeerArgs, resolvePeerArgs } from '../cli/peer-args.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import { PeerFeed } from '../peers/feed.js';
import { DEFAULT_MAX_METADATA } from '../wire/ut-metadata.js';
import { Session } from '../session/session.js';
import { TRANSPORT_BOOLEAN_OPTIONS, transportsOf } from '../cli/transport-args.js';

export const fetchMetadata: Command = {
  name: 'fetch-metadata',
  synopsis: 'MAGNET|INFOHASH [--peer HOST:PORT]... [-o FILE] [--timeout S] [--max-size BYTES] [--max-peers N] [--no-pex] [--no-utp|--no-tcp]',
  help: `usage: torrent-tools fetch-metadata MAGNET|INFOHASH [options] < peers.ndjson > x.torrent

Reads peers as NDJSON on stdin (as announce and dht get-peers print them) and from --peer and
the magnet's x.pe, asks every one that offers it for the torrent's info dict in 16 KiB pieces
(BEP 9, several peers at once), checks that it hashes to the info hash (SHA-1; also SHA-256
for a btmh hash), and writes a .torrent: the info dict as its raw bytes, announce and
announce-list from the magnet's tr=, url-list from its ws=. Peers learnt by PEX are tried too.
A magnet with only a btmh hash (BEP 52) is asked for by that hash truncated to 20 bytes. The
piece layers of a v2 or hybrid torrent, which are not part of the metadata, are then asked of
the same peers by hash requests (each answer proved up to its file's pieces root, only on
connections that speak v2) and written too; a hybrid whose peers do not is written without.
A peer that sends wrong, oversized, unasked-for or inconsistent pieces, or rejects, is dropped
and its pieces asked of others. It refuses to write to a terminal.
Exit 1, saying which peers were tried and what became of each, when no peer delivered.

options:
  --peer HOST:PORT    also ask this peer (repeatable); [v6]:port for IPv6
  -o, --output FILE   write the .torrent here instead of stdout
  --timeout S         give up after S seconds (default 60; 0 = never)
  --max-size BYTES    believe a metadata_size up to this (default ${DEFAULT_MAX_METADATA})
  --max-peers N       connections at most (default 50)
  --no-pex            do not learn peers by PEX
  --no-utp            dial over TCP only (default: uTP first, TCP when uTP gets no answer)
  --no-tcp            dial over uTP only (BEP 29)
  -h, --help          show this help

examples:
  torrent-tools announce 'magnet:?xt=urn:btih:…&tr=…' | torrent-tools fetch-metadata 'magnet:?xt=urn:btih:…&tr=…' > x.torrent
  torrent-tools fetch-metadata 'magnet:?xt=urn:btih:…&x.pe=127.0.0.1:6881' < /dev/null | torrent-tools info | jq .name
`,
  async run(argv, io) {
    const a = parseArgs(argv, {
      string: ['peer', 'output', 'timeout', 'max-size', 'max-peers'],
      repeat: ['peer'],
      boolean: ['no-pex', ...TRANSPORT_BOOLEAN_OPTIONS],
      alias: { o: 'output' },
    });
    if (a.positional.length !== 1) throw new UsageError('expected one MAGNET or INFOHASH');
    const out = a.str('output');
    if (out === undefined && io.stdout.isTTY) throw new UsageError('refusing to write a .torrent to a terminal (redirect it, or give -o FILE)');
    const peers = parsePeerArgs(a.list('peer'));
    const timeout = a.int('timeout', 0, 86_400) ?? 60;
    const maxSize = a.int('max-size', 1, 1 << 30) ?? DEFAULT_MAX_METADATA;
    const maxPeers = a.int('max-peers', 1, 10_000) ?? 50;
    const src = await loadTorrentArg(a.positional[0]!, io, 'fetch-metadata', { allowMagnet: true, allowInfoHash: true });
    if (src.torrent) throw new UsageError('that is a .torrent already: fetch-metadata takes a magnet URI or an info hash');
    if (peers.length === 0 && io.stdin.isTTY && (src.magnet?.peers.length ?? 0) === 0) {
      throw new UsageError('no peers: give --peer HOST:PORT, x.pe= in the magnet, or pipe peers in (announce, dht get-peers)');
    }
    const feed = new PeerFeed();
    for (const p of await resolvePeerArgs(peers, io, 'fetch-metadata')) feed.add(p);
    await addMagnetPeers(src, feed, (m) => report(io, 'fetch-metadata', m));
    // a UDP port of our own to dial uTP from (peers are dialled over uTP first, as download does)
    const transports = transportsOf(a);
    const session = new Session(transports);
    await session.dialOnly().catch((e: Error) => {
      throw new CliError(`cannot bind a UDP port for uTP (${e.message})`);
    });
    const stopPeers = feedFromStdin(io, 'fetch-metadata', feed);
    let handed: HandedPeer[] = [];
    const info = await fetchMetadataFromPeers(src, {
      feed, timeoutMs: timeout * 1000, signal: io.signal, maxSize, maxPeers, pex: !a.bool('no-pex'),
      transports: session.transports, log: (m) => report(io, 'fetch-metadata', m),
      onHandOver: (peers) => (handed = peers),
    }).finally(stopPeers).catch(async (e: unknown) => {
      await session.close();
      throw e;
    });
    // the session's uTP connections stay open until the piece layers are had from them
    try {
      const { torrent, file: bare } = torrentFromInfo(src, info);
      let file = bare;
      // a v2 or hybrid torrent's piece layers are outside the metadata: asked of the same peers
      // that speak v2 on their connection (a hybrid whose peers do not is written without them)
      if (torrent.version !== 1) {
        try {
          await fetchLayersFrom(torrent, handed, { timeoutMs: timeout * 1000, signal: io.signal });
        } catch (e) {
          if (torrent.version === 2 || io.signal.aborted) throw e;
          report(io, 'fetch-metadata', `warning: ${(e as Error).message}; the .torrent is written without them`);
        }
        file = torrentFileFromMetadata(info, { trackers: src.magnet?.trackers ?? [], webSeeds: src.magnet?.webSeeds ?? [] }, torrent.pieceLayers);
      } else {
        for (const h of handed) h.drop();
      }
      if (out !== undefined) {
        await writeFileAtomic(out, file).catch((e: Error) => {
          throw new CliError(`${out}: ${e.message}`);
        });
      } else {
        await new Promise<void>((resolve, reject) => io.stdout.write(file, (e) => (e ? reject(e) : resolve())));
      }
    } finally {
      await session.close();
    }
    return 0;
  },
};
