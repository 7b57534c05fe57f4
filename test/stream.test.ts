/**
 * Streaming (`download --serve`): the Range header, content types and the readers' priority
 * window as units; the server in-process over a stand-in swarm (waits for pieces, steers the
 * priority, lets go of a reader that disconnects); and `download --serve` as a real process
 * against our own seed held to 2 MiB/s, read with node's http client and curl while the
 * download runs, every byte compared with the source.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { serveArgv } from '../src/cli/serve.js';
import { contentType } from '../src/stream/mime.js';
import { parseRange } from '../src/stream/range.js';
import { StreamServer } from '../src/stream/server.js';
import { priorityOf } from '../src/stream/window.js';
import { CLI } from './helpers/cli.js';
import { bytes, rng } from './helpers/random.js';
import { startSeedOf, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles } from './helpers/torrent.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const seeds: SeedProc[] = [];
const servers: StreamServer[] = [];
after(async () => {
  await Promise.all([...seeds.map((s) => s.stop()), ...servers.map((s) => s.close())]);
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  ms: number;
}

function get(url: string, options: { method?: string; range?: string } = {}): Promise<Reply> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.range ? { Range: options.range } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: Date.now() - t0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error(`${url}: timed out`)));
    req.end();
  });
}

test('Range header: single ranges, suffixes, 416, and what is ignored', () => {
  const cases: Array<[string | undefined, number, ReturnType<typeof parseRange>]> = [
    [undefined, 100, null],
    ['bytes=0-9', 100, { start: 0, end: 9 }],
    ['bytes=90-', 100, { start: 90, end: 99 }],
    ['bytes=90-1000', 100, { start: 90, end: 99 }],
    ['bytes=-10', 100, { start: 90, end: 99 }],
    ['bytes=-1000', 100, { start: 0, end: 99 }],
    ['bytes=5-5, 10-20', 100, { start: 5, end: 5 }], // multi-range: the first one
    ['BYTES = 1-2', 100, { start: 1, end: 2 }],
    ['bytes=100-', 100, 'unsatisfiable'],
    ['bytes=-0', 100, 'unsatisfiable'],
    ['bytes=0-', 0, 'unsatisfiable'],
    ['bytes=9-5', 100, null], // invalid: ignored, the whole file
    ['bytes=-', 100, null],
    ['items=0-5', 100, null],
    ['bytes=abc', 100, null],
    ['bytes=1234567890123456789-', 100, null],
  ];
  for (const [h, size, want] of cases) assert.deepEqual(parseRange(h, size), want, `${h} of ${size}`);
});

test('--serve takes an optional port', () => {
  assert.deepEqual(serveArgv(['x.torrent', '--serve', '8888', '-o', 'out']), ['x.torrent', '--serve=8888', '-o', 'out']);
  assert.deepEqual(serveArgv(['--serve', 'x.torrent', '-o', 'out']), ['--serve=', 'x.torrent', '-o', 'out']);
  assert.deepEqual(serveArgv(['x.torrent', '--serve']), ['x.torrent', '--serve=']);
  assert.deepEqual(serveArgv(['--serve=0', '--', '--serve']), ['--serve=0', '--', '--serve']);
});

test('Content-Type by extension, octet-stream otherwise', () => {
  assert.equal(contentType('a/Movie.MKV'), 'video/x-matroska');
  assert.equal(contentType('x.mp4'), 'video/mp4');
  assert.equal(contentType('song.flac'), 'audio/flac');
  assert.equal(contentType('readme.txt'), 'text/plain; charset=utf-8');
  assert.equal(contentType('noext'), 'application/octet-stream');
  assert.equal(contentType('x.constructor'), 'application/octet-stream');
});

test('priority window: each reader\'s blocking piece first, then the windows in turn', () => {
  const have = (i: number) => i === 1 || i === 11;
  const p = priorityOf([{ pos: 0, end: 100 * 10 }, { pos: 10 * 100 + 50, end: 100 * 100 }, { pos: 500, end: 500 }], 100, 4, have);
  assert.deepEqual(p, { pieces: [0, 10, 2, 12, 3, 13], urgent: 2 });
  // a reader near its end: the window stops at its last piece
  assert.deepEqual(priorityOf([{ pos: 250, end: 320 }], 100, 8, () => false), { pieces: [2, 3], urgent: 1 });
});

/** A stand-in for the swarm: pieces appear when the test says, priorities are recorded. */
class FakeSwarm extends EventEmitter<{ written: [number] }> {
  readonly have = new Set<number>();
  readonly servable = { has: (i: number) => this.have.has(i) };
  readonly priorities: Array<{ pieces: number[]; urgent: number }> = [];
  prioritize(pieces: readonly number[], urgent: number): void {
    this.priorities.push({ pieces: [...pieces], urgent });
  }
  write(i: number): void {
    this.have.add(i);
    this.emit('written', i);
  }
}

