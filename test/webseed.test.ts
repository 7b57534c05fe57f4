/**
 * Web seeds (BEP 19) end to end: real HTTP servers on loopback (test/helpers/range-server.ts),
 * each web seed an in-process peer the swarm dials (src/webseed/web-seed-peer.ts).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { download, type DownloadEvent } from '../src/client/download.js';
import type { BValue } from '../src/bencode/index.js';
import { magnetFromTorrent } from '../src/metainfo/magnet.js';
import { parseTorrent } from '../src/metainfo/torrent.js';
import { fileUrl, HttpRangeError, RangeClient } from '../src/webseed/http-range.js';
import { rangeSpans, WebSeedPeer } from '../src/webseed/web-seed-peer.js';
import { PeerConnection } from '../src/wire/peer-connection.js';
import { makePeerId, type WireMessage } from '../src/wire/protocol.js';
import { CLI, runCli, runShell } from './helpers/cli.js';
import { hasCommand, hasLibtorrent, skipUnless, startLtSeeds } from './helpers/interop.js';
import { bytes, rng } from './helpers/random.js';
import { startLighttpd, startRangeServer, type RangeServer, type RangeServerOptions } from './helpers/range-server.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrentBytes, tmpDir, writeFiles, type TestFile } from './helpers/torrent.js';

const PL = 32 * 1024;
const r = rng(19);
const SINGLE_NAME = 'a b#1 %ü?.bin';
const single: TestFile[] = [{ path: [SINGLE_NAME], data: bytes(r, 45 * PL + 1234) }];
const MULTI_NAME = 'set & more';
const multi: TestFile[] = [
  { path: ['one file.bin'], data: bytes(r, 7 * PL + 100) },
  { path: ['dir #2', 'tiny?.txt'], data: bytes(r, 900) },
  { path: ['dir #2', '%20ü.bin'], data: bytes(r, 20 * PL + 5) },
  { path: ['last.bin'], data: bytes(r, 3 * PL) },
];

const servers: RangeServer[] = [];
const seeds: SeedProc[] = [];
const stops: Array<() => void> = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(seeds.map((s) => s.stop()));
  for (const s of stops) s();
});

/** A torrent (url-list given) and the server paths of its files under '/pub/'. */
function torrentOf(name: string, files: TestFile[], isSingle: boolean, urlList: string[] = []): Buffer {
  const extra: Array<[string, BValue]> = urlList.length > 0 ? [['url-list', urlList.map((u) => Buffer.from(u))]] : [];
  return makeTorrentBytes(name, files, PL, extra, isSingle);
}

function served(name: string, files: TestFile[], isSingle: boolean): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (const f of files) m.set(isSingle ? `/pub/${name}` : `/pub/${name}/${f.path.join('/')}`, f.data);
  return m;
}

async function server(files: Map<string, Buffer>, o: RangeServerOptions = {}): Promise<RangeServer> {
  const s = await startRangeServer(files, o);
  servers.push(s);
  return s;
}

/** The multi-file torrent as x.torrent and its complete data in DIR/data, for a seeder beside the web seeds. */
async function multiOnDisk(): Promise<{ dir: string; tb: Buffer; tf: string }> {
  const dir = await tmpDir('tt-ws-');
  const tb = torrentOf(MULTI_NAME, multi, false);
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  await writeFiles(join(dir, 'data'), MULTI_NAME, multi);
  return { dir, tb, tf };
}

async function same(out: string, name: string, files: TestFile[], isSingle: boolean): Promise<void> {
  for (const f of files) {
    const p = isSingle ? join(out, name) : join(out, name, ...f.path);
    assert.ok((await readFile(p)).equals(f.data), p);
  }
}

