/** Real seed processes on loopback for swarm tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CLI } from './cli.js';

export interface SeedProc {
  port: number;
  child: ChildProcess;
  stderr: () => string;
  stop: () => Promise<void>;
}

export function startSeed(torrent: string, dir: string, options: SeedOptions = {}): Promise<SeedProc> {
  return startSeedOf([torrent, dir], options);
}

export interface SeedOptions {
  env?: Record<string, string>;
  args?: string[];
  port?: number;
  /** --host (default 127.0.0.1) */
  host?: string;
}

/** `seed` with these positionals: TORRENT... DIR, or FOLDER... */
export async function startSeedOf(positionals: string[], options: SeedOptions = {}): Promise<SeedProc> {
  const child = spawn(process.execPath, [CLI, 'seed', ...positionals, '--port', String(options.port ?? 0), '--host', options.host ?? '127.0.0.1', '--quiet', ...(options.args ?? ['--no-announce'])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`seed did not start: ${err}`)), 20_000);
    lines.once('line', (l) => {
      clearTimeout(timer);
      const ev = JSON.parse(l) as { event: string; port: number };
      resolve(ev.port);
    });
    child.once('exit', (code) => reject(new Error(`seed exited ${code}: ${err}`)));
  });
  lines.on('line', () => {});
  return {
    port,
    child,
    stderr: () => err,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGINT');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}

export function peerArgs(seeds: SeedProc[]): string[] {
  return seeds.flatMap((s) => ['--peer', `127.0.0.1:${s.port}`]);
}
