/**
 * The session's two transports: an incoming uTP stream on the UDP port takes the TCP socket's
 * path (routed by the info hash its handshake names, its record saying 'utp'); --no-tcp binds
 * the UDP port alone; --no-utp leaves the UDP socket to the DHT and trackers.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { SharedUdp } from '../src/net/udp-socket.js';
import type { PeerRecord } from '../src/peers/record.js';
import { Session } from '../src/session/session.js';
import { UtpEndpoint } from '../src/utp/endpoint.js';
import type { UtpStream } from '../src/utp/stream.js';
import { encodeHandshake, reservedBits } from '../src/wire/protocol.js';

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
