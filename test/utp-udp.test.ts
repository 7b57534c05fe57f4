import { after, before, describe, it } from 'node:test';
import { bytes, rng, seedFromEnv } from './helpers/random.js';
import { udpRelay } from './helpers/udp-relay.js';
import { exchange, udpEndpoint, type UdpEndpoint } from './helpers/udp-utp.js';

const SIZE = 4 << 20;

/** Two uTP endpoints on real UDP sockets on loopback, directly and through a lossy relay. */
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

  it('directly, without loss: 8 MiB each way byte-identical, then FIN', { timeout: 60_000 }, async () => {
    const seed = seedFromEnv();
    const r = rng(seed);
    const up = bytes(r, 8 << 20);
    const down = bytes(r, 8 << 20);
    const ms = await exchange(a.endpoint, b.endpoint, b.port, up, down, `seed ${seed}`);
    console.log(`# 16 MiB (8 each way) in ${ms.toFixed(0)} ms; ${JSON.stringify(a.endpoint.stats())}`);
  });

  for (const rate of [0.01, 0.02, 0.05]) {
    it(`through a relay with ${rate * 100}% loss, duplication and reordering, 2 ms each way: 4 MiB one way, 1 MiB back, byte-identical`, { timeout: 90_000 }, async () => {
      const seed = seedFromEnv();
      const relay = await udpRelay(b.port, { loss: rate, duplicate: rate, reorder: rate, delayMs: 2, seed });
      try {
        const r = rng(seed);
        const up = bytes(r, SIZE);
        const down = bytes(r, SIZE / 4);
        const ms = await exchange(a.endpoint, b.endpoint, relay.port, up, down, `seed ${seed}`);
        console.log(`# ${rate * 100}%: 5 MiB in ${ms.toFixed(0)} ms (${(5 / (ms / 1000)).toFixed(1)} MiB/s); relay ${JSON.stringify(relay.counts)}; a ${JSON.stringify(a.endpoint.stats())} b ${JSON.stringify(b.endpoint.stats())}; seed ${seed}`);
      } finally {
        await relay.close();
      }
    });
  }
});
