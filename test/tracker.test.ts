import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { gzipSync } from 'node:zlib';
import { after, test } from 'node:test';
import Server from 'bittorrent-tracker/server';
import { encode, type BValue } from '../src/bencode/index.js';
import { AnnounceLoop } from '../src/tracker/loop.js';
import { nextAnnounceIn, parseAnnounceBody, type AnnounceReply } from '../src/tracker/reply.js';
import { CLI, runCli } from './helpers/cli.js';
import { hasCommand, skipUnless } from './helpers/interop.js';
import { tmpDir } from './helpers/torrent.js';
import { freeTcpPort } from './helpers/ports.js';

const closers: Array<() => void> = [];
after(() => closers.forEach((c) => c()));

async function realTracker(host = '127.0.0.1'): Promise<{ http: string; udp: string; udp6: string; server: Server }> {
  const server = new Server({ http: true, udp: true, ws: false, stats: false });
  server.on('warning', () => {});
  server.on('error', () => {});
  await new Promise<void>((resolve) => server.listen({ http: 0, udp: 0 }, { http: host, udp: '127.0.0.1', udp6: '::1' }, () => resolve()));
  closers.push(() => server.close());
  const h = host.includes(':') ? `[${host}]` : host;
  return {
    http: `http://${h}:${(server.http!.address() as AddressInfo).port}/announce`,
    udp: `udp://127.0.0.1:${server.udp4!.address().port}`,
    udp6: `udp://[::1]:${server.udp6!.address().port}`,
    server,
  };
}

let serial = 0;
async function torrentFile(trackers: string[]): Promise<string> {
  const dir = await tmpDir('tt-trk-');
  const f = join(dir, 'x.torrent');
  // a distinct info hash per torrent: swarms of different tests never mix
  const info = new Map<string, BValue>([['length', 1000], ['name', Buffer.from(`x${serial++}`)], ['piece length', 16384], ['pieces', Buffer.alloc(20, 7)]]);
  const top = new Map<string, BValue>([['announce', Buffer.from(trackers[0] ?? 'http://127.0.0.1:1/announce')]]);
  if (trackers.length > 1) top.set('announce-list', trackers.map((t) => [Buffer.from(t)]));
  top.set('info', info);
  await writeFile(f, encode(top));
  return f;
}

const lines = (b: Buffer): Array<Record<string, unknown>> => b.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

test('announce over HTTP, UDP and HTTP on ::1 to the bittorrent-tracker server: two peers see each other', async () => {
  const t = await realTracker();
  const t6 = await realTracker('::1');
  // (its UDP over IPv6 answers, but never lists IPv6 peers: checked separately below)
  for (const url of [t.http, t.udp, t6.http]) {
    const f = await torrentFile([url]);
    // --event started: stay listed (a one-shot announce otherwise says stopped after the reply)
    const first = await runCli(['announce', f, '--port', '7001', '--event', 'started']);
    assert.equal(first.code, 0, first.stderr);
    const second = await runCli(['announce', f, '--port', '7002', '--event', 'started']);
    assert.equal(second.code, 0, second.stderr);
    const peers = lines(second.stdout);
    assert.ok(peers.some((p) => p['port'] === 7001 && p['source'] === 'tracker' && p['tracker'] === url), `${url}: ${second.stdout}`);
    const scrape = await runCli(['announce', '--scrape', f]);
    assert.equal(scrape.code, 0, scrape.stderr);
    const s = lines(scrape.stdout)[0]!;
    assert.equal(s['tracker'], url);
    assert.equal(Number(s['seeders']) + Number(s['leechers']), 2);
    const raw = await runCli(['announce', '--raw', f, '--port', '7003']);
    const rec = lines(raw.stdout)[0]!;
    assert.equal(rec['tracker'], url);
    // the reply in bdecode's tagged mapping: `bencode` turns it back into the tracker's bytes
    const reply = rec['reply'] as Record<string, unknown>;
    assert.equal(typeof reply['interval'], 'number');
    const back = await runCli(['bencode'], { input: JSON.stringify(reply) + '\n' });
    assert.equal(back.code, 0, back.stderr);
    assert.equal(back.stdout.toString('latin1').match(/5:peers(\d+):/)?.[1] !== undefined, true, back.stdout.toString('latin1'));
  }
  const f6 = await torrentFile([t.udp6]);
  await runCli(['announce', f6, '--port', '7004', '--event', 'started']);
  const r6 = await runCli(['announce', '--raw', f6, '--port', '7005', '--event', 'started']);
  assert.equal(r6.code, 0, r6.stderr);
  assert.equal((lines(r6.stdout)[0]!['reply'] as Record<string, unknown>)['leechers'], 2);
});

