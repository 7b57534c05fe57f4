/**
 * The session's two transports: an incoming uTP stream on the UDP port takes the TCP socket's
 * path (routed by the info hash its handshake names, its record saying 'utp'); --no-tcp binds
 * the UDP port alone; --no-utp leaves the UDP socket to the DHT and trackers.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { SharedUdp } from '../src/net/udp-socket.js';
import type { PeerRecord } from '../src/peers/record.js';
import { Session } from '../src/session/session.js';
import { UtpEndpoint } from '../src/utp/endpoint.js';
import type { UtpStream } from '../src/utp/stream.js';
import { encodeHandshake, reservedBits } from '../src/wire/protocol.js';
import { runCli } from './helpers/cli.js';
import { hasIpv6Loopback } from './helpers/ports.js';
import { startSeed } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles } from './helpers/torrent.js';

const noIpv6 = (await hasIpv6Loopback()) ? false : 'IPv6 loopback (::1) is not available here';

test('an incoming uTP stream is routed by the info hash it names, its record saying utp', async () => {
  const session = new Session();
  const port = await session.listen(0, '127.0.0.1');
  assert.ok(session.utp !== null && session.udp?.port === port, 'uTP on the UDP port of the TCP port\'s number');
  const infoHash = randomBytes(20);
  const adopted: PeerRecord[] = [];
  session.host({ infoHash, adopt: (_conn, rec) => (adopted.push(rec), null) });
  const udp = await SharedUdp.bind(0, '127.0.0.1');
  const dialer = new UtpEndpoint(udp);
  udp.onUtp((b, a, p) => dialer.receive(b, a, p));
  try {
    const stream: UtpStream = dialer.connect('127.0.0.1', port);
    await once(stream, 'connect');
    stream.on('error', () => {});
    stream.write(encodeHandshake({ reserved: reservedBits({ extended: true }), infoHash, peerId: randomBytes(20) }));
    // refused (adopt said null): the stream is closed on us
    await once(stream, 'close');
    assert.equal(adopted.length, 1);
    assert.equal(adopted[0]!.transport, 'utp');
    assert.equal(adopted[0]!.port, udp.port, 'the peer is named by its UDP address');
  } finally {
    dialer.close();
    await udp.close();
    await session.close();
  }
});

test('--no-tcp: the UDP port alone, uTP the only way to dial', async () => {
  const session = new Session({ tcp: false });
  try {
    const port = await session.listen(0, '127.0.0.1');
    assert.equal(session.udp?.port, port);
    assert.equal(session.port, port, 'the UDP port is the one advertised');
    const t = session.transports;
    assert.equal(t.tcp, false);
    assert.ok(t.utp !== null);
  } finally {
    await session.close();
  }
});

test('--no-utp: no uTP endpoint; the UDP socket stays for the DHT and trackers', async () => {
  const session = new Session({ utp: false });
  try {
    await session.listen(0, '127.0.0.1');
    assert.ok(session.udp !== null);
    assert.equal(session.utp, null);
    assert.deepEqual({ ...session.transports }, { tcp: true, utp: null });
  } finally {
    await session.close();
  }
});

test('before listening (or without a UDP socket) a session dials TCP only; neither transport is refused', () => {
  assert.deepEqual({ ...new Session().transports }, { tcp: true, utp: null });
  assert.throws(() => new Session({ tcp: false, utp: false }), /neither TCP nor uTP/);
});

test('IPv6: a session on ::1 speaks uTP on an IPv6 socket of the same number, and dials IPv6 addresses over it', { skip: noIpv6 }, async () => {
  const session = new Session();
  const other = new Session({ tcp: false });
  try {
    const port = await session.listen(0, '::1');
    assert.equal(session.udp, null, 'no IPv4 socket on an IPv6 address');
    assert.equal(session.udp6?.port, port);
    assert.deepEqual(session.transports.utpFamilies, [6]);
    const infoHash = randomBytes(20);
    const adopted: PeerRecord[] = [];
    session.host({ infoHash, adopt: (_conn, rec) => (adopted.push(rec), null) });
    // a session on every address: IPv4 for the DHT and trackers, its IPv6 twin on the same number
    await other.listen(0);
    assert.equal(other.udp6?.port, other.udp?.port);
    assert.deepEqual(other.transports.utpFamilies, [4, 6]);
    const stream = other.transports.utp!('::1', port) as UtpStream;
    await once(stream, 'connect');
    stream.on('error', () => {});
    stream.write(encodeHandshake({ reserved: reservedBits({ extended: true }), infoHash, peerId: randomBytes(20) }));
    await once(stream, 'close');
    assert.equal(adopted.length, 1);
    assert.deepEqual([adopted[0]!.ip, adopted[0]!.port, adopted[0]!.transport], ['::1', other.udp6!.port, 'utp']);
  } finally {
    await other.close();
    await session.close();
  }
});

test('IPv6: our download --no-tcp from our seed on [::1], and peer --utp to it', { skip: noIpv6, timeout: 60_000 }, async () => {
  const dir = await tmpDir('tt-utp6-');
  const files = [{ path: ['a.bin'], data: randomBytes(300_000) }];
  const { bytes } = makeTorrent('six', files, 32_768);
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, bytes);
  await writeFiles(join(dir, 'full'), 'six', files);
  const seed = await startSeed(tf, join(dir, 'full'), { host: '::1' });
  try {
    const res = await runCli(['download', tf, '-o', join(dir, 'out'), '--no-tcp', '--no-announce', '--no-dht', '--port', '0', '--peer', `[::1]:${seed.port}`, '--timeout', '30', '--json', '--quiet'], { timeoutMs: 45_000 });
    assert.equal(res.code, 0, res.stderr + seed.stderr());
    assert.ok((await readFile(join(dir, 'out', 'six', 'a.bin'))).equals(files[0]!.data));
    const sources = res.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { event: string; sources?: Array<{ peer: string; transport?: string }> }).find((e) => e.event === 'sources')?.sources;
    assert.deepEqual(sources?.map((s) => s.transport), ['utp'], JSON.stringify(sources));
    const peer = await runCli(['peer', `[::1]:${seed.port}`, tf, '--utp', '--request', '0'], { timeoutMs: 30_000 });
    assert.equal(peer.code, 0, peer.stderr);
    const lines = peer.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.some((l) => l['transport'] === 'utp'), 'the handshake record says utp');
    assert.ok(lines.some((l) => l['event'] === 'piece' && l['valid'] === true), 'piece 0 arrived valid');
  } finally {
    await seed.stop();
  }
});
