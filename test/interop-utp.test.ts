/**
 * uTP (BEP 29) against python-libtorrent with TCP turned off on its side
 * (enable_incoming_tcp/enable_outgoing_tcp false, LT_TRANSPORT=utp: test/fixtures/lt_transport.py):
 * it seeds to our download (also rate-limited, limits applied on loopback), it downloads from our
 * seed, a swarm of one TCP-only and one uTP-only seeder is used over both, and a download through
 * a relay that loses, duplicates and reorders 2% of the datagrams arrives byte-identical; over
 * IPv6 loopback too, both ways.
 * Skipped when python-libtorrent is missing.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from './helpers/cli.js';
import { SYSTEM_PYTHON, hasLibtorrent, skipUnless, startLtSeeds } from './helpers/interop.js';
import { LtSwarm } from './helpers/lt-swarm.js';
import { bytes, rng } from './helpers/random.js';
import { hasIpv6Loopback } from './helpers/ports.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles, type TestFile } from './helpers/torrent.js';
import { udpRelay, type UdpRelay } from './helpers/udp-relay.js';

const FIX = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const skip = skipUnless(hasLibtorrent(), 'python3-libtorrent');
const skip6 = skip || ((await hasIpv6Loopback()) ? false : 'IPv6 loopback (::1) is not available here');
const PL = 64 * 1024;
const r = rng(29);
const files: TestFile[] = [
  { path: ['one.bin'], data: bytes(r, 40 * PL + 5) },
  { path: ['dir', 'two.bin'], data: bytes(r, 6 * PL - 7) },
  { path: ['three.bin'], data: bytes(r, 12345) },
];
const { bytes: tb } = makeTorrent('utp', files, PL);
const SIZE = files.reduce((n, f) => n + f.data.length, 0);

const stops: Array<() => unknown> = [];
after(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

async function prepare(): Promise<{ dir: string; tf: string; full: string }> {
  const dir = await tmpDir('tt-utp-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  const full = join(dir, 'full');
  await writeFiles(full, 'utp', files);
  return { dir, tf, full };
}

async function sameFiles(out: string): Promise<void> {
  for (const f of files) assert.ok((await readFile(join(out, 'utp', ...f.path))).equals(f.data), `${f.path.join('/')} differs`);
}

interface Source {
  peer: string;
  bytes: number;
  transport?: string;
}

/** Our download of `tf` from `peers`, bounded in time; the --json `sources` record. */
async function download(tf: string, out: string, peers: number[], extra: string[] = [], host = '127.0.0.1'): Promise<Source[]> {
  const res = await runCli(['download', tf, '-o', out, '--no-announce', '--no-dht', '--port', '0', '--timeout', '30', '--json', '--quiet', ...peers.flatMap((p) => ['--peer', `${host}:${p}`]), ...extra], { timeoutMs: 90_000 });
  assert.equal(res.code, 0, res.stderr);
  const events = res.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { event: string; sources?: Source[] });
  const sources = events.find((e) => e.event === 'sources')?.sources;
  assert.ok(sources, 'a sources record');
  return sources;
}

test('a uTP-only libtorrent seeder to our download (both transports on: uTP is dialled first)', { skip, timeout: 120_000 }, async () => {
  const { dir, tf, full } = await prepare();
  const lt = await startLtSeeds(tf, full, 2, { LT_TRANSPORT: 'utp' });
  stops.push(lt.stop);
  const out = join(dir, 'out');
  const sources = await download(tf, out, lt.ports);
  await sameFiles(out);
  // end-game asks both seeders for the last blocks: a few arrive twice
  assert.ok(sources.reduce((n, s) => n + s.bytes, 0) >= SIZE, JSON.stringify(sources));
  assert.ok(sources.every((s) => s.transport === 'utp'), JSON.stringify(sources));
});

