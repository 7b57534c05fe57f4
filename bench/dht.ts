/**
 * A get_peers lookup on a loopback DHT of 200 of our nodes (one process, one UDP socket each):
 * by one of our nodes against one by an npm bittorrent-dht node, same DHT, same run. Queries
 * are counted where they arrive (the 200 nodes' received-query counters), so both clients are
 * measured the same way; time to the first peer from the start of the lookup.
 */
import { randomBytes } from 'node:crypto';
import DHT from 'bittorrent-dht';
import { DhtNode } from '../src/dht/node.js';
import { fmt } from './harness.js';

function received(nodes: DhtNode[]): number {
  return nodes.reduce((n, x) => n + x.stats().queriesReceived, 0);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function benchDht(count = 200, rounds = 7): Promise<string[]> {
  const nodes: DhtNode[] = [];
  const first = new DhtNode({ host: '127.0.0.1', bootstrap: [], stateFile: null });
  await first.start();
  nodes.push(first);
  const boot = { host: '127.0.0.1', port: first.address().port };
  for (let i = 1; i < count; i++) {
    const n = new DhtNode({ host: '127.0.0.1', bootstrap: [boot], stateFile: null });
    await n.start();
    nodes.push(n);
  }
  await Promise.all(nodes.map((n) => n.ready()));
  await Promise.all(nodes.slice(1).map((n) => n.findNode(n.id)));
  await Promise.all(nodes.map((n) => n.refresh()));

  const ours = new DhtNode({ host: '127.0.0.1', bootstrap: [boot], stateFile: null, readOnly: true });
  await ours.start();
  await ours.ready();
  const js = new DHT({ bootstrap: [`${boot.host}:${boot.port}`], host: '127.0.0.1' });
  js.on('error', () => {});
  js.on('warning', () => {});
  await new Promise<void>((res) => js.listen(0, '127.0.0.1', () => res()));
  await new Promise<void>((res) => js.once('ready', () => res()));

  const oq: number[] = [];
  const ot: number[] = [];
  const jq: number[] = [];
  const jt: number[] = [];
  const of: number[] = [];
  const jf: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const ih = randomBytes(20);
    for (const k of [17, 99, 150]) await nodes[k]!.announce(ih, 40_000 + k);
    await new Promise((res) => setTimeout(res, 200)); // let the 200 settle (refresh traffic)
    let before = received(nodes);
    let t0 = performance.now();
    let firstAt: number | null = null;
    const oursFound = new Set<number>();
    await ours.getPeers(ih, (p) => {
      firstAt ??= performance.now() - t0;
      oursFound.add(p.port);
    });
    of.push(oursFound.size);
    oq.push(received(nodes) - before);
    ot.push(firstAt ?? NaN);
    before = received(nodes);
    t0 = performance.now();
    firstAt = null;
    const jsFound = new Set<number>();
    await new Promise<void>((resolve) => {
      const onPeer = (p: { port: number }, got: Uint8Array): void => {
        if (!Buffer.from(got).equals(ih)) return;
        firstAt ??= performance.now() - t0;
        jsFound.add(p.port);
      };
      js.on('peer', onPeer);
      js.lookup(ih, () => {
        js.off('peer', onPeer);
        resolve();
      });
    });
    jf.push(jsFound.size);
    jq.push(received(nodes) - before);
    jt.push(firstAt ?? NaN);
  }
  await new Promise<void>((res) => js.destroy(() => res()));
  await ours.close();
  await Promise.all(nodes.map((n) => n.close()));
  const [q1, q2, t1, t2] = [median(oq), median(jq), median(ot), median(jt)];
  return [
    `## dht (get_peers on a loopback DHT of ${count} of our nodes; median of ${rounds} lookups, 3 peers announced each)`,
    '',
    '| client | queries sent | time to first peer | peers found (fewest of 3, any round) |',
    '|---|---|---|---|',
    `| torrent-tools DhtNode | ${q1} | ${fmt(t1, 1)} ms | ${Math.min(...of)} |`,
    `| bittorrent-dht 11 | ${q2} | ${fmt(t2, 1)} ms | ${Math.min(...jf)} |`,
    `| ratio ours / theirs (target ≤ 1.0) | ${fmt(q1 / q2)} | ${fmt(t1 / t2)} | |`,
  ];
}
