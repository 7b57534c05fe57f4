import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { bytes, rng, seedFromEnv } from './helpers/random.js';
import { nextConnection, readBytes, sha1, udpEndpoint, type UdpEndpoint, writeAll } from './helpers/udp-utp.js';

describe('uTP over UDP on loopback', () => {
  let a: UdpEndpoint;
  let b: UdpEndpoint;
  before(async () => {
    a = await udpEndpoint();
    b = await udpEndpoint();
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  it('connects, carries 8 MiB each way byte-identical, and ends with FIN', { timeout: 60_000 }, async () => {
    const seed = seedFromEnv();
    const r = rng(seed);
    const up = bytes(r, 8 << 20);
    const down = bytes(r, 8 << 20);
    const accepted = nextConnection(b.endpoint);
    const client = a.endpoint.connect('127.0.0.1', b.port);
    await once(client, 'connect');
    const server = await accepted;
    const t0 = performance.now();
    const gotUp = readBytes(server, up.length);
    const gotDown = readBytes(client, down.length);
    await Promise.all([writeAll(client, up), writeAll(server, down)]);
    const [u, d] = await Promise.all([gotUp, gotDown]);
    const ms = performance.now() - t0;
    assert.equal(u.hash, sha1(up), `seed ${seed}`);
    assert.equal(d.hash, sha1(down), `seed ${seed}`);
    // FIN: the client ends, the server sees 'end' then 'close'
    const ended = once(server, 'end');
    const serverClosed = once(server, 'close');
    client.destroy();
    await ended;
    await serverClosed;
    console.log(`# 16 MiB (8 each way) in ${ms.toFixed(0)} ms; ${JSON.stringify(a.endpoint.stats())}`);
  });
});