test('a rate-limited uTP-only libtorrent seeder (limits on loopback too) to our download --no-tcp', { skip, timeout: 120_000 }, async () => {
  const { dir, tf, full } = await prepare();
  // lt-swarm.py sets ignore_limits_on_local_network false: the limit holds on 127.0.0.1
  const lt = await LtSwarm.start({ LT_TRANSPORT: 'utp' });
  stops.push(() => lt.close());
  const rate = 1024 * 1024;
  const seeder = await lt.seed(tf, full, rate);
  const out = join(dir, 'out-limited');
  const t0 = Date.now();
  const sources = await download(tf, out, [seeder.port], ['--no-tcp']);
  const seconds = (Date.now() - t0) / 1000;
  await sameFiles(out);
  assert.deepEqual(sources.map((s) => s.transport), ['utp']);
  // the limit shows: a ~3 MiB torrent at 1 MiB/s cannot arrive in under ~2 s (rate bursts allowed)
  assert.ok(seconds > (SIZE / rate) * 0.6, `${SIZE} bytes in ${seconds} s at ${rate} B/s`);
});

/** Our seed on `host`; a uTP-only libtorrent leecher (listening there too) downloads from it. */
async function ltLeechesFromOurSeed(host: '127.0.0.1' | '::1'): Promise<void> {
  const { dir, tf, full } = await prepare();
  const s: SeedProc = await startSeed(tf, full, { host });
  stops.push(() => s.stop());
  const out = join(dir, 'lt-out');
  const bracketed = host.includes(':') ? `[${host}]` : host;
  const peer = `${bracketed}:${s.port}`;
  const env = { ...process.env, LT_TRANSPORT: 'utp', LT_LISTEN: bracketed };
  const res = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const c: ChildProcess = spawn(SYSTEM_PYTHON, [join(FIX, 'lt-leech.py'), tf, out, peer, '60'], { stdio: ['ignore', 'pipe', 'pipe'], env });
    stops.push(() => c.kill('SIGKILL'));
    let err = '';
    c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    c.on('close', (code) => resolve({ code, err }));
  });
  assert.equal(res.code, 0, res.err + s.stderr());
  await sameFiles(out);
}

test('a uTP-only libtorrent leecher downloads from our seed', { skip, timeout: 120_000 }, () => ltLeechesFromOurSeed('127.0.0.1'));

test('over IPv6: a uTP-only libtorrent seeder on [::1] to our download --no-tcp', { skip: skip6, timeout: 120_000 }, async () => {
  const { dir, tf, full } = await prepare();
  const lt = await startLtSeeds(tf, full, 1, { LT_TRANSPORT: 'utp', LT_LISTEN: '[::1]' });
  stops.push(lt.stop);
  const out = join(dir, 'out6');
  const sources = await download(tf, out, lt.ports, ['--no-tcp'], '[::1]');
  await sameFiles(out);
  assert.deepEqual(sources.map((s) => s.transport), ['utp'], JSON.stringify(sources));
});

test('over IPv6: a uTP-only libtorrent leecher on [::1] downloads from our seed', { skip: skip6, timeout: 120_000 }, () => ltLeechesFromOurSeed('::1'));

test('a mixed swarm: a TCP-only and a uTP-only libtorrent seeder both serve our download', { skip, timeout: 120_000 }, async () => {
  const { dir, tf, full } = await prepare();
  // rate-limited, so that neither can serve it all before the other is reached (the TCP-only
  // one only after our uTP dial to it times out: 3 s)
  const tcp = await LtSwarm.start({ LT_TRANSPORT: 'tcp' });
  stops.push(() => tcp.close());
  const utp = await LtSwarm.start({ LT_TRANSPORT: 'utp' });
  stops.push(() => utp.close());
  const rate = 300 * 1024;
  const a = await tcp.seed(tf, full, rate);
  const b = await utp.seed(tf, full, rate);
  const out = join(dir, 'out-mixed');
  const sources = await download(tf, out, [a.port, b.port]);
  await sameFiles(out);
  const by = new Map(sources.map((s) => [s.peer, s]));
  assert.equal(by.get(`127.0.0.1:${a.port}`)?.transport, 'tcp', JSON.stringify(sources));
  assert.equal(by.get(`127.0.0.1:${b.port}`)?.transport, 'utp', JSON.stringify(sources));
  assert.ok(sources.every((s) => s.bytes > 0), JSON.stringify(sources));
});

