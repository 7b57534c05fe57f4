/**
 * `download --serve [PORT]`: the option's optional value, and the server's start (its URL on
 * stderr and, with --json, as an event on stdout).
 */
import { CliError } from './errors.js';
import { printLine, report, type Io } from './io.js';
import type { TorrentSource } from '../metainfo/source.js';
import { StreamServer } from '../stream/server.js';

/**
 * `--serve` takes an optional port: `--serve 8888` and `--serve=8888` give it, a bare `--serve`
 * (followed by anything but digits) asks for a free one. minimist cannot say "optional value",
 * so the argument list is rewritten to the `--serve=VALUE` form first.
 */
export function serveArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let k = 0; k < argv.length; k++) {
    const x = argv[k]!;
    if (x === '--') {
      out.push(...argv.slice(k));
      break;
    }
    if (x !== '--serve') out.push(x);
    else if (k + 1 < argv.length && /^\d+$/.test(argv[k + 1]!)) out.push(`--serve=${argv[++k]!}`);
    else out.push('--serve=');
  }
  return out;
}

export interface Serving extends StreamServer {
  /** resolves when `signal` aborts (SIGINT): the server serves until then */
  until(signal: AbortSignal): Promise<void>;
}

/** Starts the stream server on 127.0.0.1:`port` and says where it is. */
export async function startServing(port: number, src: TorrentSource, io: Io, json: boolean): Promise<Serving> {
  const server = new StreamServer();
  const url = await server.listen(port).catch((e: Error) => {
    throw new CliError(`--serve: cannot listen on 127.0.0.1:${port} (${e.message})`);
  });
  report(io, 'download', `serving ${src.torrent?.name ?? src.name} on ${url}`);
  if (json) printLine(io, JSON.stringify({ event: 'serving', url, infoHash: src.infoHash.toString('hex') }));
  return Object.assign(server, {
    until: (signal: AbortSignal) => new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
    }),
  });
}
