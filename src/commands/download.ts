import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import { report, type Command } from '../cli/io.js';
import { parsePeerArgs, resolvePeerArgs } from '../cli/peer-args.js';
import { pickFreePort } from '../cli/port.js';
import { resolveTorrent } from '../cli/metadata.js';
import { PeerFeed } from '../peers/feed.js';
import type { Torrent } from '../metainfo/torrent.js';
import { makePeerId } from '../wire/protocol.js';
import { Progress, progressMode } from '../cli/progress.js';
import { resolveSelect } from '../cli/select.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import { piecesForFiles } from '../metainfo/pieces.js';
import { FileStore } from '../storage/file-store.js';
import { UnsafePathError } from '../storage/safe-path.js';
import { verifyPieces } from '../storage/verify.js';
import { AssembleStream, type AssembleEvent } from '../streams/assemble.js';
import { FetchError, FetchStream } from '../streams/fetch.js';
import { Bitfield } from '../swarm/bitfield.js';
import { Seeder } from '../swarm/seeder.js';
import { AnnounceLoop } from '../tracker/loop.js';
import { DHT_BOOLEAN_OPTIONS, DHT_HELP, DHT_STRING_OPTIONS, startClientDht } from '../cli/dht-args.js';
import { DhtDiscovery } from '../dht/discovery.js';

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
is fetched. A progress bar on a terminal (pieces, rates down/up, peers, ETA); --json prints
assemble's NDJSON events on stdout. Exit 0 once every wanted piece is on disk.

options:
  -o, --output DIR     where the files go
  --peer HOST:PORT     also use this peer (repeatable)
  --tracker URL        also announce to this tracker (repeatable)
  --no-announce        use no tracker (only --peer)
  --select FILE        only this file (repeatable; a path as 'info' shows it, or an index)
  --port N             listen for peers on N (default 6881; 0 = any)
  --max-peers N        connections at most (default 50)
  --max-memory BYTES   pieces in flight at most, in bytes (default 16777216), as in fetch-pieces
  --os-cache           write through the page cache (default: whole blocks go straight to the
                       disk with O_DIRECT where the file system allows it)