/** Runs a library download; its events and log lines. */
async function fetchAll(tb: Buffer, opts: Parameters<typeof download>[2] = {}): Promise<{ dir: string; events: DownloadEvent[]; log: string[] }> {
  const dir = await tmpDir('tt-ws-');
  const log: string[] = [];
  const events: DownloadEvent[] = [];
  const job = download(parseTorrent(tb), dir, { announce: false, port: 0, timeoutMs: 30_000, log: (l) => log.push(l), ...opts });
  job.on('event', (e) => events.push(e));
  try {
    await job;
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${log.join('\n')}`);
  }
  return { dir, events, log };
}

function sourcesOf(events: DownloadEvent[]): Array<{ peer: string; bytes: number; webSeed?: boolean }> {
  const s = events.find((e) => e.event === 'sources');
  assert.ok(s && s.event === 'sources', 'a sources record');
  return s.sources;
}

test('BEP 19 URLs: single-file (with and without a trailing slash), multi-file, percent-encoded', () => {
  assert.equal(fileUrl('http://h/pub/', 'a b#?.bin', ['a b#?.bin'], false), 'http://h/pub/a%20b%23%3F.bin');
  assert.equal(fileUrl('http://h/file.iso', 'x', ['x'], false), 'http://h/file.iso');
  assert.equal(fileUrl('http://h/pub/', 'set & more', ['dir #2', '%20ü.bin'], true), 'http://h/pub/set%20%26%20more/dir%20%232/%2520%C3%BC.bin');
  assert.equal(fileUrl('http://h/pub', 'n', ['f'], true), 'http://h/pub/n/f');
});

test('a run of pieces maps onto file spans across file boundaries', () => {
  const t = parseTorrent(torrentOf(MULTI_NAME, multi, false));
  const spans = rangeSpans(t, 5 * PL + 10, 4 * PL);
  // file 0 is 7 PL + 100 long: the run crosses into file 1 (900 bytes) and file 2
  assert.deepEqual(spans, [
    { file: 0, fileOffset: 5 * PL + 10, length: 2 * PL + 90 },
    { file: 1, fileOffset: 0, length: 900 },
    { file: 2, fileOffset: 0, length: 4 * PL - (2 * PL + 90) - 900 },
  ]);
  const total = rangeSpans(t, 0, t.length).reduce((n, s) => n + s.length, 0);
  assert.equal(total, t.length);
});

test('range client: Content-Range checked, 200 streamed and cut short, 404 typed, redirects bounded', async () => {
  const data = bytes(r, 300_000);
  const s = await server(new Map([['/f', data]]), { redirectPrefix: '/old/' });
  const c = new RangeClient({ timeoutMs: 5000 });
  const got: Buffer[] = [];
  const sink = { onData: (b: Buffer) => (got.push(Buffer.from(b)), true), drained: () => Promise.resolve() };
  await c.fetch(`${s.url}old/f`, 1000, 5000, sink);
  assert.ok(Buffer.concat(got).equals(data.subarray(1000, 6000)));
  await assert.rejects(c.fetch(`${s.url}nothing`, 0, 10, sink), (e: unknown) => e instanceof HttpRangeError && e.kind === 'not-found' && /404/.test(e.message));
  // past the end: the server says 416, which is a bad reply, not a retry forever
  await assert.rejects(c.fetch(`${s.url}f`, 400_000, 10, sink), (e: unknown) => e instanceof HttpRangeError && e.kind === 'bad-reply');
  const loop = await server(new Map(), { redirectPrefix: '/' });
  await assert.rejects(c.fetch(`${loop.url}x`, 0, 10, sink), /more than 5 redirects/);
  const plain = await server(new Map([['/f', data]]), { ignoreRange: true });
  got.length = 0;
  await c.fetch(`${plain.url}f`, 100_000, 1000, sink);
  assert.ok(Buffer.concat(got).equals(data.subarray(100_000, 101_000)));
  c.destroy();
});

test('range client over https (a self-signed server, trusted by its certificate)', { skip: skipUnless(hasCommand('openssl'), 'openssl') }, async () => {
  const dir = await tmpDir('tt-ws-');
  const gen = await runShell(`openssl req -x509 -newkey rsa:2048 -nodes -keyout k.pem -out c.pem -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>&1`, { cwd: dir });
  assert.equal(gen.code, 0, gen.stdout.toString());
  const [key, cert] = await Promise.all([readFile(join(dir, 'k.pem')), readFile(join(dir, 'c.pem'))]);
  const data = bytes(r, 200_000);
  const s = await server(new Map([['/f', data]]), { tls: { key, cert } });
  assert.ok(s.url.startsWith('https://'));
  const got: Buffer[] = [];
  const sink = { onData: (b: Buffer) => (got.push(Buffer.from(b)), true), drained: () => Promise.resolve() };
  const c = new RangeClient({ timeoutMs: 5000, ca: cert });
  for (let i = 0; i < 3; i++) await c.fetch(`${s.url}f`, 1000 * i, 70_000, sink);
  assert.ok(Buffer.concat(got).equals(Buffer.concat([0, 1, 2].map((i) => data.subarray(1000 * i, 1000 * i + 70_000)))));
  c.destroy();
  // not trusted: a certificate error does not fix itself, so it is typed to be given up
  await assert.rejects(
    new RangeClient({ timeoutMs: 5000 }).fetch(`${s.url}f`, 0, 10, sink),
    (e: unknown) => e instanceof HttpRangeError && e.kind === 'not-found' && /DEPTH_ZERO_SELF_SIGNED_CERT/.test(e.message),
  );
});

test('an https web seed whose certificate does not verify is given up at once, with the TLS error', { skip: skipUnless(hasCommand('openssl'), 'openssl') }, async () => {
  const dir = await tmpDir('tt-ws-');
  const gen = await runShell(`openssl req -x509 -newkey rsa:2048 -nodes -keyout k.pem -out c.pem -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>&1`, { cwd: dir });
  assert.equal(gen.code, 0, gen.stdout.toString());
  const [key, cert] = await Promise.all([readFile(join(dir, 'k.pem')), readFile(join(dir, 'c.pem'))]);
  const s = await server(served(SINGLE_NAME, single, true), { tls: { key, cert } });
  const tb = torrentOf(SINGLE_NAME, single, true, [`${s.url}pub/`]);
  const log: string[] = [];
  const started = Date.now();
  // no `ca`: the system's authorities, which do not know this certificate
  await assert.rejects(download(parseTorrent(tb), join(dir, 'out'), { announce: false, port: 0, timeoutMs: 3000, log: (l) => log.push(l) }).result);
  const line = `web seed ${s.url}pub/: given up: ${s.url}pub/${encodeURIComponent(SINGLE_NAME)}: TLS certificate not accepted (DEPTH_ZERO_SELF_SIGNED_CERT)`;
  assert.ok(log.includes(line), log.join('\n'));
  // at once: no back-off and retry first
  assert.ok(!log.some((l) => /retrying in/.test(l)), log.join('\n'));
  assert.ok(Date.now() - started < 15_000);
});

test('web seeds only: single-file, name needing percent-encoding, url-list ending in /', async () => {
  const s = await server(served(SINGLE_NAME, single, true));
  const tb = torrentOf(SINGLE_NAME, single, true, [`${s.url}pub/`]);
  const { dir, events } = await fetchAll(tb);
  await same(dir, SINGLE_NAME, single, true);
  // 46 pieces of 2 blocks: requests are coalesced into pieces and runs of pieces
  assert.ok(s.partial() > 0 && s.requests() <= 60, `range requests coalesce blocks (${s.requests()} requests)`);
  assert.ok(s.paths.every((p) => p === `/pub/${SINGLE_NAME}`), s.paths.join(' '));
  const src = sourcesOf(events);
  assert.deepEqual(src, [{ peer: `${s.url}pub/`, webSeed: true, bytes: single[0]!.data.length }]);
});

test('web seeds only: multi-file, runs spanning files, two servers (--web-seed and url-list)', async () => {
  const a = await server(served(MULTI_NAME, multi, false));
  const b = await server(served(MULTI_NAME, multi, false));
  const tb = torrentOf(MULTI_NAME, multi, false, [`${a.url}pub`]);
  const { dir, events } = await fetchAll(tb, { webSeeds: [`${b.url}pub/`] });
  await same(dir, MULTI_NAME, multi, false);
  for (const p of [...a.paths, ...b.paths]) assert.ok(served(MULTI_NAME, multi, false).has(p), p);
  // end-game copies count too: at least the torrent's size, from both servers
  const src = sourcesOf(events);
  assert.ok(src.reduce((n, x) => n + x.bytes, 0) >= multi.reduce((n, f) => n + f.data.length, 0));
  assert.deepEqual(src.map((x) => x.peer).sort(), [`${a.url}pub`, `${b.url}pub/`].sort());
});

test('--no-web-seeds (useUrlList false) leaves the url-list alone', async () => {
  const s = await server(served(SINGLE_NAME, single, true));
  const tb = torrentOf(SINGLE_NAME, single, true, [`${s.url}nowhere/`]);
  const { dir } = await fetchAll(tb, { useUrlList: false, webSeeds: [`${s.url}pub/${encodeURIComponent(SINGLE_NAME)}`] });
  await same(dir, SINGLE_NAME, single, true);
  assert.ok(!s.paths.some((p) => p.startsWith('/nowhere')));
});

test('a server that ignores Range (200) still serves every piece', async () => {
  const s = await server(served(SINGLE_NAME, single, true), { ignoreRange: true });
  const tb = torrentOf(SINGLE_NAME, single, true, [`${s.url}pub/`]);
  const { dir } = await fetchAll(tb);
  await same(dir, SINGLE_NAME, single, true);
  assert.equal(s.partial(), 0);
});

test('a server that ignores Range is read on from run to run, not from its start for each run', async (t) => {
  const name = 'big.bin';
  const big: TestFile[] = [{ path: [name], data: bytes(r, 400 * PL + 5) }];
  const s = await server(served(name, big, true), { ignoreRange: true });
  const { dir } = await fetchAll(torrentOf(name, big, true, [`${s.url}pub/`]));
  await same(dir, name, big, true);
  t.diagnostic(`${s.requests()} requests for 400 pieces`);
  // each request sends the file from its start: one per run (about a hundred) read it N²/2 times
  assert.ok(s.requests() <= 24, `${s.requests()} requests`);
});

test('a flaky server (503, a dropped connection) is backed off and retried', async () => {
  const s = await server(served(MULTI_NAME, multi, false), { fail503: new Set([1]), drop: new Set([3]) });
  const tb = torrentOf(MULTI_NAME, multi, false, [`${s.url}pub/`]);
  const { dir, log } = await fetchAll(tb);
  await same(dir, MULTI_NAME, multi, false);
  assert.ok(log.some((l) => l.includes(`web seed ${s.url}pub/: `) && /HTTP 503; retrying in 2 s/.test(l)), log.join('\n'));
});

test('a server without the files (404) is given up, named', async () => {
  const s = await server(new Map(), {});
  const tb = torrentOf(SINGLE_NAME, single, true, [`${s.url}pub/`]);
  const dir = await tmpDir('tt-ws-');
  const log: string[] = [];
  await assert.rejects(download(parseTorrent(tb), dir, { announce: false, port: 0, timeoutMs: 3000, log: (l) => log.push(l) }).result);
  assert.ok(log.some((l) => l === `web seed ${s.url}pub/: given up: ${s.url}pub/${encodeURIComponent(SINGLE_NAME)}: HTTP 404`), log.join('\n'));
});

test('a lying web seed beside an honest peer: banned by URL, the download completes', async () => {
  const { dir, tb, tf } = await multiOnDisk();
  const seed = await startSeed(tf, join(dir, 'data'));
  seeds.push(seed);
  const liar = await server(served(MULTI_NAME, multi, false), { lie: true });
  const { dir: out, log, events } = await fetchAll(tb, { webSeeds: [`${liar.url}pub/`], peers: [{ ip: '127.0.0.1', port: seed.port, source: 'cli' }] });
  await same(out, MULTI_NAME, multi, false);
  assert.ok(liar.requests() > 0, "the liar was asked");
  assert.ok(log.some((l) => l === `${liar.url}pub/: banned: sent data that failed the hash check`), log.join('\n'));
  const honest = sourcesOf(events).find((x) => x.peer === `127.0.0.1:${seed.port}`);
  assert.ok(honest && honest.bytes > 0);
});

test("a magnet's ws= is a web seed once the metadata is known", async () => {
  const { dir, tb, tf } = await multiOnDisk();
  // the seeder gives the metadata (a web seed cannot) and, slowly (256 KiB/s: the ~1 MiB is
  // not all its own before the mirror is dialled), pieces; the mirror serves pieces too
  const seed = await startSeed(tf, join(dir, 'data'), { args: ['--no-announce', '--max-upload-rate', '256K'] });
  seeds.push(seed);
  const s = await server(served(MULTI_NAME, multi, false));
  const uri = `${magnetFromTorrent(parseTorrent(tb))}&ws=${encodeURIComponent(`${s.url}pub/`)}&x.pe=127.0.0.1:${seed.port}`;
  const log: string[] = [];
  const job = download(uri, join(dir, 'out'), { announce: false, port: 0, timeoutMs: 30_000, log: (l) => log.push(l) });
  const events: DownloadEvent[] = [];
  job.on('event', (e) => events.push(e));
  await job.result.catch((e: Error) => assert.fail(`${e.message}\n${log.join('\n')}`));
  await same(join(dir, 'out'), MULTI_NAME, multi, false);
  assert.ok(s.requests() > 0, 'the ws= mirror was asked');
  assert.ok(sourcesOf(events).some((x) => x.peer === `${s.url}pub/` && x.webSeed === true));
});

test('a web seed plus a libtorrent seeder', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent') }, async () => {
  const { dir, tb, tf } = await multiOnDisk();
  const lt = await startLtSeeds(tf, join(dir, 'data'), 1);
  stops.push(lt.stop);
  const s = await server(served(MULTI_NAME, multi, false));
  const { dir: out, events } = await fetchAll(tb, { webSeeds: [`${s.url}pub/`], peers: [{ ip: '127.0.0.1', port: lt.ports[0]!, source: 'cli' }] });
  await same(out, MULTI_NAME, multi, false);
  const total = sourcesOf(events).reduce((n, x) => n + x.bytes, 0);
  assert.ok(total >= multi.reduce((n, f) => n + f.data.length, 0));
});

test('lighttpd as the web seed (a second HTTP implementation): multi-file, names percent-encoded', { skip: skipUnless(hasCommand('lighttpd') || existsSync('/usr/sbin/lighttpd'), 'lighttpd') }, async () => {
  const dir = await tmpDir('tt-ws-');
  await writeFiles(join(dir, 'www', 'pub'), MULTI_NAME, multi);
  const l = await startLighttpd(join(dir, 'www'), dir);
  assert.ok(l !== null);
  stops.push(() => void l.stop());
  const tb = torrentOf(MULTI_NAME, multi, false, [`${l.url}pub/`]);
  const { dir: out, events } = await fetchAll(tb);
  await same(out, MULTI_NAME, multi, false);
  assert.equal(sourcesOf(events)[0]!.peer, `${l.url}pub/`);
  await l.stop();
});

test('CLI: fetch-pieces --web-seed | assemble; --stats names the web seed by URL', async () => {
  const s = await server(served(SINGLE_NAME, single, true));
  const dir = await tmpDir('tt-ws-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, torrentOf(SINGLE_NAME, single, true));
  const ws = `${s.url}pub/`;
  const res = await runShell(`$TT fetch-pieces x.torrent --no-dht --web-seed '${ws}' --stats stats.ndjson < /dev/null | $TT assemble x.torrent -o out/ > /dev/null`, { cwd: dir });
  assert.equal(res.code, 0, res.stderr);
  await same(join(dir, 'out'), SINGLE_NAME, single, true);
  const last = JSON.parse((await readFile(join(dir, 'stats.ndjson'), 'utf8')).trim().split('\n').pop()!) as { perPeer: Array<{ peer: string; downloaded: number }> };
  assert.ok(last.perPeer.some((p) => p.peer === ws && p.downloaded > 0), JSON.stringify(last.perPeer));
});

test('CLI: download --json ends with a sources record; no way to find peers without web seeds', async () => {
  const s = await server(served(SINGLE_NAME, single, true));
  const dir = await tmpDir('tt-ws-');
  const ws = `${s.url}pub/`;
  await writeFile(join(dir, 'x.torrent'), torrentOf(SINGLE_NAME, single, true, [ws]));
  const res = await runCli(['download', join(dir, 'x.torrent'), '-o', join(dir, 'out'), '--no-dht', '--no-announce', '--port', '0', '--json', '--quiet']);
  assert.equal(res.code, 0, res.stderr);
  const lines = res.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { event: string; sources?: unknown });
  assert.equal(lines.at(-1)!.event, 'sources');
  assert.deepEqual(lines.at(-1)!.sources, [{ peer: ws, webSeed: true, bytes: single[0]!.data.length }]);
  assert.ok(lines.some((l) => l.event === 'complete'));
  const none = await runCli(['download', join(dir, 'x.torrent'), '-o', join(dir, 'out2'), '--no-dht', '--no-announce', '--no-web-seeds', '--port', '0']);
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /no web seeds/);
});



test('BEP 6 cancel: a block of a run not sent yet is dropped and rejected; one sent is not answered again', async () => {
  const data = single[0]!.data;
  // each reply: its first 16 KiB at once, the rest once released (a reply of 16 KiB is whole)
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const http = createHttpServer((req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')!;
    const [a, b] = [Number(m[1]), Number(m[2])];
    res.writeHead(206, { 'content-length': b - a + 1, 'content-range': `bytes ${a}-${b}/${data.length}` });
    if (b + 1 <= a + 16 * 1024) return void res.end(data.subarray(a, b + 1));
    res.write(data.subarray(a, a + 16 * 1024));
    void released.then(() => res.end(data.subarray(a + 16 * 1024, b + 1)));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  stops.push(() => {
    http.closeAllConnections();
    http.close();
  });
  const t = parseTorrent(torrentOf(SINGLE_NAME, single, true));
  const ws = new WebSeedPeer({ torrent: t, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/`, timeoutMs: 10_000 });
  stops.push(() => void ws.close());
  const conn = new PeerConnection(ws.connect(), { peerId: makePeerId(randomBytes), infoHash: t.infoHash, outgoing: true });
  const got: WireMessage[] = [];
  const waiters: Array<() => void> = [];
  conn.on('message', (msg) => {
    got.push(msg);
    for (const w of waiters.splice(0)) w();
  });
  const until = async (what: string, ok: () => boolean): Promise<void> => {
    const deadline = Date.now() + 10_000;
    while (!ok()) {
      if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(got.map((x) => [x.type, 'begin' in x ? `${x.index}:${x.begin}` : '']))}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  };
  const key = (x: { index: number; begin: number }): string => `${x.index}:${x.begin}`;
  const answers = (type: 'piece' | 'reject'): string[] => got.flatMap((x) => (x.type === type ? [key(x)] : []));
  await until('have-all', () => got.some((x) => x.type === 'have-all'));
  assert.ok(conn.fast, 'BEP 6 negotiated');
  conn.send({ type: 'interested' });
  await until('unchoke', () => got.some((x) => x.type === 'unchoke'));
  const B = 16 * 1024;
  const [a, b, c, d, e] = [{ index: 0, begin: 0 }, { index: 0, begin: B }, { index: 1, begin: 0 }, { index: 1, begin: B }, { index: 2, begin: 0 }];
  // a: a run of its own (the first); b, c and d: the next run once a is done (a run in flight
  // makes the next wait for more requests than these), held after b's bytes
  conn.sendRequests([a, b, c, d].map((x) => ({ ...x, length: B })));
  await until('a and b', () => answers('piece').length === 2);
  assert.deepEqual(answers('piece'), ['0:0', `0:${B}`]);
  // e: queued behind the held run
  conn.sendRequests([{ ...e, length: B }]);
  await new Promise((resolve) => setTimeout(resolve, 100));
  // a was sent: its cancel is not answered; c and d (in the held run) and e (queued) are rejected
  for (const x of [a, c, d, e]) conn.send({ type: 'cancel', ...x, length: B });
  await until('rejects of c, d and e', () => answers('reject').length === 3);
  release();
  // c asked again: answered once more, by its piece; the cancelled copy never comes
  conn.sendRequests([{ ...c, length: B }]);
  await until('c', () => answers('piece').length === 3);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(answers('piece'), ['0:0', `0:${B}`, '1:0']);
  assert.deepEqual(answers('reject').sort(), ['1:0', `1:${B}`, '2:0']);
  // six requests, six answers: the swarm's book of each (requests.ts `asked`) adds up
  assert.equal(answers('piece').length + answers('reject').length, 6);
  assert.ok(!conn.closed);
  conn.close(null);
  await ws.close();
});