test('server: waits for pieces, steers the swarm, lets go of a reader that leaves', async () => {
  const dir = await tmpDir('tt-stream-unit-');
  const PL = 64 * KiB;
  const r = rng(41);
  const files = [{ path: ['a.mp4'], data: bytes(r, 40 * PL + 100) }, { path: ['b.txt'], data: bytes(r, 1000) }];
  const { torrent, content } = makeTorrent('unit', files, PL);
  await writeFiles(dir, 'unit', files);
  const swarm = new FakeSwarm();
  const server = new StreamServer({ windowBytes: 4 * PL });
  servers.push(server);
  const base = await server.listen(0);
  // a request before the torrent is known waits for it
  const early = get(base + 'a.mp4', { method: 'HEAD' });
  await new Promise((res) => setTimeout(res, 100));
  await server.attach({ torrent, dir, swarm, files: new Set([0]) });
  assert.equal((await early).status, 200, 'answered once attached');
  assert.equal((await early).headers['content-length'], String(40 * PL + 100));
  assert.equal((await get(base + 'b.txt')).status, 404, 'not selected');
  assert.equal((await get(base + 'nothing')).status, 404);
  assert.equal((await get(base + 'a.mp4', { method: 'POST' })).status, 405);
  // a range over pieces 20..21: answered once both are on disk, the window asked for meanwhile
  const pending = get(base + 'a.mp4', { range: `bytes=${20 * PL + 10}-${21 * PL + 10}` });
  await new Promise((res) => setTimeout(res, 100));
  assert.deepEqual(swarm.priorities.at(-1), { pieces: [20, 21], urgent: 1 });
  swarm.write(20);
  await new Promise((res) => setTimeout(res, 50));
  assert.deepEqual(swarm.priorities.at(-1), { pieces: [21], urgent: 1 }, 'the window moves on as pieces arrive');
  swarm.write(21);
  const got = await pending;
  assert.equal(got.status, 206);
  assert.equal(got.headers['content-range'], `bytes ${20 * PL + 10}-${21 * PL + 10}/${40 * PL + 100}`);
  assert.ok(got.body.equals(content.subarray(20 * PL + 10, 21 * PL + 11)));
  assert.deepEqual(swarm.priorities.at(-1), { pieces: [], urgent: 0 }, 'done: no priority left');
  // a reader that disconnects while waiting is dropped with its window
  await new Promise<void>((resolve) => {
    const req = request(base + 'a.mp4', { headers: { Range: 'bytes=0-' } });
    req.on('error', () => {});
    req.end();
    setTimeout(() => {
      assert.equal(server.responses, 1);
      req.destroy();
      resolve();
    }, 100);
  });
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(server.responses, 0, 'the response that lost its client is gone');
  assert.deepEqual(swarm.priorities.at(-1), { pieces: [], urgent: 0 });
  await server.close();
});

