import { after, before, describe, it } from 'node:test';
import { bytes, rng, seedFromEnv } from './helpers/random.js';
import { exchange, udpEndpoint, type UdpEndpoint } from './helpers/udp-utp.js';

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
    const ms = await exchange(a.endpoint, b.endpoint, b.port, up, down, `seed ${seed}`);
    console.log(`# 16 MiB (8 each way) in ${ms.toFixed(0)} ms; ${JSON.stringify(a.endpoint.stats())}`);
  });
});