test('end-game cancels racing a slow web seed beside an honest peer: no protocol violation', async () => {
  const { dir, tb, tf } = await multiOnDisk();
  const seed = await startSeed(tf, join(dir, 'data'));
  seeds.push(seed);
  // 16 KiB per 40 ms a run: its runs are still streaming when the seeder has sent the rest,
  // so end-game asks both for the last blocks and cancels what the seeder wins
  const slow = await server(served(MULTI_NAME, multi, false), { chunkDelayMs: 40 });
  const { dir: out, log } = await fetchAll(tb, { webSeeds: [`${slow.url}pub/`], peers: [{ ip: '127.0.0.1', port: seed.port, source: 'cli' }] });
  await same(out, MULTI_NAME, multi, false);
  assert.ok(slow.requests() > 0, 'the web seed was asked');
  assert.ok(!log.some((l) => /protocol violation/.test(l)), log.join('\n'));
});

test('a download that fails or is stopped still ends its events with sources; one that fails before the swarm has none', async () => {
  const s = await server(served(SINGLE_NAME, single, true), { chunkDelayMs: 50 });
  const tb = torrentOf(SINGLE_NAME, single, true, [`${s.url}pub/`]);
  const dir = await tmpDir('tt-ws-');
  const stop = new AbortController();
  const job = download(parseTorrent(tb), dir, { announce: false, port: 0, timeoutMs: 30_000, signal: stop.signal });
  const events: DownloadEvent[] = [];
  job.on('event', (e) => {
    events.push(e);
    if (e.event === 'piece') stop.abort();
  });
  await assert.rejects(job.result, (e: Error) => e.name === 'AbortError');
  assert.equal(events.at(-1)!.event, 'sources');
  const src = sourcesOf(events);
  assert.equal(src.length, 1);
  assert.ok(src[0]!.peer === `${s.url}pub/` && src[0]!.webSeed === true && src[0]!.bytes > 0, JSON.stringify(src));
  assert.ok(!events.some((e) => e.event === 'complete'));
  // a magnet nobody gives the metadata of: no swarm, no sources
  const none: DownloadEvent[] = [];
  const m = download(magnetFromTorrent(parseTorrent(tb)), await tmpDir('tt-ws-'), { announce: false, port: 0, timeoutMs: 1000 });
  m.on('event', (e) => none.push(e));
  await assert.rejects(m.result);
  assert.ok(!none.some((e) => e.event === 'sources'), JSON.stringify(none));
});

