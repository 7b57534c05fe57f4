/**
 * Pipelines that end: the README's pipelines, word for word, against a local tracker and our
 * seed; every stage exits 0 by itself soon after `assemble` completes, with nothing on stderr.
 * An idle `announce --watch` or `dht get-peers --watch` whose reader goes away ends within a
 * second and says `stopped`; a one-shot `announce` leaves no peer behind on the tracker.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Server from 'bittorrent-tracker/server';
import { CLI, runCli } from './helpers/cli.js';
import { bytes, rng } from './helpers/random.js';
import { startSeed } from './helpers/swarm.js';
import { makeTorrentBytes, tmpDir, writeFiles } from './helpers/torrent.js';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));
const closers: Array<() => unknown> = [];
after(async () => {
  for (const c of closers) await c();
});

async function tracker(): Promise<{ url: string; server: Server; peers: () => number }> {
  const server = new Server({ http: true, udp: false, ws: false, stats: false });
  server.on('warning', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.http!.address() as AddressInfo).port}/announce`;
  // peers the tracker lists for every torrent (a swarm per info hash)
  const torrents = (server as unknown as { torrents: Record<string, { peers: { length: number } }> }).torrents;
  return { url, server, peers: () => Object.values(torrents).reduce((n, s) => n + s.peers.length, 0) };
}

/** The README's shell commands that announce and assemble (continuation lines joined). */
async function readmePipelines(): Promise<string[]> {
  const text = await readFile(README, 'utf8');
  const cmds: string[] = [];
  for (const block of text.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const joined = block[1]!.replace(/\\\n\s*/g, '');
    for (const line of joined.split('\n')) {
      // --serve-from listens on a fixed port: not one a test may take
      if (/^torrent-tools announce .*\| torrent-tools assemble /.test(line) && !line.includes('--serve-from')) cmds.push(line.replace(/\s+#.*$/, ''));
    }
  }
  return cmds;
}

test("the README's announce | fetch-pieces | assemble pipelines end by themselves, every stage 0, stderr clean", { timeout: 120_000 }, async (t) => {
  const trk = await tracker();
  const files = [{ path: ['a.bin'], data: bytes(rng(8), 600_000) }, { path: ['b.bin'], data: bytes(rng(9), 90_000) }];
  const dir = await tmpDir('tt-readme-');
  await writeFile(join(dir, 'x.torrent'), makeTorrentBytes('readme', files, 32768, [['announce', Buffer.from(trk.url)]]));
  await writeFiles(join(dir, 'data'), 'readme', files);
  const seed = await startSeed(join(dir, 'x.torrent'), join(dir, 'data'), { args: [] });
  closers.push(() => seed.stop());
  for (let i = 0; i < 50 && trk.peers() === 0; i++) await new Promise((r) => setTimeout(r, 100));
  const cmds = await readmePipelines();
  assert.ok(cmds.length >= 2, `the README shows these pipelines: ${cmds.join(' / ')}`);
  for (const [k, cmd] of cmds.entries()) {
    const cwd = join(dir, `run${k}`);
    await mkdir(cwd);
    await writeFile(join(cwd, 'x.torrent'), await readFile(join(dir, 'x.torrent')));
    const script = `torrent-tools() { "${process.execPath}" "${CLI}" "$@"; }\n${cmd}\necho "STATUS \${PIPESTATUS[*]}" >&2\n`;
    const t0 = Date.now();
    const res = await new Promise<{ code: number | null; err: string }>((resolve) => {
      const c = spawn('bash', ['-c', script], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      c.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const kill = setTimeout(() => c.kill('SIGKILL'), 60_000);
      c.on('close', (code) => {
        clearTimeout(kill);
        resolve({ code, err });
      });
    });
    const secs = (Date.now() - t0) / 1000;
    t.diagnostic(`${cmd}: ${secs.toFixed(2)} s`);
    const [status, ...rest] = res.err.split('\n').filter(Boolean).reverse();
    assert.equal(status, 'STATUS 0 0 0', `${cmd}: ${res.err}`);
    assert.deepEqual(rest, [], `${cmd}: nothing on stderr`);
    for (const f of files) assert.deepEqual(await readFile(join(cwd, 'out', 'readme', ...f.path)), f.data);
    assert.ok(secs < 15, `${cmd} ended by itself (${secs.toFixed(1)} s)`);
  }
  // nothing the pipelines said is left on the tracker: only the seed
  assert.equal(trk.peers(), 1);
});

/**
 * Runs `args` into a shell pipe whose reader quits after `readerSeconds` (a real pipe, as in a
 * user's shell: a spawned process gets a socket pair instead): resolves with the command's exit
 * status and how long it ran on after its reader had gone.
 */
async function closeReader(args: string[], readerSeconds: number): Promise<{ code: number; ms: number; err: string }> {
  const script = `"${process.execPath}" "${CLI}" "$@" 2>err.txt | { sleep ${readerSeconds}; date +%s%3N > gone.txt; }; echo "\${PIPESTATUS[0]}" > status.txt; date +%s%3N > end.txt`;
  const cwd = await tmpDir('tt-reader-');
  await new Promise<void>((resolve) => {
    const c = spawn('bash', ['-c', script, 'bash', ...args], { cwd, stdio: 'ignore' });
    const kill = setTimeout(() => c.kill('SIGKILL'), 30_000);
    c.on('close', () => {
      clearTimeout(kill);
      resolve();
    });
  });
  const read = (f: string): Promise<string> => readFile(join(cwd, f), 'utf8').then((x) => x.trim(), () => '');
  return { code: Number(await read('status.txt')), ms: Number(await read('end.txt')) - Number(await read('gone.txt')), err: await read('err.txt') };
}

test('an idle announce --watch whose reader has gone ends within a second, exit 0, and says stopped', async () => {
  const trk = await tracker();
  const dir = await tmpDir('tt-idle-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, makeTorrentBytes('idle', [{ path: ['a'], data: Buffer.alloc(1000) }], 16384, [['announce', Buffer.from(trk.url)]]));
  const stopped = new Promise<void>((r) => trk.server.once('stop', () => r()));
  const res = await closeReader(['announce', '--watch', tf], 1.5);
  assert.equal(res.code, 0, res.err);
  assert.ok(res.ms < 2000, `ended ${res.ms} ms after its reader went`);
  assert.equal(res.err, '');
  await stopped;
  assert.equal(trk.peers(), 0, 'nothing left on the tracker');
});

test('an idle dht get-peers --watch whose reader has gone ends within a second, exit 0', async () => {
  const res = await closeReader(['dht', 'get-peers', '0123456789abcdef0123456789abcdef01234567', '--watch', '--no-state', '--bootstrap', '127.0.0.1:9'], 1.5);
  assert.equal(res.code, 0, res.err);
  assert.ok(res.ms < 2000, `ended ${res.ms} ms after its reader went`);
});

test('a one-shot announce leaves nothing on the tracker (stopped after the reply); --event sends only that', async () => {
  const trk = await tracker();
  const dir = await tmpDir('tt-oneshot-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, makeTorrentBytes('oneshot', [{ path: ['a'], data: Buffer.alloc(1000) }], 16384, [['announce', Buffer.from(trk.url)]]));
  const r = await runCli(['announce', tf]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(trk.peers(), 0, 'the one-shot announce took itself off');
  const e = await runCli(['announce', tf, '--event', 'started', '--port', '7']);
  assert.equal(e.code, 0, e.stderr);
  assert.equal(trk.peers(), 1, '--event started: listed, as asked');
});

test('a download that fails half-way (a symlink in the way, or SIGINT) still says stopped to the tracker', { timeout: 60_000 }, async () => {
  const trk = await tracker();
  const dir = await tmpDir('tt-failway-');
  // multi-file, so that a symlink standing for the torrent's folder is in the way
  const data = bytes(rng(44), 4 * 1024 * 1024);
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, makeTorrentBytes('half', [{ path: ['big.bin'], data }], 16384, [['announce', Buffer.from(trk.url)]]));
  const { symlink } = await import('node:fs/promises');
  await mkdir(join(dir, 'out1'));
  await symlink('/tmp', join(dir, 'out1', 'half'));
  const started = (): Promise<void> => new Promise((r) => trk.server.once('start', () => r()));
  const stopped = (): Promise<void> => new Promise((r) => trk.server.once('stop', () => r()));
  let s = stopped();
  const bad = await runCli(['download', tf, '-o', join(dir, 'out1'), '--no-dht', '--quiet', '--port', '0'], { timeoutMs: 30_000 });
  assert.equal(bad.code, 1, bad.stderr);
  assert.match(bad.stderr, /symlink|symbolic link/i);
  await s;
  assert.equal(trk.peers(), 0, 'nothing left on the tracker');
  // SIGINT mid-way (checking the files already there, or waiting for peers)
  await writeFiles(join(dir, 'out2'), 'half', [{ path: ['big.bin'], data }]);
  const st = started();
  s = stopped();
  const c = spawn(process.execPath, [CLI, 'download', tf, '-o', join(dir, 'out2'), '--no-dht', '--quiet', '--port', '0'], { stdio: 'ignore' });
  await st;
  c.kill('SIGINT');
  const code = await new Promise<number | null>((r) => c.on('close', (x) => r(x)));
  assert.equal(code, 130);
  await s;
  assert.equal(trk.peers(), 0, 'nothing left on the tracker');
});
