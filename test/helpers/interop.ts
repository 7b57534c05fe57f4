/**
 * Which real interop tools this machine has. Tests that need one skip with a message naming
 * it when it is missing, so `npm test` passes on a fresh machine; .ci/run installs them all.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Debian's python3-libtorrent imports only under the system python (pyenv's comes first on PATH). */
export const SYSTEM_PYTHON = '/usr/bin/python3';

function ok(cmd: string, args: string[]): boolean {
  try {
    return spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 }).status === 0;
  } catch {
    return false;
  }
}

const cache = new Map<string, boolean>();
function cached(key: string, probe: () => boolean): boolean {
  let v = cache.get(key);
  if (v === undefined) cache.set(key, (v = probe()));
  return v;
}

export const hasLibtorrent = (): boolean => cached('libtorrent', () => ok(SYSTEM_PYTHON, ['-c', 'import libtorrent']));
export const hasCommand = (name: string): boolean => cached(name, () => ok('sh', ['-c', `command -v ${name}`]));

/** A `skip` option for node:test: false when the tool is there, else the message. */
export function skipUnless(present: boolean, what: string): false | string {
  return present ? false : `${what} is not installed (.ci/run installs it)`;
}

export const FIXTURES = new URL('../../../test/fixtures/', import.meta.url);

/** N python-libtorrent seeders of `torrent` from `dir` (test/fixtures/lt-seed.py); their ports, and a stop. */
export async function startLtSeeds(torrent: string, dir: string, n: number, env: Record<string, string> = {}): Promise<{ ports: number[]; stop: () => void }> {
  const child = spawn(SYSTEM_PYTHON, [fileURLToPath(new URL('lt-seed.py', FIXTURES)), torrent, dir, String(n)], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const lines = createInterface({ input: child.stdout! });
  const ports: number[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('lt-seed.py did not start within 60 s')), 60_000);
    lines.on('line', (l) => {
      ports.push(Number(l));
      if (ports.length === n) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (c) => reject(new Error(`lt-seed.py exited ${c}`)));
  });
  return { ports, stop: () => void child.kill('SIGKILL') };
}
