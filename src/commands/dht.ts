import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parseArgs, type Args } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import { report, type Command, type Io } from '../cli/io.js';
import { dhtBootstrapFromEnv, parseBootstrap } from '../cli/dht-args.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import { DhtNode } from '../dht/node.js';
import { defaultStateFile } from '../dht/state.js';
import { peerLine, parseHostPort } from '../peers/record.js';

const SUBCOMMANDS = ['get-peers', 'announce', 'find-node', 'ping', 'serve'];
/** options that belong to one subcommand */
const ONLY_FOR: ReadonlyArray<[string, string]> = [['watch', 'get-peers'], ['implied-port', 'announce'], ['stats-interval', 'serve'], ['read-only', 'serve']];

const HELP = `usage: torrent-tools dht get-peers INFOHASH|MAGNET|TORRENT [--watch] [options]
       torrent-tools dht announce INFOHASH|MAGNET|TORRENT (--port P | --implied-port) [options]
       torrent-tools dht find-node ID [options]
       torrent-tools dht ping HOST:PORT [options]
       torrent-tools dht serve [--port P] [--stats-interval S] [--read-only] [options]

A node of the BitTorrent DHT (BEP 5, Kademlia over UDP). Every subcommand starts a node,
bootstraps from --bootstrap (or the well-known routers, or the routing table saved by the
last run), does its job, and saves the routing table. The one-shot subcommands run as BEP 43
read-only nodes (they query, and leave no dead entry in others' tables); serve answers
ping, find_node, get_peers and announce_peer.

dht get-peers INFOHASH|MAGNET|TORRENT
  Prints peers as NDJSON ({"ip","port","source":"dht"}) as they are found; ends when the
  lookup converges (exit 1 when no node answered).
  --watch                look again every minute, printing only new peers, until SIGINT,
                         --timeout when given, or the reader of stdout has gone (noticed
                         within a second, also between rounds)

dht announce INFOHASH|MAGNET|TORRENT --port P
  get_peers, then announce_peer with the tokens received to the closest nodes; prints the
  peers found, then {"event":"announced","nodes":N,…} (exit 1 when no node took it).
  --port P               the peer port to announce (our UDP port is then any)
  --implied-port         ask the nodes to take our UDP source port as the peer port (BEP 5);
                         with --port P, that UDP port is P

dht find-node ID
  Prints the nodes closest to the 40-hex ID as NDJSON {"id","ip","port"}, closest first.

dht ping HOST:PORT
  Prints {"event":"pong","id":…,"ms":…}; exit 1 when no answer (two tries of 2 s).

dht serve
  Runs a node until SIGINT; prints {"event":"listening",…} then NDJSON stats every
  --stats-interval seconds (default 10).
  --port N               UDP port (default 6881)
  --read-only            BEP 43: query but never answer
  --stats-interval S     seconds between stats records

options (all subcommands):
  --bootstrap HOST:PORT  start from this node (repeatable; default: router.bittorrent.com,
                         dht.transmissionbt.com, router.utorrent.com, or
                         $TORRENT_TOOLS_DHT_BOOTSTRAP, a comma-separated list, '' for none).
                         Nodes on loopback or private networks are used only when every
                         bootstrap node is on one.
  --port N               UDP port (default: any; serve: 6881; announce: see above)
  --bind ADDR            address to bind (default 0.0.0.0)
  --state FILE           routing table file (default $XDG_STATE_HOME/torrent-tools/dht.json,
                         ~/.local/state/torrent-tools/dht.json without XDG_STATE_HOME)
  --no-state             neither read nor write a routing table file
  --timeout S            give up after S seconds (default 30; --watch and serve: none)
  --trace                also print every query, reply, error and timeout, both ways, as
                         NDJSON on stdout beside the results: {"event":"query"|"reply"|
                         "error"|"timeout"|"malformed"|"unexpected"|"dropped",
                         "dir":"in"|"out",
                         "addr":"IP:PORT","q":METHOD,"t":TXID,…}; results have no "event"
                         (peers) or an event of their own
  -h, --help             show this help

examples:
  torrent-tools dht get-peers 'magnet:?xt=urn:btih:…' | torrent-tools fetch-pieces x.torrent | torrent-tools assemble x.torrent -o out/
  torrent-tools dht get-peers HASH --bootstrap 127.0.0.1:6881 --trace | jq -c 'select(.event == "reply")'
  torrent-tools dht serve --port 6881 | jq -c '{nodes, storedPeers}'
`;