test('CLI: download --json interrupted prints the sources record before it ends', async () => {
  const s = await server(served(SINGLE_NAME, single, true), { chunkDelayMs: 200 });
  const dir = await tmpDir('tt-ws-');
  const ws = `${s.url}pub/`;
  await writeFile(join(dir, 'x.torrent'), torrentOf(SINGLE_NAME, single, true, [ws]));
  // about 300 KiB/s from four runs: 1.4 MiB is not all in after 2 s
  // one SIGINT, sent by us: GNU timeout sends its signal twice (to the child, then to its
  // process group), and a second SIGINT means 'stop now' (exit 130 without a word)
  const child = spawn(process.execPath, [CLI, 'download', 'x.torrent', '-o', 'out', '--no-dht', '--no-announce', '--port', '0', '--json', '--quiet'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGINT'), 2000);
  const res = { code: await new Promise<number | null>((resolve) => child.on('close', resolve)), stdout: Buffer.concat(out) };
  clearTimeout(timer);
  assert.equal(res.code, 130, stderr);
  const lines = res.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { event: string; sources?: Array<{ peer: string; bytes: number }> });
  assert.ok(!lines.some((l) => l.event === 'complete'));
  assert.equal(lines.at(-1)!.event, 'sources');
  assert.equal(lines.filter((l) => l.event === 'sources').length, 1);
  assert.ok(lines.at(-1)!.sources!.some((x) => x.peer === ws && x.bytes > 0), JSON.stringify(lines.at(-1)));
});