${DHT_HELP}  --seed               keep seeding after the download, until SIGINT, --seed-ratio or --seed-time
  --seed-ratio R       stop seeding once uploaded/size reaches R (e.g. 1.5)
  --seed-time S        stop seeding after S seconds
  --timeout S          give up when no piece arrives for S seconds (default 120)
  --json               print the NDJSON events (piece, complete) on stdout
  --quiet              no progress bar
  --progress           progress as NDJSON on stderr
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
      boolean: ['seed', 'json', 'quiet', 'progress', 'strict', 'no-announce', 'os-cache', ...DHT_BOOLEAN_OPTIONS],
      alias: { o: 'output' },
    });
    if (a.positional.length !== 1) throw new UsageError('expected one TORRENT');
    const out = a.str('output');
    if (out === undefined) throw new UsageError('-o DIR is required');
    const peers = parsePeerArgs(a.list('peer'));
    const portArg = a.int('port', 0, 65535) ?? 6881;
    const maxPeers = a.int('max-peers', 1, 10_000) ?? 50;
    const maxMemory = a.int('max-memory', 1, Number.MAX_SAFE_INTEGER);
    const timeout = a.int('timeout', 0, 86_400) ?? 120;
    const ratioText = a.str('seed-ratio');
    if (ratioText !== undefined && !/^\d+(?:\.\d+)?$/.test(ratioText)) throw new UsageError('--seed-ratio: expected a number like 1.5');
    const seedTime = a.int('seed-time', 1, 365 * 86_400);
    const src = await loadTorrentArg(a.positional[0]!, io, 'download', { strict: a.bool('strict'), allowMagnet: true, allowInfoHash: true });
    const log = (m: string): void => report(io, 'download', m);
    const port = portArg === 0 ? await pickFreePort() : portArg;
    const peerId = makePeerId(randomBytes);
    // every peer source feeds one place: first the metadata step (magnets), then the swarm
    const feed = new PeerFeed();
    for (const p of await resolvePeerArgs(peers, io, 'download')) feed.add(p);
    let t: Torrent | undefined = src.torrent;
    let haveCount = 0;
    const tiers = a.bool('no-announce') ? [] : [...src.trackers.map((x) => [...x]), ...a.list('tracker').map((u) => [u])];
    let swarmStats = (): { uploaded: number; downloaded: number } => ({ uploaded: 0, downloaded: 0 });
    const loop = tiers.length > 0
      ? new AnnounceLoop({
          tiers, infoHash: src.infoHash, peerId, port,
          // before the metadata is known the size is too; 'left' must not say we are a seed
          stats: () => ({ ...swarmStats(), left: t ? Math.max(0, (t.pieceCount - haveCount) * t.pieceLength) : 1 }),
          onPeers: (list) => list.forEach((p) => feed.add(p)),
          onFailure: (f) => log(`${f.tracker}: ${f.message}`),
          onWarning: (tracker, w) => log(`${tracker}: warning: ${w}`),
        })
      : null;
    // the DHT finds peers too (never for a private torrent: BEP 27)
    let dht = await startClientDht(a, io, 'download', src.torrent?.private ?? false);
    if (!loop && !dht && peers.length === 0 && (src.magnet?.peers.length ?? 0) === 0) {
      throw new UsageError('no way to find peers: no trackers and no DHT; give --peer or --tracker');
    }
    const discovery = dht ? new DhtDiscovery(dht, src.infoHash, { port: null, onPeer: (rec) => feed.add(rec), onLog: log }) : null;
    discovery?.start();
    const stopDht = async (): Promise<void> => {
      discovery?.stop();
      await dht?.close();
      dht = null;
    };
    loop?.start();
    try {
      if (!t) {
        const got = await resolveTorrent(src, {
          feed, cacheFile: join(out, '.torrent-tools', `${src.infoHash.toString('hex')}.torrent`), timeoutMs: timeout * 1000,
          signal: io.signal, maxPeers, peerId, port: port || undefined, log,
        });
        t = got.torrent;
        if (a.bool('json')) io.stdout.write(JSON.stringify({ event: 'metadata', source: got.source, infoHash: t.infoHashHex, name: t.name, bytes: t.infoRaw.length }) + '\n');
      }
    } catch (e) {
      await loop?.stop();
      await stopDht();
      throw e;
    }
    if (t.private) await stopDht();
    const selectArgs = a.list('select').length > 0 ? a.list('select') : src.magnet?.select?.map(String) ?? [];
    const select = selectArgs.length > 0 ? resolveSelect(t, selectArgs) : undefined;
    const wanted = select ? new Set(piecesForFiles(t, [...select])) : null;

    let writeStore: FileStore;
    let readStore: FileStore;
    try {
      writeStore = await FileStore.open(t, out, { mode: 'write', select, osCache: a.bool('os-cache') });
      readStore = await FileStore.open(t, out, { mode: 'read', maxOpen: 64 });
    } catch (e) {
      if (e instanceof UnsafePathError) throw new CliError(`${src.name}: ${e.message}`);
      throw e;
    }
    const progress = new Progress(io, progressMode(io, { quiet: a.bool('quiet'), progress: a.bool('progress') }), 'download');
    // resume: whatever is already valid in DIR is kept
    const have: number[] = [];
    let checked = 0;
    // nothing on disk yet: no need to start hashing threads
    const anyFile = (await Promise.all(readStore.paths.map((p, i) => (t.files[i]!.pad ? false : stat(p).then(() => true, () => false))))).some(Boolean);
    if (anyFile) {
      for await (const [i, ok] of verifyPieces(t, out, { signal: io.signal })) {
        if (ok) have.push(i);
        progress.update({ done: ++checked, total: t.pieceCount, bytes: checked * t.pieceLength, extra: { valid: have.length } });
      }
      progress.finish();
    }
    haveCount = have.length;
    const fetch = new FetchStream({
      torrent: t, have, wanted: wanted ?? undefined, maxPeers, maxInFlightBytes: maxMemory, port, serve: readStore, stallTimeoutMs: timeout * 1000, peerId,
      dhtPort: dht?.address().port,
    });
    const swarm = fetch.swarm;
    swarm.on('log', log);
    swarmStats = () => ({ uploaded: swarm.uploaded, downloaded: swarm.stats().downloaded });
    let bound = port;
    try {
      bound = await swarm.listen(port);
      loop?.setPort(bound);
      discovery?.setPort(bound);
    } catch (e) {
      report(io, 'download', `warning: cannot listen on port ${port} (${(e as Error).message}); downloading without incoming connections`);
    }
    feed.switchTo((rec) => swarm.addPeer(rec));
    swarm.on('dht-node', (n) => dht?.addNode(n.ip, n.port));

    const assembler = new AssembleStream(t, writeStore, { trust: true, wanted: wanted ?? undefined, have: new Set(have) });
    const total = assembler.remaining;
    let done = 0;
    let bytes = 0;
    const bar = setInterval(() => {
      const s = swarm.stats();
      progress.update({ done, total, bytes, extra: { peers: s.peers, up: `${(swarm.uploadRate() / 1048576).toFixed(1)}MiB/s` } });
    }, 250);
    const sink = new Writable({
      objectMode: true,
      write(ev: AssembleEvent, _enc, cb) {
        if (ev.event === 'piece') {
          done++;
          haveCount++;
          bytes += ev.bytes;
          swarm.markWritten(ev.index); // on disk: now we may serve it
        }
        if (a.bool('json')) io.stdout.write(JSON.stringify(ev) + '\n', () => cb());
        else cb();
      },
    });
    try {
      await pipeline(fetch, assembler, sink, { signal: io.signal });
    } catch (e) {
      await loop?.stop();
      await stopDht();
      if (e instanceof FetchError) throw new CliError(e.message);
      throw e;
    } finally {
      clearInterval(bar);
      progress.update({ done, total, bytes }, true);
      progress.finish();
      await writeStore.close();
    }
    loop?.completed();
    if (assembler.remaining > 0) {
      await loop?.stop();
      await stopDht();
      throw new CliError(`${assembler.remaining} of ${total} wanted pieces missing`);
    }
    if (!a.bool('seed')) {
      await loop?.stop();
      await stopDht();
      await readStore.close();
      return 0;
    }
    // seeding afterwards: the same port, a seeder over what is now on disk
    const onDisk = new Bitfield(t.pieceCount);
    for await (const [i, ok] of verifyPieces(t, out)) if (ok) onDisk.set(i);
    const seeder = new Seeder({ torrent: t, store: readStore, have: onDisk, peerId: swarm.peerId });
    seeder.on('log', (m) => report(io, 'download', m));
    await seeder.listen(bound).catch(() => seeder.listen(0));
    const ratio = ratioText === undefined ? Infinity : Number(ratioText);
    const started = Date.now();
    const uploadedBefore = swarm.uploaded;
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        const up = uploadedBefore + seeder.uploaded;
        if (up / t.length >= ratio || (seedTime !== undefined && Date.now() - started >= seedTime * 1000)) finish();
      }, 500);
      function finish(): void {
        clearInterval(check);
        resolve();
      }
      if (io.signal.aborted) finish();
      io.signal.addEventListener('abort', finish, { once: true });
    });
    await loop?.stop();
    await stopDht();
    await seeder.close();
    await readStore.close();
    return 0;
  },
};
