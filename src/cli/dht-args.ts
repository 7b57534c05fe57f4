/**
 * DHT options shared by `dht`, `download` and `fetch-pieces`: where to bootstrap from
 * (--bootstrap, else $TORRENT_TOOLS_DHT_BOOTSTRAP, else the well-known routers) and where the
 * routing table is kept.
 */
import type { LogLevel } from '../log.js';
import { DhtNode } from '../dht/node.js';
import type { SharedUdp } from '../net/udp-socket.js';
import { defaultStateFile } from '../dht/state.js';
import { parseHostPort } from '../peers/record.js';
import type { Args } from './args.js';
import { UsageError } from './errors.js';
import { report, type Io } from './io.js';

export function parseBootstrap(values: readonly string[], where = '--bootstrap'): Array<{ host: string; port: number }> {
  return values.map((v) => {
    const hp = parseHostPort(v);
    if (!hp) throw new UsageError(`${where}: expected HOST:PORT, got ${JSON.stringify(v)}`);
    return hp;
  });
}

/** The bootstrap list from the environment; undefined when unset (use the routers). */
export function dhtBootstrapFromEnv(env: Readonly<Record<string, string | undefined>>): Array<{ host: string; port: number }> | undefined {
  const v = env['TORRENT_TOOLS_DHT_BOOTSTRAP'];
  if (v === undefined) return undefined;
  return parseBootstrap(v.split(',').map((s) => s.trim()).filter(Boolean), 'TORRENT_TOOLS_DHT_BOOTSTRAP');
}

/** The argument spec fragment for commands that run a DHT node inside. */
export const DHT_STRING_OPTIONS = ['bootstrap', 'dht-port'];
export const DHT_BOOLEAN_OPTIONS = ['no-dht'];
export const DHT_HELP = `  --no-dht             do not use the DHT (it is never used for a private torrent)
  --bootstrap HOST:PORT  DHT node to start from (repeatable; default: the well-known routers or
                       $TORRENT_TOOLS_DHT_BOOTSTRAP)
  --dht-port N         a UDP port of its own for our DHT node (default: the one UDP
                       socket uTP and UDP trackers use, on the --port number when listening)
`;

/**
 * Starts the DHT node a download uses, unless turned off or the torrent is private; null then.
 * Its lines go to `log` by level (an unreachable bootstrap router is routine: -v shows it).
 * It runs on `udp` (the session's socket) unless --dht-port asks for a port of its own.
 */
export async function startClientDht(a: Args, io: Io, cmd: string, isPrivate: boolean, log: (line: string, level: LogLevel) => void = (m) => report(io, cmd, m), udp: SharedUdp | null = null): Promise<DhtNode | null> {
  if (a.bool('no-dht') || isPrivate) return null;
  const node = new DhtNode({
    udp: a.has('dht-port') ? null : udp,
    port: a.int('dht-port', 0, 65535) ?? 0,
    bootstrap: a.has('bootstrap') ? parseBootstrap(a.list('bootstrap')) : dhtBootstrapFromEnv(io.env),
    stateFile: defaultStateFile(io.env),
  });
  node.on('log', (m, level) => log(`dht: ${m}`, level));
  try {
    await node.start();
  } catch (e) {
    report(io, cmd, `warning: DHT off: cannot bind its UDP port (${(e as Error).message})`);
    return null;
  }
  return node;
}
