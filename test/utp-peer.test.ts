/**
 * The peer connection runs on a UtpStream as on a TCP socket: MSE (RC4) and the wire protocol
 * over uTP on loopback, through the lossy relay, unchanged.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { CRYPTO_RC4 } from '../src/wire/mse.js';
import { PeerConnection } from '../src/wire/peer-connection.js';
import { makePeerId } from '../src/wire/protocol.js';
import type { UtpStream } from '../src/utp/stream.js';
import { udpRelay, type UdpRelay } from './helpers/udp-relay.js';
import { nextConnection, udpEndpoint, type UdpEndpoint } from './helpers/udp-utp.js';
import { seedFromEnv } from './helpers/random.js';

describe('PeerConnection over uTP', () => {
  let a: UdpEndpoint;
  let b: UdpEndpoint;
  let relay: UdpRelay;
  const seed = seedFromEnv();
  before(async () => {
    a = await udpEndpoint();
    b = await udpEndpoint();
    relay = await udpRelay(b.port, { loss: 0.02, duplicate: 0.02, reorder: 0.02, seed });
  });
  after(async () => {
    await relay.close();
    await a.close();
    await b.close();
  });

  it('MSE handshake, 8 MiB of pieces through a 2% lossy relay, close seen by the other end', { timeout: 60_000 }, async () => {
    const infoHash = randomBytes(20);
    const limits = { pieceCount: 1024, pieceSize: () => 256 * 1024 };
    const accepted = nextConnection(b.endpoint);
    const dialled: UtpStream = a.endpoint.connect('127.0.0.1', relay.port);
    await once(dialled, 'connect');
    const out = new PeerConnection(dialled, { peerId: makePeerId(randomBytes), infoHash, outgoing: true, limits, encrypt: CRYPTO_RC4 });
    const inc = new PeerConnection(await accepted, { peerId: makePeerId(randomBytes), outgoing: false, accept: (h) => (h.equals(infoHash) ? limits : null), skeys: [infoHash] });
    const blocks = 512;
    let got = 0;
    let bad = 0;
    const done = new Promise<void>((resolve) => out.on('message', (m) => {
      if (m.type !== 'piece') return;
      if (m.block[0] !== (m.index & 0xff) || m.block[m.block.length - 1] !== (m.begin >> 14)) bad++;
      if (++got === blocks) resolve();
    }));
    await new Promise((resolve) => inc.once('handshake', resolve));
    let i = 0;
    const pump = (): void => {
      for (; i < blocks; i++) {
        const block = Buffer.alloc(16 * 1024, i & 0xff);
        block[block.length - 1] = i % 16;
        if (!inc.send({ type: 'piece', index: i, begin: (i % 16) << 14, block })) {
          i++;
          return;
        }
      }
    };
    inc.on('drain', pump);
    pump();
    await done;
    assert.equal(bad, 0, `seed ${seed}`);
    assert.equal(out.closed, false);
    const closed = new Promise((resolve) => out.on('close', resolve));
    inc.close(null);
    assert.equal(((await closed) as { kind: string } | null)?.kind, 'hang-up');
  });
});