test('download --serve: range reads while downloading, a fast seek to the end, served after', async (t) => {
  const dir = await tmpDir('tt-stream-');
  const PL = 256 * KiB;
  const size = 24 * MiB + 123;
  const r = rng(42);
  const files = [{ path: ['movie.mp4'], data: bytes(r, size) }, { path: ['notes', 'read me.txt'], data: bytes(r, 3000) }, { path: ['extra.bin'], data: bytes(r, 2 * MiB) }];
  const { bytes: tb, content } = makeTorrent('film', files, PL);
  const movie = content.subarray(0, size);
  const tf = join(dir, 'film.torrent');
  await writeFile(tf, tb);
  await writeFiles(join(dir, 'data'), 'film', files);
  const seed = await startSeedOf([tf, join(dir, 'data')], { args: ['--no-announce', '--max-upload-rate', '2M'] });
  seeds.push(seed);
  const child = spawn(process.execPath, [CLI, 'download', tf, '-o', join(dir, 'out'), '--peer', `127.0.0.1:${seed.port}`, '--serve', '--json',
    '--no-announce', '--no-dht', '--port', '0', '--select', 'movie.mp4', '--select', 'notes/read me.txt'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  let pieces = 0;
  let complete: () => void = () => {};
  const completed = new Promise<void>((res) => (complete = res));
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      const ev = JSON.parse(l) as { event: string; url?: string };
      if (ev.event === 'serving') resolve(ev.url!);
      if (ev.event === 'piece') pieces++;
      if (ev.event === 'complete') complete();
    });
    child.on('exit', () => reject(new Error(`download exited: ${stderr}`)));
  });
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const total = Math.ceil(size / PL) + 1;
  // the index lists the selected files, with sizes and links (ready once the job attached)
  let index = await get(url);
  for (let k = 0; k < 50 && !index.body.toString().includes('<li>'); k++) index = await new Promise((res) => setTimeout(() => res(get(url)), 100));
  assert.equal(index.status, 200);
  assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
  assert.match(index.body.toString(), /<a href="\/movie.mp4">movie.mp4<\/a> 25165947 bytes/);
  assert.match(index.body.toString(), /<a href="\/notes\/read%20me.txt">notes\/read me.txt<\/a> 3000 bytes/);
  assert.doesNotMatch(index.body.toString(), /extra\.bin/);
  // HEAD
  const head = await get(url + 'movie.mp4', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(size));
  assert.equal(head.headers['content-type'], 'video/mp4');
  assert.equal(head.headers['accept-ranges'], 'bytes');
  assert.equal(head.body.length, 0);
  // a seek to the end while the download is far from there: answered in seconds
  const before = pieces;
  const end = await get(url + 'movie.mp4', { range: 'bytes=-100000' });
  t.diagnostic(`seek to the end: first byte… whole 100 kB range in ${end.ms} ms, ${before} of ${total} pieces on disk before, ${pieces} after`);
  assert.equal(end.status, 206);
  assert.equal(end.headers['content-range'], `bytes ${size - 100000}-${size - 1}/${size}`);
  assert.ok(end.body.equals(movie.subarray(size - 100000)), 'end bytes');
  assert.ok(end.ms < 5000, `the seek took ${end.ms} ms`);
  assert.ok(pieces < total * 0.6, `answered while far from the end (${pieces} of ${total} pieces on disk)`);
  // the middle and the start, with node's client and curl
  const mid = await get(url + 'movie.mp4', { range: `bytes=${12 * MiB}-${13 * MiB + 99}` });
  t.diagnostic(`middle 1 MiB in ${mid.ms} ms`);
  assert.equal(mid.status, 206);
  assert.ok(mid.body.equals(movie.subarray(12 * MiB, 13 * MiB + 100)), 'middle bytes');
  const hasCurl = spawnSync('curl', ['--version']).status === 0;
  if (hasCurl) {
    const c = spawnSync('curl', ['-sS', '-r', '0-299999', url + 'movie.mp4'], { maxBuffer: 4 * MiB, timeout: 30_000 });
    assert.equal(c.status, 0, c.stderr.toString());
    assert.ok(c.stdout.equals(movie.subarray(0, 300000)), 'start bytes by curl');
  } else t.diagnostic('curl missing: the start read with node\'s client only');
  const start = await get(url + 'movie.mp4', { range: 'bytes=0-299999' });
  assert.ok(start.body.equals(movie.subarray(0, 300000)), 'start bytes');
  const txt = await get(url + 'notes/read%20me.txt');
  assert.equal(txt.headers['content-type'], 'text/plain; charset=utf-8');
  assert.ok(txt.body.equals(content.subarray(size, size + 3000)));
  // 416, and 404 for the file not selected
  const bad = await get(url + 'movie.mp4', { range: `bytes=${size}-` });
  assert.equal(bad.status, 416);
  assert.equal(bad.headers['content-range'], `bytes */${size}`);
  assert.equal((await get(url + 'extra.bin')).status, 404);
  // readers that disconnect mid-stream do not keep their slots (16): 20 of them, then one more
  for (let k = 0; k < 20; k++) {
    await new Promise<void>((resolve) => {
      const req = request(url + 'movie.mp4', (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => resolve());
      req.end();
    });
  }
  await new Promise((res) => setTimeout(res, 200));
  const after20 = await get(url + 'movie.mp4', { range: 'bytes=1000-1999' });
  assert.equal(after20.status, 206, 'a slot is free after 20 readers left');
  // served on after the download completes, the whole file, until SIGINT
  await completed;
  const whole = await get(url + 'movie.mp4');
  assert.equal(whole.status, 200);
  assert.ok(whole.body.equals(movie), 'the whole file after completion');
  child.kill('SIGINT');
  const code = await new Promise<number | null>((res) => (child.exitCode !== null ? res(child.exitCode) : child.on('exit', res)));
  clearTimeout(killer);
  assert.equal(code, 0, stderr);
  assert.match(stderr, /serving film on http:\/\/127\.0\.0\.1:\d+\//);
});

test('download --serve refuses several torrents', async () => {
  const child = spawnSync(process.execPath, [CLI, 'download', 'a.torrent', 'b.torrent', '-o', 'x', '--serve', '--no-dht'], { encoding: 'utf8' });
  assert.equal(child.status, 2);
  assert.match(child.stderr, /--serve streams one torrent/);
});