test('tiers: a dead tracker in the first tier falls back to a live one; --all asks both', async () => {
  const t = await realTracker();
  const dead = createSocket('udp4');
  await new Promise<void>((r) => dead.bind(0, '127.0.0.1', () => r()));
  closers.push(() => dead.close());
  const deadUrl = `udp://127.0.0.1:${dead.address().port}`;
  const f = await torrentFile([deadUrl, t.http]);
  const r = await runCli(['announce', f, '--timeout', '1', '--port', '7010']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`${deadUrl}: no reply within 1000 ms`));
  const none = await runCli(['announce', f, '--timeout', '1', '--only', '--tracker', deadUrl]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no tracker answered \(1 tried\)/);
});

test('--watch re-announces and sends stopped on SIGINT, exit 0', async () => {
  const t = await realTracker();
  const f = await torrentFile([t.http]);
  const stopped = new Promise<void>((resolve) => t.server.on('stop', () => resolve()));
  const child = spawn(process.execPath, [CLI, 'announce', '--watch', f, '--port', '7020'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const rl = createInterface({ input: child.stdout });
  await new Promise<void>((resolve) => {
    t.server.once('start', () => resolve());
  });
  await new Promise((r) => setTimeout(r, 200));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
  rl.close();
  assert.equal(code, 0);
  await stopped;
});

interface Hostile {
  url: string;
  server: HttpServer;
}

async function hostileHttp(): Promise<Hostile> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const peer = Buffer.from([127, 0, 0, 1, 0x1b, 0x58]);
    const good = Buffer.concat([Buffer.from('d8:intervali0e5:peers6:'), peer, Buffer.from('e')]);
    switch (path) {
      case '/big':
        res.end(Buffer.alloc(2 * 1024 * 1024, 0x61));
        break;
      case '/slow':
        break; // never answers
      case '/loop':
        res.writeHead(302, { location: '/loop' }).end();
        break;
      case '/badredirect':
        // found by `npm run fuzz`: an address no URL can hold, thrown inside the response handler
        res.writeHead(302, { location: 'http://327.0.0.1:6969/announce' }).end();
        break;
      case '/gzip':
        res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(good));
        break;
      case '/gzipbomb':
        res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(Buffer.alloc(8 * 1024 * 1024)));
        break;
      case '/garbage':
        res.end('<html>nope</html>');
        break;
      case '/truncated':
        res.end('d8:intervali60e5:peers6:ab');
        break;
      case '/ctrl':
        res.end(encode(new Map<string, BValue>([['failure reason', Buffer.from('bad \x1b[31mred\x1b[0m\nline')]])));
        break;
      case '/named': {
        // BEP 3's dictionary form, where a tracker may name a peer by host name
        const entry = (ip: string, port: number): Map<string, BValue> => new Map<string, BValue>([['ip', Buffer.from(ip)], ['port', port]]);
        res.end(encode(new Map<string, BValue>([['interval', 60], ['peers', [entry('localhost', 1000), entry('::ffff:127.0.0.1', 2000), entry('evil.example', 3000), entry('10.0.0.1', 4000)]]])));
        break;
      }
      case '/oddpeers':
        res.end(Buffer.concat([Buffer.from('d8:intervali60e5:peers5:'), Buffer.alloc(5), Buffer.from('e')]));
        break;
      default:
        res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => server.closeAllConnections());
  closers.push(() => server.close());
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

