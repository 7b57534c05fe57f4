/**
 * One uTP stream over loopback UDP between two endpoints of this process: MiB/s and CPU
 * seconds per GiB (both ends together, as both run here), without loss and through the relay
 * at 2% loss/duplication/reordering, against a loopback TCP socket pair in the same process.
 */
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { fmt } from './harness.js';
import { udpRelay } from '../test/helpers/udp-relay.js';
import { nextConnection, readBytes, udpEndpoint, writeAll } from '../test/helpers/udp-utp.js';

interface Run {
  mibps: number;
  cpuPerGiB: number;
  /** the sender's retransmissions, timeouts and probes (uTP runs) */
  resends?: string;
}

function measure<T>(bytes: number, run: () => Promise<T>): Promise<Run> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  return run().then(() => {
    const s = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    const cpu = (c.user + c.system) / 1e6;
    return { mibps: bytes / 2 ** 20 / s, cpuPerGiB: cpu / (bytes / 2 ** 30) };
  });
}

async function utpRun(size: number, loss: number): Promise<Run> {
  const a = await udpEndpoint();
  const b = await udpEndpoint();
  const relay = loss > 0 ? await udpRelay(b.port, { loss, duplicate: loss, reorder: loss, seed: 1 }) : null;
  try {
    const accepted = nextConnection(b.endpoint);
    const client = a.endpoint.connect('127.0.0.1', relay ? relay.port : b.port);
    await once(client, 'connect');
    const server = await accepted;
    const data = randomBytes(1 << 20);
    const run = await measure(size, async () => {
      const got = readBytes(server, size);
      for (let at = 0; at < size; at += data.length) await writeAll(client, data);
      await got;
    });
    const st = a.endpoint.stats();
    return { ...run, resends: `${st.retransmitted} resent of ${st.packetsSent} sent, ${st.timeouts} timeouts, ${st.probes} probes` };
  } finally {
    await relay?.close();
    await a.close();
    await b.close();
  }
}

async function tcpRun(size: number): Promise<Run> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'connection').then(([s]) => s as Socket);
  const client = connect(port, '127.0.0.1');
  await once(client, 'connect');
  const s = await accepted;
  const data = randomBytes(1 << 20);
  try {
    return await measure(size, async () => {
      let got = 0;
      const done = new Promise<void>((res) => s.on('data', (b: Buffer) => {
        got += b.length;
        if (got >= size) res();
      }));
      for (let at = 0; at < size; at += data.length) if (!client.write(data)) await once(client, 'drain');
      await done;
    });
  } finally {
    client.destroy();
    s.destroy();
    server.close();
  }
}

export async function benchUtp(): Promise<string[]> {
  const size = 256 << 20;
  const clean = await utpRun(size, 0);
  const lossy = await utpRun(64 << 20, 0.02);
  const tcp = await tcpRun(size);
  const line = (name: string, r: Run) => `utp ${name}: ${fmt(r.mibps, 1)} MiB/s, ${fmt(r.cpuPerGiB, 1)} CPU s/GiB (both ends); ${r.resends}`;
  return [
    line('loopback, one stream, 256 MiB', clean),
    line('2% loss+dup+reorder relay, 64 MiB', lossy),
    `tcp loopback, one socket pair, 256 MiB: ${fmt(tcp.mibps, 1)} MiB/s, ${fmt(tcp.cpuPerGiB, 1)} CPU s/GiB (both ends)`,
    `utp / tcp wall time: ${fmt(tcp.mibps / clean.mibps, 2)}x`,
  ];
}
