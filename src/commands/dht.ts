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

const HELP = `usage: torrent-tools dht get-peers INFOHASH|MAGNET [--watch] [options]
       torrent-tools dht announce INFOHASH|MAGNET --port P [--implied-port] [options]
       torrent-tools dht find-node ID [options]
       torrent-tools dht ping HOST:PORT [options]
       torrent-tools dht serve [--port P] [--stats-interval S] [options]

A node of the BitTorrent DHT (BEP 5, Kademlia over UDP). Every subcommand starts a node,
bootstraps from --bootstrap (or the well-known routers, or the routing table saved by the
last run), does its job, and saves the routing table. The one-shot subcommands run as BEP 43
read-only nodes (they query, and leave no dead entry in others' tables); serve answers
ping, find_node, get_peers and announce_peer.

  get-peers   prints peers as NDJSON ({"ip","port","source":"dht"}) as they are found; ends
              when the lookup converges (--watch: looks again every minute until SIGINT)
  announce    get_peers, then announce_peer with the tokens received to the closest nodes;
              prints {"event":"announced","nodes":N} (and the peers found, as NDJSON)
  find-node   prints the closest nodes to ID as NDJSON {"id","ip","port"}
  ping        prints {"event":"pong","id":…,"ms":…}; exit 1 when no answer
  serve       runs a node until SIGINT; prints NDJSON stats every --stats-interval seconds

options:
  --bootstrap HOST:PORT  start from this node (repeatable; default: router.bittorrent.com,
                         dht.transmissionbt.com, router.utorrent.com, or
                         $TORRENT_TOOLS_DHT_BOOTSTRAP, a comma-separated list, '' for none).
                         Nodes on loopback or private networks are used only when every
                         bootstrap node is on one.
  --port N               UDP port (default: any; serve: 6881)
  --bind ADDR            address to bind (default 0.0.0.0)
  --state FILE           routing table file (default $XDG_STATE_HOME/torrent-tools/dht.json)
  --no-state             neither read nor write a routing table file
  --read-only            serve: BEP 43, query but never answer
  --timeout S            give up after S seconds (default 30)
  --trace                also print every query, reply, error and timeout as NDJSON
                         ({"event":"query",…}) on stdout, beside the results
  -h, --help             show this help

examples:
  torrent-tools dht get-peers 'magnet:?xt=urn:btih:…' | torrent-tools fetch-pieces x.torrent | torrent-tools assemble x.torrent -o out/
  torrent-tools dht get-peers HASH --bootstrap 127.0.0.1:6881 --trace | jq -c 'select(.event == "reply")'
  torrent-tools dht serve --port 6881 | jq -c '{nodes, storedPeers}'
`;

function node(a: Args, io: Io, serving: boolean): DhtNode {
  const bootstrap = a.has('bootstrap') ? parseBootstrap(a.list('bootstrap')) : dhtBootstrapFromEnv(io.env);
  const print = (o: Record<string, unknown>): void => void io.stdout.write(JSON.stringify(o) + '\n');
  const n = new DhtNode({
    port: a.int('port', 0, 65535) ?? (serving ? 6881 : 0),
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

export const dht: Command = {
  name: 'dht',
  synopsis: 'get-peers|announce|find-node|ping|serve ARG [--bootstrap HOST:PORT]... [--port N] [--state FILE | --no-state] [--trace] [--timeout S]',
  summary: 'the BitTorrent DHT (BEP 5): find and announce peers, inspect nodes, run a node',
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

    const n = node(a, io, sub === 'serve');
    try {
      await n.start();
    } catch (e) {
      throw new CliError(`cannot bind UDP port ${a.str('port') ?? 0}: ${(e as Error).message}`);
    }
    const deadline = AbortSignal.any([io.signal, AbortSignal.timeout(sub === 'serve' || a.bool('watch') ? 2 ** 31 - 1 : timeout)]);
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
          print({ event: 'pong', id: id.toString('hex'), ms: Date.now() - t0 });
          return 0;
        }
        case 'find-node': {
          const r = await n.findNode(target!, { signal: deadline });
          for (const x of r.closest) print({ id: x.id.toString('hex'), ip: x.ip, port: x.port });
          if (r.closest.length === 0) throw new CliError('no node answered');
          return 0;
        }
        case 'get-peers': {
          let found = 0;
          const onPeer = (p: { ip: string; port: number }): void => {
            found++;
            io.stdout.write(peerLine({ ip: p.ip, port: p.port, source: 'dht' }));
          };
          for (;;) {
            const r = await n.getPeers(target!, onPeer, { signal: deadline });
            if (!a.bool('watch')) {
              if (r.responses === 0) throw new CliError(`no DHT node answered (${r.queries} queries)`);
              report(io, 'dht', `${found} peers from ${r.responses} nodes (${r.queries} queries)`);
              return 0;
            }
            await new Promise<void>((resolve) => {
              const t = setTimeout(resolve, 60_000);
              io.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
            });
            if (io.signal.aborted) return 0;
          }
        }
        case 'announce': {
          const port = a.int('port', 1, 65535) ?? 1;
          const r = await n.announce(target!, port, { impliedPort: a.bool('implied-port'), signal: deadline, onPeer: (p) => io.stdout.write(peerLine({ ip: p.ip, port: p.port, source: 'dht' })) });
          print({ event: 'announced', infoHash: target!.toString('hex'), port, nodes: r.announced, queries: r.lookup.queries });
          if (r.announced === 0) throw new CliError('no node took the announce');
          return 0;
        }
        default: {
          // serve
          print({ event: 'listening', ...n.stats() });
          const every = (a.int('stats-interval', 1, 3600) ?? 10) * 1000;
          const timer = setInterval(() => print({ event: 'stats', ...n.stats() }), every);
          await new Promise<void>((resolve) => {
            if (io.signal.aborted) resolve();
            io.signal.addEventListener('abort', () => resolve(), { once: true });
          });
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