test('hostile HTTP trackers: one clear line each, never a crash or a hang', async () => {
  const h = await hostileHttp();
  const cases: Array<[string, RegExp | null]> = [
    ['/big', /reply larger than 1048576 bytes/],
    ['/slow', /no reply within 1000 ms/],
    ['/loop', /more than 5 redirects/],
    ['/badredirect', /redirected to a bad URL "http:\/\/327\.0\.0\.1:6969\/announce"/],
    ['/gzipbomb', /reply larger than 1048576 bytes/],
    ['/garbage', /reply is not bencode: byte 0/],
    ['/truncated', /reply is not bencode: byte \d+: unexpected end of input/],
    ['/ctrl', /failure: bad \\x1b\[31mred\\x1b\[0m\\x0aline/],
    ['/oddpeers', /peers is 5 bytes, not a multiple of 6/],
    ['/nothing', /HTTP 404/],
    ['/gzip', null],
  ];
  for (const [path, re] of cases) {
    const url = `${h.url}${path}`;
    const f = await torrentFile([url]);
    const r = await runCli(['announce', f, '--timeout', '1'], { timeoutMs: 20_000 });
    if (re === null) {
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(r.stdout).map((p) => p['port']), [0x1b58]);
      continue;
    }
    assert.equal(r.code, 1, `${path}: ${r.stderr}`);
    const errs = r.stderr.split('\n').filter(Boolean);
    assert.equal(errs.length, 2, `${path}: ${r.stderr}`);
    assert.ok(errs[0]!.startsWith(`torrent-tools announce: ${url}: `), errs[0]);
    assert.match(errs[0]!, re, path);
    assert.doesNotMatch(r.stderr, /\x1b/);
  }
  // an interval of 0 is floored, so --watch cannot spin
  const reply = parseAnnounceBody(Buffer.from('d8:intervali0e5:peers0:e'), 'x');
  assert.equal(reply.interval, 5);
});

test('peer addresses: a tracker naming peers by host name gets them skipped with one warning; addresses are canonical', async () => {
  const h = await hostileHttp();
  const f = await torrentFile([`${h.url}/named`]);
  const r = await runCli(['announce', f, '--timeout', '2'], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(lines(r.stdout).map((p) => `${p['ip']}:${p['port']}`), ['127.0.0.1:2000', '10.0.0.1:4000']);
  assert.match(r.stderr, /warning: http:\/\/127\.0\.0\.1:\d+\/named: 2 peers named by host name, not address, skipped/);
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
});

test('peer addresses: --peer takes a host name (looked up once); stdin peers must be addresses', async () => {
  const h = await hostileHttp();
  const f = await torrentFile([`${h.url}/nothing`]);
  // nothing listens on port 1: the name resolves, the dial fails, the summary names the address
  const r = await runCli(['fetch-pieces', f, '--peer', 'localhost:1', '--peer', 'no-such-host.invalid:2', '-v', '--no-dht'], { input: '{"ip":"localhost","port":3}\n', timeoutMs: 60_000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /warning: --peer no-such-host\.invalid:2: cannot resolve the name \(ENOTFOUND\); peer skipped/);
  assert.match(r.stderr, /stdin:1: not a peer, skipped: "ip" is not an IP address: "localhost"/);
  assert.match(r.stderr, /127\.0\.0\.1:1: ECONNREFUSED|\[::1\]:1: ECONNREFUSED/);
});

test('hostile UDP trackers: wrong transaction ids are ignored until the deadline, which counts them; short replies are errors', async () => {
  const sock = createSocket('udp4');
  let mode: 'wrongtid' | 'short' = 'wrongtid';
  sock.on('message', (msg, rinfo) => {
    const reply = Buffer.alloc(mode === 'short' ? 8 : 16);
    reply.writeUInt32BE(0, 0);
    reply.writeUInt32BE(mode === 'short' ? msg.readUInt32BE(12) : (msg.readUInt32BE(12) + 1) >>> 0, 4);
    sock.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  closers.push(() => sock.close());
  const url = `udp://127.0.0.1:${sock.address().port}`;
  const f = await torrentFile([url]);
  const a = await runCli(['announce', f, '--timeout', '1']);
  assert.equal(a.code, 1);
  // the one datagram it sent did not end the wait, and the line says what was seen
  assert.match(a.stderr, /: no reply within 1000 ms \(1 datagram with a wrong transaction id ignored\)\n/);
  mode = 'short';
  const b = await runCli(['announce', f, '--timeout', '1']);
  assert.equal(b.code, 1);
  assert.match(b.stderr, /reply of 8 bytes, expected at least 16/);
});

interface ScriptedUdp {
  url: string;
  /** arrival times (ms) of announce requests, with their BEP 15 event (0 none, 1 completed, 2 started, 3 stopped) */
  announces: Array<{ at: number; event: number }>;
}

/**
 * A UDP tracker on loopback that answers connect and announce correctly (one peer,
 * 127.0.0.1:7000), sending `junk` datagrams with wrong transaction ids just before each reply.
 */
async function scriptedUdp(o: { junk?: number; interval?: number }): Promise<ScriptedUdp> {
  const sock = createSocket('udp4');
  const announces: ScriptedUdp['announces'] = [];
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 16) return;
    const action = msg.readUInt32BE(8);
    const tid = msg.readUInt32BE(12);
    let reply: Buffer;
    if (action === 0) {
      reply = Buffer.alloc(16);
      reply.writeUInt32BE(0x1234, 12); // connection id
    } else if (action === 1 && msg.length >= 98) {
      announces.push({ at: Date.now(), event: msg.readUInt32BE(80) });
      reply = Buffer.alloc(26);
      reply.writeUInt32BE(o.interval ?? 1800, 8);
      Buffer.from([127, 0, 0, 1, 0x1b, 0x58]).copy(reply, 20);
    } else return;
    reply.writeUInt32BE(action, 0);
    for (let i = 0; i < (o.junk ?? 0); i++) {
      const j = Buffer.from(reply);
      j.writeUInt32BE((tid + 1 + i) >>> 0, 4);
      sock.send(j, rinfo.port, rinfo.address);
    }
    reply.writeUInt32BE(tid, 4);
    sock.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  closers.push(() => sock.close());
  return { url: `udp://127.0.0.1:${sock.address().port}`, announces };
}

test('UDP: 2,000 junk datagrams ahead of the real reply neither end the exchange nor crowd the reply out', async (t) => {
  // the receive buffer we ask for (4 MiB) is capped by the kernel at net.core.rmem_max
  const rmemMax = Number(await readFile('/proc/sys/net/core/rmem_max', 'utf8').catch(() => '0'));
  if (rmemMax < 1024 * 1024) return t.skip(`net.core.rmem_max is ${rmemMax}: too small a receive buffer for 2,000 datagrams`);
  const h = await scriptedUdp({ junk: 2000 });
  const f = await torrentFile([h.url]);
  // each run connects (connection ids are per process) and announces: 4,000 junk datagrams
  // each; before, 0 to 4 of 15 runs got the reply
  for (let i = 0; i < 8; i++) {
    const r = await runCli(['announce', f, '--timeout', '3', '--event', 'started'], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, `run ${i}: ${r.stderr}`);
    assert.deepEqual(lines(r.stdout).map((p) => p['port']), [7000], `run ${i}`);
  }
  assert.equal(h.announces.length, 8);
});

test('intervals: whatever a tracker sends is clamped to [5 s, 1 day]; min interval never sets the schedule', () => {
  const body = (interval: BValue | undefined, min?: BValue): Buffer => {
    const d = new Map<string, BValue>([['peers', Buffer.alloc(0)]]);
    if (interval !== undefined) d.set('interval', interval);
    if (min !== undefined) d.set('min interval', min);
    return encode(d);
  };
  const cases: Array<[BValue | undefined, BValue | undefined, number, number | undefined]> = [
    [1800, undefined, 1800, undefined],
    [undefined, undefined, 1800, undefined], // none given: the default
    [Buffer.from('60'), Buffer.from('x'), 1800, undefined], // not an integer: as if absent
    [0, 0, 5, 5],
    [-7, -1, 5, 5],
    [1, 10 ** 6, 5, 86_400],
    [1, 10 ** 15, 5, 86_400],
    [10 ** 15, 10 ** 15, 86_400, 86_400],
    [10n ** 30n, 10n ** 30n, 86_400, 86_400], // $int: beyond 2^53
    [-(10n ** 30n), -(10n ** 30n), 5, 5],
  ];
  for (const [interval, min, want, wantMin] of cases) {
    const r = parseAnnounceBody(body(interval, min), 'x');
    assert.equal(r.interval, want, `interval ${String(interval)}`);
    assert.equal(r.minInterval, wantMin, `min interval ${String(min)}`);
    assert.equal(nextAnnounceIn([r]), want, `interval ${String(interval)}, min interval ${String(min)}`);
  }
  assert.equal(nextAnnounceIn([]), 60); // nobody answered: again in a minute
  // replies a program builds itself are clamped again where the wait is computed
  const made = (interval: number): AnnounceReply => ({ tracker: 'x', interval, minInterval: 10 ** 9, peers: [], raw: 0 });
  assert.equal(nextAnnounceIn([made(NaN)]), 1800);
  assert.equal(nextAnnounceIn([made(Infinity)]), 86_400);
  assert.equal(nextAnnounceIn([made(-Infinity)]), 5);
  assert.equal(nextAnnounceIn([made(2.5)]), 5);
  assert.equal(nextAnnounceIn([made(100.7), made(3000)]), 100);
});

test('hostile intervals: announce --watch and AnnounceLoop announce again at the floor, never silenced, never spinning', async () => {
  // per path: the reply's interval and min interval, and whether a second announce is due within
  // the test (interval 1 → the 5 s floor) or not (a huge interval → one day)
  const plan: Record<string, { interval: BValue; min?: BValue; again: boolean }> = {
    minhuge: { interval: 1, min: 10 ** 6, again: true }, // was: never again
    minoverflow: { interval: 1, min: 10 ** 15, again: true }, // was: setTimeout overflow, a spin
    minbigint: { interval: 1, min: 10n ** 30n, again: true },
    negative: { interval: -7, min: -1, again: true }, // was: the 1800 s default
    huge: { interval: 10 ** 15, again: false }, // was: a spin
    bigint: { interval: 10n ** 30n, again: false },
    loop: { interval: 1, min: 10 ** 6, again: true }, // AnnounceLoop (seed, download)
  };
  const hits = new Map<string, Array<{ at: number; event: string }>>();
  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const name = u.pathname.slice(1);
    const p = plan[name];
    if (!p) return void res.writeHead(404).end();
    const list = hits.get(name) ?? [];
    hits.set(name, list);
    if (list.length < 1000) list.push({ at: Date.now(), event: u.searchParams.get('event') ?? 'none' });
    const d = new Map<string, BValue>([['interval', p.interval], ['peers', Buffer.alloc(0)]]);
    if (p.min !== undefined) d.set('min interval', p.min);
    res.end(encode(d));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => server.closeAllConnections());
  closers.push(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // UDP: a 32-bit interval of 2^32−1 s (was a spin), and 1 s
  const udpHuge = await scriptedUdp({ interval: 0xffffffff });
  const udpOne = await scriptedUdp({ interval: 1 });

  const children: Array<{ name: string; child: ReturnType<typeof spawn>; stderr: string[]; code: Promise<number | null> }> = [];
  const watch = async (name: string, url: string): Promise<void> => {
    const f = await torrentFile([url]);
    const child = spawn(process.execPath, [CLI, 'announce', '--watch', f, '--timeout', '3'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const stderr: string[] = [];
    child.stderr!.on('data', (c: Buffer) => stderr.push(c.toString()));
    const code = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    closers.push(() => child.kill('SIGKILL'));
    children.push({ name, child, stderr, code });
  };
  for (const name of Object.keys(plan)) if (name !== 'loop') await watch(name, `${base}/${name}`);
  await watch('udpHuge', udpHuge.url);
  await watch('udpOne', udpOne.url);
  const loop = new AnnounceLoop({
    tiers: [[`${base}/loop`]],
    infoHash: Buffer.alloc(20, 0x4c),
    peerId: Buffer.alloc(20, 0x50),
    port: 7300,
    stats: () => ({ uploaded: 0, downloaded: 0, left: 1000 }),
    timeoutMs: 3000,
  });
  loop.start();

  const regular = (name: string): number[] => {
    if (name === 'udpHuge') return udpHuge.announces.filter((a) => a.event !== 3).map((a) => a.at);
    if (name === 'udpOne') return udpOne.announces.filter((a) => a.event !== 3).map((a) => a.at);
    return (hits.get(name) ?? []).filter((h) => h.event !== 'stopped').map((h) => h.at);
  };
  const againNames = [...Object.keys(plan).filter((n) => plan[n]!.again), 'udpOne'];
  const onceNames = [...Object.keys(plan).filter((n) => !plan[n]!.again), 'udpHuge'];
  // bounded: until every "again" case announced twice and 6 s passed since the last first announce
  const deadline = Date.now() + 20_000;
  for (;;) {
    const firsts = [...againNames, ...onceNames].map((n) => regular(n)[0]);
    const ready = firsts.every((t) => t !== undefined) && Date.now() > Math.max(...(firsts as number[])) + 6000 && againNames.every((n) => regular(n).length >= 2);
    if (ready || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const c of children) c.child.kill('SIGINT');
  await loop.stop();
  const codes = await Promise.all(children.map((c) => Promise.race([c.code, new Promise<string>((r) => setTimeout(() => r('hung'), 15_000).unref())])));

  for (const n of againNames) {
    const at = regular(n);
    assert.equal(at.length, 2, `${n}: ${at.length} announces (${at.map((t) => t - at[0]!).join(', ')} ms)`);
    const gap = at[1]! - at[0]!;
    assert.ok(gap >= 4900 && gap < 8000, `${n}: announced again after ${gap} ms, expected the 5 s floor`);
  }
  for (const n of onceNames) assert.equal(regular(n).length, 1, `${n}: ${regular(n).length} announces, expected 1 (next one in a day)`);
  children.forEach((c, i) => {
    assert.equal(codes[i], 0, `${c.name}: ${c.stderr.join('')}`);
    assert.doesNotMatch(c.stderr.join(''), /TimeoutOverflowWarning/, c.name);
  });
  assert.ok(hits.get('loop')!.some((h) => h.event === 'stopped'), 'the loop said stopped');
});

test('interop: Debian opentracker (whitelist build) over HTTP and UDP', { skip: skipUnless(hasCommand('opentracker'), 'opentracker') }, async () => {
  const f = await torrentFile(['http://127.0.0.1:1/announce']);
  const info = await runCli(['info', f]);
  const hash = (JSON.parse(info.stdout.toString()) as { infoHash: string }).infoHash;
  const dir = await tmpDir('tt-ot-');
  await writeFile(join(dir, 'whitelist'), hash + '\n');
  // as root it drops to user nobody after chrooting here: mkdtemp's 0700 would lock it out
  await chmod(dir, 0o755);
  const port = await freeTcpPort(); // opentracker binds the same number for UDP too
  // as root opentracker chroots to -d: relative paths from its own directory
  const ot = spawn('opentracker', ['-i', '127.0.0.1', '-p', String(port), '-P', String(port), '-d', '.', '-w', 'whitelist'], { cwd: dir, stdio: 'ignore' });
  closers.push(() => ot.kill('SIGKILL'));
  for (let i = 0; i < 50; i++) {
    if (spawnSync('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]).status === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const url of [`http://127.0.0.1:${port}/announce`, `udp://127.0.0.1:${port}`]) {
    // opentracker loads its whitelist in the background after it starts listening
    let a = await runCli(['announce', f, '--only', '--tracker', url, '--port', '7101', '--event', 'started']);
    for (let i = 0; i < 30 && a.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      a = await runCli(['announce', f, '--only', '--tracker', url, '--port', '7101', '--event', 'started']);
    }
    assert.equal(a.code, 0, a.stderr);
    const b = await runCli(['announce', f, '--only', '--tracker', url, '--port', '7102']);
    assert.ok(lines(b.stdout).some((p) => p['port'] === 7101), `${url}: ${b.stdout}`);
    const s = await runCli(['announce', '--scrape', f, '--only', '--tracker', url]);
    assert.equal(s.code, 0, s.stderr);
  }
});

test('seed announces itself; announce | fetch-pieces | assemble downloads from it; stopped on exit', async () => {
  const t = await realTracker();
  const { makeTorrentBytes, writeFiles } = await import('./helpers/torrent.js');
  const { startSeed } = await import('./helpers/swarm.js');
  const { bytes, rng } = await import('./helpers/random.js');
  const { runShell } = await import('./helpers/cli.js');
  const r = rng(3);
  const files = [{ path: ['a.bin'], data: bytes(r, 200_000) }, { path: ['b.bin'], data: bytes(r, 70_000) }];
  const dir = await tmpDir('tt-trk-seed-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, makeTorrentBytes('pipe', files, 32768, [['announce', Buffer.from(t.http)]]));
  await writeFiles(join(dir, 'data'), 'pipe', files);
  const stopped = new Promise<void>((resolve) => t.server.on('stop', () => resolve()));
  const s = await startSeed(tf, join(dir, 'data'), { args: [] });
  // wait for the seed's announce to land
  for (let i = 0; i < 50; i++) {
    const a = await runCli(['announce', tf, '--event', 'none', '--port', '9']);
    if (lines(a.stdout).some((p) => p['port'] === s.port)) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  const out = join(dir, 'out');
  const res = await runShell(`$TT announce "${tf}" --port 9 | $TT fetch-pieces "${tf}" --quiet | $TT assemble "${tf}" -o "${out}" --quiet > /dev/null; echo "\${PIPESTATUS[*]}"`, { timeoutMs: 60_000 });
  assert.equal(res.stdout.toString().trim(), '0 0 0', res.stderr);
  for (const f of files) assert.deepEqual(await readFile(join(out, 'pipe', ...f.path)), f.data);
  await s.stop();
  await stopped;
});