function node(a: Args, io: Io, serving: boolean, port: number): DhtNode {
  const bootstrap = a.has('bootstrap') ? parseBootstrap(a.list('bootstrap')) : dhtBootstrapFromEnv(io.env);
  const print = (o: Record<string, unknown>): void => void io.stdout.write(JSON.stringify(o) + '\n');
  const n = new DhtNode({
    port,
    host: a.str('bind'),
    bootstrap,
    stateFile: a.bool('no-state') ? null : a.str('state') ?? defaultStateFile(io.env),
    // one-shot subcommands exit within seconds: as BEP 43 read-only nodes they leave no dead
    // entries in other nodes' tables; serve answers unless --read-only
    readOnly: a.bool('read-only') || !serving,
    trace: a.bool('trace') ? print : undefined,
  });
  n.on('log', (m) => report(io, 'dht', m));
  return n;
}

/** A hash from an INFOHASH or MAGNET argument (or a 40-hex node id for find-node). */
async function hashArg(arg: string | undefined, io: Io, what: string): Promise<Buffer> {
  if (arg === undefined) throw new UsageError(`expected ${what}`);
  const src = await loadTorrentArg(arg, io, 'dht', { allowMagnet: true, allowInfoHash: true });
  return src.infoHash;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export const dht: Command = {
  name: 'dht',
  synopsis: 'get-peers|announce|find-node|ping|serve [ARG] [--bootstrap HOST:PORT]... [--port N] [--state FILE | --no-state] [--trace] [--timeout S]',
  help: HELP,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub === undefined || !SUBCOMMANDS.includes(sub)) throw new UsageError(`expected a subcommand: ${SUBCOMMANDS.join(', ')}`);
    const a = parseArgs(rest, {
      string: ['bootstrap', 'port', 'bind', 'state', 'timeout', 'stats-interval'],
      repeat: ['bootstrap'],
      boolean: ['no-state', 'read-only', 'trace', 'watch', 'implied-port'],
    });
    const timeout = (a.int('timeout', 1, 86_400) ?? 30) * 1000;
    const print = (o: Record<string, unknown>): void => void io.stdout.write(JSON.stringify(o) + '\n');
    // validate the argument before any socket is opened
    let target: Buffer | null = null;
    let pingTo: { host: string; port: number } | null = null;
    if (sub === 'get-peers' || sub === 'announce') target = await hashArg(a.positional[0], io, 'INFOHASH or MAGNET');
    if (sub === 'find-node') {
      if (!/^[0-9a-fA-F]{40}$/.test(a.positional[0] ?? '')) throw new UsageError('find-node: expected a 40-hex node id');
      target = Buffer.from(a.positional[0]!, 'hex');
    }
    if (sub === 'ping') {
      pingTo = parseHostPort(a.positional[0] ?? '');
      if (!pingTo) throw new UsageError('ping: expected HOST:PORT');
    }
    if (sub === 'announce' && !a.has('port') && !a.bool('implied-port')) throw new UsageError('announce: --port P (the peer port to announce) is required');
    if (a.positional.length > (sub === 'serve' ? 0 : 1)) throw new UsageError('too many arguments');
    for (const [opt, only] of ONLY_FOR) if ((a.has(opt) || a.bool(opt)) && only !== sub) throw new UsageError(`--${opt} is an option of dht ${only}`);
    const bind = a.str('bind');
    if (bind !== undefined && isIP(bind) !== 4) throw new UsageError(`--bind: expected an IPv4 address, got ${JSON.stringify(bind)}`);
    // announce --port is the peer port announced; the UDP port is any, unless --implied-port
    // asks the nodes to take our UDP source port as the peer port: then it is that port
    const udpPort = sub === 'announce' ? (a.bool('implied-port') ? a.int('port', 1, 65535) ?? 0 : 0) : a.int('port', 0, 65535) ?? (sub === 'serve' ? 6881 : 0);

    const n = node(a, io, sub === 'serve', udpPort);
    try {
      await n.start();
    } catch (e) {
      throw new CliError(`cannot bind UDP port ${udpPort}: ${(e as Error).message}`);
    }
    // our reader gone (| head had enough, | fetch-pieces finished): stop at once, a normal end,
    // even between rounds when nothing is being written
    const endless = sub === 'serve' || a.bool('watch');
    const gone = (endless || sub === 'get-peers' ? io.readerGone : undefined) ?? new AbortController().signal;
    const bounds = [io.signal, gone];
    if (!endless || a.has('timeout')) bounds.push(AbortSignal.timeout(timeout));
    const deadline = AbortSignal.any(bounds);
    const silent = (): string => {
      const st = n.stats();
      return `no DHT node answered (${st.queriesSent} queries sent, ${st.timeouts} timed out${deadline.aborted ? `, stopped after ${timeout / 1000} s` : ''})`;
    };
    const stopped = (): number | null => (gone.aborted ? 0 : io.signal.aborted ? 130 : null);
    try {
      switch (sub) {
        case 'ping': {
          const t0 = Date.now();
          const ip = isIP(pingTo!.host) === 4 ? pingTo!.host : (await dnsLookup(pingTo!.host, { family: 4 }).catch(() => {
            throw new CliError(`${pingTo!.host}: cannot resolve it to an IPv4 address`);
          })).address;
          const id = await n.ping(ip, pingTo!.port).catch((e: Error) => {
            throw new CliError(e.message);
          });
          print({ event: 'pong', id: id.toString('hex'), ip, port: pingTo!.port, ms: Date.now() - t0 });
          return 0;
        }
        case 'find-node': {
          const r = await n.findNode(target!, { signal: deadline });
          for (const x of r.closest) print({ id: x.id.toString('hex'), ip: x.ip, port: x.port });
          if (stopped() !== null) return stopped()!;
          if (r.closest.length === 0) throw new CliError(silent());
          return 0;
        }
        case 'get-peers': {
          // across --watch rounds only new peers are printed (a bounded memory of them)
          const seen = new Set<string>();
          const onPeer = (p: { ip: string; port: number }): void => {
            const k = `${p.ip}|${p.port}`;
            if (seen.has(k)) return;
            if (seen.size >= 100_000) seen.clear();
            seen.add(k);
            io.stdout.write(peerLine({ ip: p.ip, port: p.port, source: 'dht' }));
          };
          let answered = false;
          for (;;) {
            const r = await n.getPeers(target!, onPeer, { signal: deadline });
            answered ||= r.responses > 0;
            if (!a.bool('watch')) {
              if (stopped() !== null) return stopped()!;
              if (r.responses === 0) throw new CliError(silent());
              report(io, 'dht', `${seen.size} peers from ${r.responses} nodes (${r.queries} queries)`);
              return 0;
            }
            await sleep(60_000, deadline);
            if (deadline.aborted) {
              if (gone.aborted || io.signal.aborted) return 0; // --watch ends on SIGINT
              if (!answered) throw new CliError(silent());
              return 0;
            }
          }
        }
        case 'announce': {
          const port = a.int('port', 1, 65535) ?? 1;
          const onPeer = (p: { ip: string; port: number }): void => void io.stdout.write(peerLine({ ip: p.ip, port: p.port, source: 'dht' }));
          const r = await n.getPeers(target!, onPeer, { signal: deadline });
          if (stopped() !== null) return stopped()!;
          const nodes = await n.announceTo(r.closest, target!, port, { impliedPort: a.bool('implied-port') });
          print({ event: 'announced', infoHash: target!.toString('hex'), port, ...(a.bool('implied-port') ? { impliedPort: true } : {}), nodes, queries: r.queries });
          if (nodes === 0) throw new CliError(r.responses === 0 ? silent() : `no node took the announce (${r.closest.length} asked)`);
          return 0;
        }
        default: {
          // serve
          print({ event: 'listening', ...n.stats() });
          const every = (a.int('stats-interval', 1, 3600) ?? 10) * 1000;
          const timer = setInterval(() => print({ event: 'stats', ...n.stats() }), every);
          await sleep(2 ** 31 - 1, deadline);
          clearInterval(timer);
          print({ event: 'stats', ...n.stats() });
          return 0;
        }
      }
    } finally {
      await n.close();
    }
  },
};