test('through a relay losing, duplicating and reordering 2% of datagrams: byte-identical', { skip, timeout: 150_000 }, async () => {
  const { dir, tf, full } = await prepare();
  const lt = await startLtSeeds(tf, full, 1, { LT_TRANSPORT: 'utp' });
  stops.push(lt.stop);
  const relay: UdpRelay = await udpRelay(lt.ports[0]!, { loss: 0.02, duplicate: 0.02, reorder: 0.02, seed: 2 });
  stops.push(() => relay.close());
  const out = join(dir, 'out-lossy');
  const sources = await download(tf, out, [relay.port], ['--no-tcp']);
  await sameFiles(out);
  assert.deepEqual(sources.map((s) => s.transport), ['utp']);
  assert.ok(relay.counts.dropped > 0 && relay.counts.duplicated > 0 && relay.counts.reordered > 0, JSON.stringify(relay.counts));
});

test('peer --utp: one piece from a uTP-only libtorrent seeder, the handshake saying so', { skip, timeout: 120_000 }, async () => {
  const { tf, full } = await prepare();
  const lt = await startLtSeeds(tf, full, 1, { LT_TRANSPORT: 'utp' });
  stops.push(lt.stop);
  const res = await runCli(['peer', `127.0.0.1:${lt.ports[0]}`, tf, '--utp', '--request', '3', '--timeout', '20'], { timeoutMs: 60_000 });
  assert.equal(res.code, 0, res.stderr);
  const lines = res.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(lines.some((l) => l['type'] === 'handshake' && l['dir'] === 'in' && l['transport'] === 'utp'), res.stdout.toString());
  assert.deepEqual(lines.find((l) => l['event'] === 'piece'), { event: 'piece', index: 3, length: PL, valid: true, sha1: lines.find((l) => l['event'] === 'piece')!['sha1'] });
});

test('--max-download-rate over uTP: pausing the stream shrinks the window the seeder sees', { skip, timeout: 120_000 }, async () => {
  const { dir, tf, full } = await prepare();
  const lt = await startLtSeeds(tf, full, 1, { LT_TRANSPORT: 'utp' });
  stops.push(lt.stop);
  const out = join(dir, 'out-rate');
  const rate = 1024 * 1024;
  const t0 = Date.now();
  const sources = await download(tf, out, lt.ports, ['--no-tcp', '--max-download-rate', '1M']);
  const seconds = (Date.now() - t0) / 1000;
  await sameFiles(out);
  assert.deepEqual(sources.map((s) => s.transport), ['utp']);
  // ~3 MiB at 1 MiB/s: the limit holds (a bucket's first second may burst)
  assert.ok(seconds > (SIZE / rate) * 0.6, `${SIZE} bytes in ${seconds} s at ${rate} B/s`);
});

test('fetch-metadata --no-tcp: a magnet\'s metadata from a uTP-only libtorrent seeder', { skip, timeout: 120_000 }, async () => {
  const { tf, full } = await prepare();
  const lt = await startLtSeeds(tf, full, 1, { LT_TRANSPORT: 'utp' });
  stops.push(lt.stop);
  const { torrent } = makeTorrent('utp', files, PL);
  const res = await runCli(['fetch-metadata', torrent.infoHashHex, '--peer', `127.0.0.1:${lt.ports[0]}`, '--no-tcp', '--timeout', '20'], { timeoutMs: 60_000 });
  assert.equal(res.code, 0, res.stderr);
  assert.ok(res.stdout.includes(torrent.infoRaw), 'the info dict, byte for byte');
});

test('--no-utp with --no-tcp is a usage error', async () => {
  const { dir, tf, full } = await prepare();
  const peer = ['--peer', '127.0.0.1:1'];
  for (const cmd of [['download', tf, '-o', join(dir, 'o'), ...peer], ['seed', tf, full], ['fetch-pieces', tf, '--no-dht', ...peer], ['fetch-metadata', '0'.repeat(40), ...peer]]) {
    const res = await runCli([...cmd, '--no-utp', '--no-tcp']);
    assert.equal(res.code, 2, `${cmd[0]}: ${res.stderr}`);
    assert.match(res.stderr, /--no-utp and --no-tcp together leave no way to reach a peer/);
  }
});
