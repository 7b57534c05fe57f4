/**
 * `npm run demo`: the whole toolkit on a loopback swarm, no network needed.
 * Makes a sample multi-file data set, `create`s a torrent, starts a tracker (npm
 * bittorrent-tracker) and three `seed` processes, runs the documented pipeline
 * `announce --watch | fetch-pieces | assemble`, checks the result against the source, and
 * cleans up every process it started (also on Ctrl-C).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const children: ChildProcess[] = [];
let dir = '';
let closeTracker: () => void = () => {};

function say(s: string): void {
  process.stderr.write(`\x1b[1mdemo:\x1b[0m ${s}\n`);
}

async function cleanup(): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 300));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  closeTracker();
  if (dir) await rm(dir, { recursive: true, force: true });
}

process.on('SIGINT', () => {
  say('interrupted: cleaning up');
  void cleanup().then(() => process.exit(130));
});

function run(args: string[], opts: { stdin?: 'ignore' | NodeJS.ReadableStream; stdout?: 'pipe' | 'inherit' | 'ignore' } = {}): ChildProcess {
  const c = spawn(process.execPath, [CLI, ...args], { stdio: [opts.stdin ?? 'ignore', opts.stdout ?? 'pipe', 'inherit'] as never });
  children.push(c);
  return c;
}

const exited = (c: ChildProcess): Promise<number> => new Promise((r) => (c.exitCode !== null ? r(c.exitCode) : c.on('exit', (code) => r(code ?? 1))));

async function main(): Promise<void> {
  dir = await mkdtemp(join(tmpdir(), 'torrent-tools-demo-'));
  const src = join(dir, 'src', 'sample');
  await mkdir(join(src, 'photos'), { recursive: true });
  const files: Array<[string, number]> = [['video.bin', 40 << 20], ['photos/one.jpg', 3 << 20], ['photos/two.jpg', 5_000_123], ['readme.txt', 1234]];
  for (const [p, n] of files) await writeFile(join(src, p), randomBytes(n));
  say(`made a sample data set: ${files.length} files, ${(files.reduce((a, [, n]) => a + n, 0) / 1048576).toFixed(1)} MiB, in ${src}`);

  const { default: Server } = await import('bittorrent-tracker/server');
  const tracker = new Server({ http: true, udp: false, ws: false, stats: false });
  tracker.on('warning', () => {});
  await new Promise<void>((r) => tracker.listen({ http: 0 }, { http: '127.0.0.1' }, () => r()));
  closeTracker = () => tracker.close();
  const url = `http://127.0.0.1:${(tracker.http!.address() as AddressInfo).port}/announce`;
  say(`started a tracker at ${url}`);

  const tf = join(dir, 'sample.torrent');
  const create = run(['create', src, '--announce', url, '-o', tf, '--quiet']);
  if ((await exited(create)) !== 0) throw new Error('create failed');
  const info = run(['info', tf]);
  let infoLine = '';
  info.stdout!.on('data', (c: Buffer) => (infoLine += c.toString()));
  await exited(info);
  const meta = JSON.parse(infoLine) as { infoHash: string; pieceCount: number; length: number };
  say(`torrent-tools create → ${tf} (info hash ${meta.infoHash}, ${meta.pieceCount} pieces)`);

  for (let i = 0; i < 3; i++) {
    const s = run(['seed', tf, join(dir, 'src'), '--port', '0', '--host', '127.0.0.1', '--quiet']);
    const port = await new Promise<number>((resolve, reject) => {
      createInterface({ input: s.stdout! }).once('line', (l) => resolve((JSON.parse(l) as { port: number }).port));
      s.once('exit', () => reject(new Error('a seed process failed to start')));
    });
    say(`torrent-tools seed #${i + 1} listening on 127.0.0.1:${port}`);
  }
  await new Promise((r) => setTimeout(r, 500)); // let the seeds' announces land

  const out = join(dir, 'out');
  // the README's pipeline, run by a shell as a user would: it ends by itself once assemble is done
  // (the demo's swarm is on loopback: no DHT, which would reach for the internet's routers)
  const pipe = `torrent-tools announce --watch sample.torrent | torrent-tools fetch-pieces sample.torrent --no-dht | torrent-tools assemble sample.torrent -o out --quiet`;
  say(`running, in ${dir}: ${pipe}`);
  const t0 = Date.now();
  const shell = spawn('bash', ['-c', `torrent-tools() { "${process.execPath}" "${CLI}" "$@"; }\n${pipe}\necho "\${PIPESTATUS[*]}" >&3`], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'inherit', 'pipe'], // fetch-pieces draws its progress bar on a terminal
  });
  children.push(shell);
  let events = 0;
  createInterface({ input: shell.stdout! }).on('line', () => events++);
  let statuses = '';
  shell.stdio[3]!.on('data', (b: Buffer) => (statuses += b.toString()));
  await exited(shell);
  const secs = (Date.now() - t0) / 1000;
  if (statuses.trim() !== '0 0 0') throw new Error(`the pipeline failed (exit statuses ${statuses.trim() || 'unknown'})`);
  say(`every stage exited 0 by itself (announce noticed that its reader had gone)`);
  say(`assemble printed ${events} events; downloaded ${(meta.length / 1048576).toFixed(1)} MiB in ${secs.toFixed(2)} s (${(meta.length / 1048576 / secs).toFixed(0)} MiB/s)`);

  for (const [p] of files) {
    const [a, b] = await Promise.all([readFile(join(src, p)), readFile(join(out, 'sample', p))]);
    const ha = createHash('sha1').update(a).digest('hex');
    if (ha !== createHash('sha1').update(b).digest('hex')) throw new Error(`${p} differs from the source`);
    say(`verified ${p}: sha1 ${ha}`);
  }
  say('every file is byte-identical to the source. Cleaning up.');
}

main().then(
  async () => {
    await cleanup();
    process.exitCode = 0;
  },
  async (e: Error) => {
    say(`failed: ${e.message}`);
    await cleanup();
    process.exitCode = 1;
  },
);
