/** The DHT (BEP 5): a loopback DHT of our own nodes, hostile packets, the CLI, and interop. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import DHT from 'bittorrent-dht';
import { decode } from '../src/bencode/decoder.js';
import { encode } from '../src/bencode/encoder.js';
import type { BValue } from '../src/bencode/types.js';
import { decodeNodes, encodeNodes, parseKrpc } from '../src/dht/krpc.js';
import { DhtNode } from '../src/dht/node.js';
import { compareDistance, randomId, randomIdWithPrefix, sharedPrefix } from '../src/dht/node-id.js';
import { PeerStore, PEER_TTL_MS } from '../src/dht/peer-store.js';
import { K, RoutingTable } from '../src/dht/routing-table.js';
import { ROTATE_MS, Tokens } from '../src/dht/tokens.js';
import { CLI, runCli, runShell } from './helpers/cli.js';
import { FIXTURES, SYSTEM_PYTHON, hasLibtorrent, skipUnless } from './helpers/interop.js';
import { bytes, rng } from './helpers/random.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles, type TestFile } from './helpers/torrent.js';

const nodes: DhtNode[] = [];
const procs: ChildProcess[] = [];
const seeds: SeedProc[] = [];
after(async () => {
  procs.forEach((p) => p.kill('SIGKILL'));
  await Promise.all([...nodes.map((n) => n.close()), ...seeds.map((s) => s.stop())]);
});

async function startNode(bootstrapPort: number | null, extra: ConstructorParameters<typeof DhtNode>[0] = {}): Promise<DhtNode> {
  const n = new DhtNode({ host: '127.0.0.1', bootstrap: bootstrapPort === null ? [] : [{ host: '127.0.0.1', port: bootstrapPort }], stateFile: null, ...extra });
  await n.start();
  nodes.push(n);
  return n;
}

/** A loopback DHT of `count` nodes, all bootstrapped off the first, tables settled. */
async function startDht(count: number): Promise<DhtNode[]> {
  const first = await startNode(null);
  const port = first.address().port;
  const rest: DhtNode[] = [];
  for (let i = 1; i < count; i++) rest.push(await startNode(port));
  await Promise.all(rest.map((n) => n.ready()));
  // a second round: tables fill with the nodes that joined after each one bootstrapped, and
  // the buckets with room are refreshed (each node does that after its bootstrap by itself)
  await Promise.all(rest.map((n) => n.findNode(n.id)));
  await Promise.all([first, ...rest].map((n) => n.refresh()));
  return [first, ...rest];
}

let shared: Promise<DhtNode[]> | null = null;
const dht50 = (): Promise<DhtNode[]> => (shared ??= startDht(50));

test('node ids: distance order, shared prefixes, refresh ids in a bucket', () => {
  const r = rng(5);
  for (let i = 0; i < 200; i++) {
    const self = bytes(r, 20);
    const bits = Math.floor(r() * 160);
    const id = randomIdWithPrefix(self, bits);
    assert.equal(sharedPrefix(self, id), bits);
  }
  const t = Buffer.alloc(20);
  assert.equal(compareDistance(t, Buffer.from('00'.repeat(19) + '01', 'hex'), Buffer.from('00'.repeat(19) + '02', 'hex')), -1);
});

test('routing table: bounded, k per bucket, closest() agrees with brute force, bad nodes replaced', () => {
  const self = randomId();
  const table = new RoutingTable(self);
  const all: Array<{ id: Buffer; ip: string; port: number }> = [];
  for (let i = 0; i < 5000; i++) {
    const n = { id: randomId(), ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 1000 + (i % 50000) };
    all.push(n);
    table.heard(n, true);
  }
  assert.ok(table.size <= 161 * K, `size ${table.size}`);
  // every node in the table is one of the K closest in its bucket's range that we offered first
  const target = randomId();
  const got = table.closest(target, 8);
  const inTable = table.all().sort((a, b) => compareDistance(target, a.id, b.id)).slice(0, 8);
  assert.deepEqual(got.map((n) => n.id.toString('hex')), inTable.map((n) => n.id.toString('hex')));
  // the closest nodes to our own id are all kept: those buckets never fill
  const near = all.filter((n) => sharedPrefix(self, n.id) >= 12);
  for (const n of near) assert.ok(table.all().some((x) => x.id.equals(n.id)), 'a node near our id was dropped');
  // a bucket full of nodes: one fails twice and the replacement takes its place
  const victim = table.all().find((n) => sharedPrefix(self, n.id) === 0)!;
  const spare = { id: Buffer.from(victim.id), ip: '10.200.0.1', port: 9 };
  spare.id[19] ^= 1;
  table.heard(spare, true);
  table.failed(victim);
  table.failed(victim);
  assert.ok(!table.all().some((n) => n === victim));
  assert.ok(table.all().some((n) => n.ip === '10.200.0.1'));
});

test('tokens: valid for the address they were given to, for 5 to 10 minutes', () => {
  const t0 = 1_000_000;
  const tokens = new Tokens(t0);
  const tok = tokens.issue('1.2.3.4', t0);
  assert.ok(tokens.valid('1.2.3.4', tok, t0 + 1000));
  assert.ok(!tokens.valid('1.2.3.5', tok, t0 + 1000));
  assert.ok(tokens.valid('1.2.3.4', tok, t0 + ROTATE_MS + 1000));
  assert.ok(!tokens.valid('1.2.3.4', tok, t0 + 2 * ROTATE_MS + 1000));
});

test('peer store: bounded in total too, the oldest info hash giving way first', () => {
  const s = new PeerStore({ perHash: 100, hashes: 100, total: 250 });
  const hs = [randomId(), randomId(), randomId(), randomId()];
  for (const h of hs) for (let i = 0; i < 100; i++) s.add(h, `10.1.0.${i}`, 2000 + i, 0);
  assert.equal(s.peers, 250);
  assert.equal(s.get(hs[3]!, 1000, 1).length, 100, 'the newest info hash is whole');
  assert.equal(s.get(hs[0]!, 1000, 1).length, 0, 'the oldest gave way');
  const one = new PeerStore({ perHash: 1000, total: 10 });
  for (let i = 0; i < 50; i++) one.add(hs[0]!, '10.2.0.1', 3000 + i, 0);
  assert.equal(one.peers, 10);
  assert.deepEqual(one.get(hs[0]!, 100, 1).map((p) => p.port).sort(), Array.from({ length: 10 }, (_, i) => 3040 + i));
});

test('peer store: bounded per hash and in hashes, entries expire after 30 minutes', () => {
  const s = new PeerStore({ perHash: 10, hashes: 5 });
  const h = randomId();
  for (let i = 0; i < 50; i++) s.add(h, `10.0.0.${i}`, 1000 + i, 0);
  assert.equal(s.get(h, 100, 1).length, 10);
  for (let i = 0; i < 20; i++) s.add(randomId(), '10.0.0.1', 1, 0);
  assert.ok(s.hashes <= 5);
  const h2 = randomId();
  s.add(h2, '10.9.9.9', 99, 0);
  assert.equal(s.get(h2, 10, PEER_TTL_MS - 1).length, 1);
  assert.equal(s.get(h2, 10, PEER_TTL_MS + 1).length, 0);
});

test('compact node info: 26-byte entries only', () => {
  const ns = [{ id: randomId(), ip: '127.0.0.1', port: 6881 }, { id: randomId(), ip: '10.1.2.3', port: 1 }];
  assert.deepEqual(decodeNodes(encodeNodes(ns)), ns);
  assert.equal(decodeNodes(Buffer.alloc(27)), null);
});

test('a loopback DHT of 50 nodes: get_peers finds every peer that announce stored, in a bounded number of queries', { timeout: 60_000 }, async () => {
  const dht = await dht50();
  const ih = randomBytes(20);
  const ports = [5001, 5002, 5003, 5004, 5005];
  for (let i = 0; i < ports.length; i++) {
    const took = await dht[1 + i * 7]!.announce(ih, ports[i]!);
    assert.ok(took >= 4, `announced to ${took} nodes`);
  }
  for (const asker of [dht[45]!, dht[0]!, dht[30]!]) {
    const found = new Set<number>();
    const r = await asker.getPeers(ih, (p) => found.add(p.port));
    assert.deepEqual([...found].sort(), ports, 'every announced peer found');
    assert.ok(r.queries <= 60, `${r.queries} queries`);
  }
});

/**
 * A raw UDP socket for speaking (bad) KRPC at a node; with `skipQueries`, the node's own queries
 * to it (the ping that confirms a node that queried) are not handed to `next`.
 */
async function rawSocket(host = '127.0.0.1', skipQueries = false): Promise<{ s: Socket; send: (b: Buffer, port: number) => void; next: (ms?: number) => Promise<Buffer | null> }> {
  const s = createSocket('udp4');
  await new Promise<void>((res) => s.bind(0, host, () => res()));
  const queue: Buffer[] = [];
  let waiter: ((b: Buffer) => void) | null = null;
  const isQuery = (m: Buffer): boolean => {
    try {
      return parseKrpc(m).y === 'q';
    } catch {
      return false;
    }
  };
  s.on('message', (m) => {
    if (skipQueries && isQuery(m)) return;
    if (waiter) {
      waiter(m);
      waiter = null;
    } else queue.push(m);
  });
  return {
    s,
    send: (b, port) => s.send(b, port, '127.0.0.1'),
    next: (ms = 500) =>
      new Promise((resolve) => {
        const q = queue.shift();
        if (q) return resolve(q);
        const t = setTimeout(() => {
          waiter = null;
          resolve(null);
        }, ms);
        waiter = (b) => {
          clearTimeout(t);
          resolve(b);
        };
      }),
  };
}

const q = (method: string, a: Record<string, BValue>, t = 'aa'): Buffer => encode({ t: Buffer.from(t), y: 'q', q: method, a: new Map(Object.entries(a)) });

test('hostile packets: each is answered with a KRPC error or dropped, and the node keeps working', { timeout: 30_000 }, async () => {
  const node = await startNode(null);
  const port = node.address().port;
  const raw = await rawSocket('127.0.0.1', true);
  const id = randomId();
  const cases: Array<[string, Buffer, number | null]> = [
    ['not bencode', Buffer.from('hello'), null],
    ['a list', encode([1, 2]), null],
    ['no transaction id', encode({ y: 'q', q: 'ping', a: { id } }), null],
    ['query without arguments', encode({ t: Buffer.from('ab'), y: 'q', q: 'ping' }), 203],
    ['id of 19 bytes', q('ping', { id: Buffer.alloc(19) }), 203],
    ['id not a string', q('ping', { id: 5 }), 203],
    ['unknown method', q('vote', { id }), 204],
    ['find_node target of 3 bytes', q('find_node', { id, target: Buffer.from('abc') }), 203],
    ['get_peers without info_hash', q('get_peers', { id }), 203],
    ['announce_peer with a bogus token', q('announce_peer', { id, info_hash: randomId(), port: 1, token: Buffer.from('nope') }), 203],
    ['announce_peer without a port', q('announce_peer', { id, info_hash: randomId(), token: Buffer.from('x') }), 203],
    ['a response to a query never sent', encode({ t: Buffer.from('zz'), y: 'r', r: { id } }), null],
    ['an error to a query never sent', encode({ t: Buffer.from('zz'), y: 'e', e: [201, 'x'] }), null],
    ['y of another kind', encode({ t: Buffer.from('zz'), y: 'x' }), null],
    ['empty datagram', Buffer.alloc(0), null],
    ['no "y"', encode({ t: Buffer.from('ab'), q: 'ping', a: { id } }), null],
    ['transaction id an integer', encode({ t: 5, y: 'q', q: 'ping', a: { id } }), null],
    ['transaction id of 17 bytes', encode({ t: Buffer.alloc(17, 0x61), y: 'q', q: 'ping', a: { id } }), null],
    ['arguments a list', encode({ t: Buffer.from('ab'), y: 'q', q: 'ping', a: [id] }), 203],
    ['method an integer', encode({ t: Buffer.from('ab'), y: 'q', q: 7, a: { id } }), 203],
    ['id of 21 bytes', q('ping', { id: Buffer.alloc(21) }), 203],
    ['get_peers info_hash of 21 bytes', q('get_peers', { id, info_hash: Buffer.alloc(21) }), 203],
    ['announce_peer token an integer', q('announce_peer', { id, info_hash: randomId(), port: 1, token: 5 }), 203],
    ['announce_peer without a token', q('announce_peer', { id, info_hash: randomId(), port: 1 }), 203],
    ['oversized packet', Buffer.concat([Buffer.from('d1:t2:aa1:y1:q1:q4:ping1:ad2:id20:'), id, Buffer.from('5:paddi'), Buffer.alloc(3000, 0x31), Buffer.from('eee')]), null],
    ['deep nesting', Buffer.from('l'.repeat(500) + 'e'.repeat(500)), null],
  ];
  for (const [what, packet, code] of cases) {
    raw.send(packet, port);
    const reply = await raw.next(code === null ? 300 : 2000);
    if (code === null) assert.equal(reply, null, `${what}: expected no reply`);
    else {
      assert.ok(reply, `${what}: expected error ${code}`);
      const m = parseKrpc(reply);
      assert.equal(m.y, 'e', what);
      assert.equal(m.y === 'e' && m.code, code, what);
    }
    // still alive and answering
    raw.send(q('ping', { id }, 'pp'), port);
    const pong = await raw.next(2000);
    assert.ok(pong && parseKrpc(pong).y === 'r', `${what}: no pong afterwards`);
  }
  // a good announce with the token get_peers gave is stored and served back
  raw.send(q('get_peers', { id, info_hash: Buffer.alloc(20, 7) }, 'g1'), port);
  const gp = parseKrpc((await raw.next(2000))!);
  assert.equal(gp.y, 'r');
  const token = gp.y === 'r' ? (gp.r.get('token') as Buffer) : Buffer.alloc(0);
  raw.send(q('announce_peer', { id, info_hash: Buffer.alloc(20, 7), port: 4242, token }, 'a1'), port);
  assert.equal(parseKrpc((await raw.next(2000))!).y, 'r');
  raw.send(q('get_peers', { id, info_hash: Buffer.alloc(20, 7) }, 'g2'), port);
  const gp2 = parseKrpc((await raw.next(2000))!);
  const values = gp2.y === 'r' ? (gp2.r.get('values') as Buffer[]) : [];
  assert.equal(values[0]!.readUInt16BE(4), 4242);
  // a good token, but a port out of range: 203, nothing stored
  const token2 = gp2.y === 'r' ? (gp2.r.get('token') as Buffer) : Buffer.alloc(0);
  for (const bad of [0, 70_000, -1]) {
    raw.send(q('announce_peer', { id, info_hash: Buffer.alloc(20, 8), port: bad, token: token2 }, 'a2'), port);
    const e = parseKrpc((await raw.next(2000))!);
    assert.ok(e.y === 'e' && e.code === 203, `port ${bad}`);
  }
  // a token given to another address (127.0.0.2 is loopback too) is refused
  const other = await rawSocket('127.0.0.2', true);
  other.send(q('announce_peer', { id: randomId(), info_hash: Buffer.alloc(20, 7), port: 4343, token: token2 }, 'a3'), port);
  const stolen = parseKrpc((await other.next(2000))!);
  assert.ok(stolen.y === 'e' && stolen.code === 203, 'a token from another address');
  assert.equal(node.store.peers, 1, 'only the good announce is stored');
  raw.s.close();
  other.s.close();
});

test('replies from an address that was not asked are dropped; nodes strings of the wrong length are ignored', { timeout: 30_000 }, async () => {
  const node = await startNode(null, { queryTimeoutMs: 400 });
  const asked = await rawSocket();
  const other = await rawSocket();
  const askedPort = asked.s.address().port;
  const ping = node.ping('127.0.0.1', askedPort);
  const query = decode((await asked.next(2000))!) as Map<string, BValue>;
  const t = query.get('t') as Buffer;
  // the right transaction id, from the wrong socket: not taken
  other.send(encode({ t, y: 'r', r: { id: randomId() } }), node.address().port);
  await new Promise((r) => setTimeout(r, 100));
  const rid = randomId();
  asked.send(encode({ t, y: 'r', r: { id: rid } }), node.address().port);
  assert.deepEqual(await ping, rid);
  assert.ok(node.stats().dropped >= 1);
  // a find_node answered with 27 bytes of "nodes": the lookup ends cleanly, nothing learnt
  const before = node.table.size;
  const lookup = node.findNode(randomId());
  const fq = decode((await asked.next(2000))!) as Map<string, BValue>;
  asked.send(encode({ t: fq.get('t') as Buffer, y: 'r', r: { id: randomId(), nodes: Buffer.alloc(27, 1) } }), node.address().port);
  await lookup;
  assert.ok(node.table.size <= before + 1);
  asked.s.close();
  other.s.close();
});

/** Reads datagrams from a raw socket until it is quiet for `ms` (retries of earlier queries). */
async function drain(raw: { next: (ms?: number) => Promise<Buffer | null> }, ms = 50): Promise<void> {
  while ((await raw.next(ms)) !== null);
}

test('hostile responses: a lookup through a node that answers garbage ends cleanly, learns nothing from it, and the node keeps working', { timeout: 30_000 }, async () => {
  const fake = await rawSocket();
  const fakeId = randomId();
  const fakePort = fake.s.address().port;
  const node = await startNode(fakePort, { queryTimeoutMs: 150 });
  const reply = (query: Buffer, r: Record<string, BValue> | null, e?: BValue[]): void => {
    const m = decode(query) as Map<string, BValue>;
    const t = m.get('t') as Buffer;
    fake.send(e ? encode({ t, y: 'e', e }) : encode({ t, y: 'r', r: new Map(Object.entries(r!)) }), node.address().port);
  };
  // the bootstrap find_node: a proper answer, so the fake is a known node
  reply((await fake.next(2000))!, { id: fakeId, nodes: Buffer.alloc(0) });
  await node.ready();
  await drain(fake);
  const peerEntry = (ip: number[], p: number): Buffer => Buffer.from([...ip, p >> 8, p & 255]);
  const cases: Array<[string, Record<string, BValue> | null, BValue[] | undefined]> = [
    ['no id', { nodes: Buffer.alloc(0) }, undefined],
    ['id of 19 bytes', { id: Buffer.alloc(19) }, undefined],
    ['nodes an integer', { id: fakeId, nodes: 5 }, undefined],
    ['nodes of 27 bytes', { id: fakeId, nodes: Buffer.alloc(27, 1) }, undefined],
    ['nodes a list', { id: fakeId, nodes: [Buffer.alloc(26)] }, undefined],
    ['values a string', { id: fakeId, token: Buffer.from('tk'), values: Buffer.alloc(6, 1) }, undefined],
    ['values of the wrong sizes and types', { id: fakeId, token: Buffer.from('tk'), values: [Buffer.alloc(5, 1), 7, new Map(), Buffer.alloc(7, 1)] }, undefined],
    ['values with port 0 and multicast', { id: fakeId, values: [peerEntry([127, 0, 0, 1], 0), peerEntry([224, 0, 0, 1], 80)] }, undefined],
    ['token a dict', { id: fakeId, token: new Map([['x', 1]]) }, undefined],
    ['an error reply', null, [201, Buffer.from('go away')]],
    ['an error with a garbage body', null, [Buffer.from('x'), Buffer.from('y'), Buffer.from('z')]],
    ['nodes naming the asker itself and an unspecified address', { id: fakeId, nodes: encodeNodes([{ id: node.id, ip: '127.0.0.1', port: node.address().port }, { id: randomId(), ip: '0.0.0.0', port: 9 }]) }, undefined],
  ];
  for (const [what, r, e] of cases) {
    const ih = randomBytes(20);
    const found: string[] = [];
    const lookupDone = node.getPeers(ih, (p) => found.push(`${p.ip}:${p.port}`));
    const query = await fake.next(2000);
    assert.ok(query, `${what}: no query reached the fake node`);
    reply(query, r, e);
    const res = await lookupDone;
    assert.deepEqual(found, [], `${what}: peers from garbage`);
    assert.ok(res.queries <= 3, `${what}: ${res.queries} queries`);
    await drain(fake);
    // still answering
    const raw = await rawSocket();
    raw.send(q('ping', { id: randomId() }, 'pp'), node.address().port);
    assert.ok(await raw.next(1000), `${what}: no pong afterwards`);
    raw.s.close();
  }
  // and a good reply still works
  const ih = randomBytes(20);
  const found: string[] = [];
  const done = node.getPeers(ih, (p) => found.push(`${p.ip}:${p.port}`));
  reply((await fake.next(2000))!, { id: fakeId, token: Buffer.from('tk'), values: [peerEntry([127, 0, 0, 9], 6999)] });
  await done;
  assert.deepEqual(found, ['127.0.0.9:6999']);
  fake.s.close();
});

test('a node that only sent us queries is handed out to others after it answered our ping, not before', { timeout: 30_000 }, async () => {
  const node = await startNode(null);
  const port = node.address().port;
  const quiet = await rawSocket();
  const quietId = randomId();
  // it asks something: we ping it back to confirm it, and it does not answer
  quiet.send(q('find_node', { id: quietId, target: randomId() }, 'q1'), port);
  assert.ok(await quiet.next(1000), 'no find_node reply');
  const ping = decode((await quiet.next(1000))!) as Map<string, BValue>;
  assert.equal((ping.get('q') as Buffer).toString(), 'ping', 'no confirming ping');
  const asker = await rawSocket('127.0.0.1', true);
  const nodesFor = async (): Promise<string[]> => {
    asker.send(q('find_node', { id: randomId(), target: quietId }, 'q2'), port);
    const m = parseKrpc((await asker.next(1000))!);
    assert.equal(m.y, 'r');
    return (decodeNodes((m.y === 'r' ? m.r.get('nodes') : Buffer.alloc(0)) as Buffer) ?? []).map((n) => n.id.toString('hex'));
  };
  assert.ok(!(await nodesFor()).includes(quietId.toString('hex')), 'an unconfirmed node was handed out');
  // a second one answers the ping: from then on it is handed out
  const polite = await rawSocket();
  const politeId = randomId();
  polite.send(q('ping', { id: politeId }, 'q3'), port);
  await polite.next(1000); // our pong
  const ping2 = decode((await polite.next(1000))!) as Map<string, BValue>;
  polite.send(encode({ t: ping2.get('t') as Buffer, y: 'r', r: { id: politeId } }), port);
  await new Promise((r) => setTimeout(r, 100));
  asker.send(q('find_node', { id: randomId(), target: politeId }, 'q4'), port);
  const m = parseKrpc((await asker.next(1000))!);
  const ids = (decodeNodes((m.y === 'r' ? m.r.get('nodes') : Buffer.alloc(0)) as Buffer) ?? []).map((n) => n.id.toString('hex'));
  assert.ok(ids.includes(politeId.toString('hex')), 'a confirmed node was not handed out');
  // a query with ro=1 (BEP 43) neither enters the table nor gets a confirming ping
  const ro = await rawSocket();
  ro.send(encode({ t: Buffer.from('r1'), y: 'q', q: 'ping', ro: 1, a: { id: randomId() } }), port);
  assert.ok(await ro.next(1000), 'a read-only node is still answered');
  assert.equal(await ro.next(300), null, 'a read-only node was pinged');
  assert.ok(!node.table.all().some((n) => n.port === ro.s.address().port));
  for (const x of [quiet, asker, polite, ro]) x.s.close();
});

test('a flood of queries from one address is cut off; another address is still served', { timeout: 30_000 }, async () => {
  const node = await startNode(null);
  const port = node.address().port;
  const flood = await rawSocket();
  let replies = 0;
  flood.s.on('message', () => replies++);
  const id = randomId();
  for (let i = 0; i < 1000; i++) flood.send(q('ping', { id }, `f${i}`), port);
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(replies < 150, `${replies} replies to 1000 queries`);
  const polite = await startNode(null);
  assert.ok((await polite.ping('127.0.0.1', port)).equals(node.id));
  flood.s.close();
});

test('read-only nodes (BEP 43) query but never answer, and are kept out of routing tables', { timeout: 30_000 }, async () => {
  const dht = await dht50();
  const ro = await startNode(dht[0]!.address().port, { readOnly: true });
  await ro.ready();
  assert.ok(ro.table.size > 0);
  const raw = await rawSocket();
  raw.send(q('ping', { id: randomId() }), ro.address().port);
  assert.equal(await raw.next(400), null);
  for (const n of dht) assert.ok(!n.table.all().some((x) => x.port === ro.address().port), 'a read-only node in a table');
  raw.s.close();
});

test('the dht command: ping, find-node, announce and get-peers (with --trace) against the loopback DHT', { timeout: 60_000 }, async () => {
  const dht = await dht50();
  const boot = `127.0.0.1:${dht[0]!.address().port}`;
  const ping = await runCli(['dht', 'ping', boot, '--no-state']);
  assert.equal(ping.code, 0, ping.stderr);
  assert.equal((JSON.parse(ping.stdout.toString()) as { id: string }).id, dht[0]!.id.toString('hex'));
  const ih = randomBytes(20).toString('hex');
  const ann = await runCli(['dht', 'announce', ih, '--port', '7777', '--bootstrap', boot, '--no-state']);
  assert.equal(ann.code, 0, ann.stderr);
  assert.ok((JSON.parse(ann.stdout.toString().trim().split('\n').at(-1)!) as { nodes: number }).nodes >= 4);
  const gp = await runCli(['dht', 'get-peers', `magnet:?xt=urn:btih:${ih}`, '--bootstrap', boot, '--no-state', '--trace']);
  assert.equal(gp.code, 0, gp.stderr);
  const lines = gp.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(lines.some((l) => l['port'] === 7777 && l['source'] === 'dht' && l['ip'] === '127.0.0.1'), gp.stdout.toString());
  assert.ok(lines.some((l) => l['event'] === 'query' && l['dir'] === 'out' && l['q'] === 'get_peers' && typeof l['addr'] === 'string' && typeof l['t'] === 'string'));
  assert.ok(lines.some((l) => l['event'] === 'reply' && l['dir'] === 'in' && l['q'] === 'get_peers' && /^127\.0\.0\.1:\d+$/.test(String(l['addr']))));
  // every line is either a peer or a trace record
  for (const l of lines) assert.ok(typeof l['event'] === 'string' || (typeof l['ip'] === 'string' && typeof l['port'] === 'number'), JSON.stringify(l));
  // | head -1: the reader going away is a normal end, at once
  const head = await runShell(`set -o pipefail; $TT dht get-peers ${ih} --bootstrap ${boot} --no-state --trace | head -1`, { timeoutMs: 20_000 });
  assert.equal(head.code, 0, head.stderr);
  assert.equal(head.stdout.toString().trim().split('\n').length, 1);
  // --watch ends at --timeout when one is given, having printed each peer once
  const watch = await runCli(['dht', 'get-peers', ih, '--bootstrap', boot, '--no-state', '--watch', '--timeout', '2'], { timeoutMs: 20_000 });
  assert.equal(watch.code, 0, watch.stderr);
  assert.deepEqual(watch.stdout.toString().trim().split('\n').map((l) => (JSON.parse(l) as { port: number }).port), [7777]);
  const fn = await runCli(['dht', 'find-node', dht[17]!.id.toString('hex'), '--bootstrap', boot, '--no-state']);
  assert.equal(fn.code, 0, fn.stderr);
  assert.equal((JSON.parse(fn.stdout.toString().split('\n')[0]!) as { id: string }).id, dht[17]!.id.toString('hex'));
  // the state file: written at exit, reused (same id) at the next start
  const dir = await tmpDir('tt-dht-state-');
  const state = join(dir, 'dht.json');
  await runCli(['dht', 'find-node', randomId().toString('hex'), '--bootstrap', boot, '--state', state]);
  const saved = JSON.parse(await readFile(state, 'utf8')) as { id: string; nodes: unknown[] };
  assert.ok(saved.nodes.length >= 8);
  const again = await runCli(['dht', 'get-peers', ih, '--state', state, '--trace'], { env: { TORRENT_TOOLS_DHT_BOOTSTRAP: boot } });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout.toString(), /"port":7777/);
  for (const bad of [['dht'], ['dht', 'frobnicate'], ['dht', 'get-peers'], ['dht', 'ping', 'nohostport'], ['dht', 'find-node', 'xyz'], ['dht', 'announce', ih], ['dht', 'get-peers', ih, '--bootstrap', 'x'], ['dht', 'ping', boot, '--watch'], ['dht', 'get-peers', ih, '--bind', 'nowhere'], ['dht', 'get-peers', ih, '--frob'], ['dht', 'get-peers', ih, '--timeout', '0'], ['dht', 'find-node', ih, '--stats-interval', '3']]) {
    assert.equal((await runCli(bad)).code, 2, bad.join(' '));
  }
});

test('dht get-peers | fetch-pieces | assemble, and download of a bare magnet, find a swarm through the DHT alone', { timeout: 90_000 }, async () => {
  const dht = await dht50();
  const boot = `127.0.0.1:${dht[0]!.address().port}`;
  const r = rng(3);
  const files: TestFile[] = [{ path: ['a.bin'], data: bytes(r, 300_000) }, { path: ['b.bin'], data: bytes(r, 70_000) }];
  const { bytes: tb, torrent: t } = makeTorrent('viadht', files, 32 * 1024);
  const dir = await tmpDir('tt-dht-swarm-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  await writeFiles(join(dir, 'data'), 'viadht', files);
  const s = await Promise.all([startSeed(tf, join(dir, 'data')), startSeed(tf, join(dir, 'data'))]);
  seeds.push(...s);
  // the seeders announce themselves with the dht stage
  for (const x of s) assert.equal((await runCli(['dht', 'announce', t.infoHashHex, '--port', String(x.port), '--bootstrap', boot, '--no-state'])).code, 0);
  const out = join(dir, 'out');
  const res = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const c = spawn('bash', ['-c', `set -o pipefail; "${process.execPath}" "${CLI}" dht get-peers ${t.infoHashHex} --bootstrap ${boot} --no-state | "${process.execPath}" "${CLI}" fetch-pieces "${tf}" --no-dht --quiet | "${process.execPath}" "${CLI}" assemble "${tf}" -o "${out}" --quiet > /dev/null`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    c.on('close', (code) => resolve({ code, err }));
  });
  assert.equal(res.code, 0, res.err);
  for (const f of files) assert.deepEqual(await readFile(join(out, 'viadht', ...f.path)), f.data);
  const out2 = join(dir, 'out2');
  const dl = await runCli(['download', `magnet:?xt=urn:btih:${t.infoHashHex}`, '-o', out2, '--port', '0', '--bootstrap', boot, '--quiet', '--json'], { timeoutMs: 60_000 });
  assert.equal(dl.code, 0, dl.stderr);
  assert.match(dl.stdout.toString(), /"event":"metadata","source":"peers"/);
  for (const f of files) assert.deepEqual(await readFile(join(out2, 'viadht', ...f.path)), f.data);
});

test('interop: our node and an npm bittorrent-dht node find each other\'s announced peers', { timeout: 60_000 }, async () => {
  const dht = await dht50();
  const bootPort = dht[0]!.address().port;
  const js = new DHT({ bootstrap: [`127.0.0.1:${bootPort}`], host: '127.0.0.1' });
  js.on('error', () => {});
  js.on('warning', () => {});
  await new Promise<void>((res) => js.listen(0, '127.0.0.1', () => res()));
  await new Promise<void>((res) => js.once('ready', () => res()));
  const ihJs = randomBytes(20);
  await new Promise<void>((res, rej) => js.announce(ihJs, 6011, (e) => (e ? rej(e) : res())));
  const found = new Set<number>();
  await dht[33]!.getPeers(ihJs, (p) => found.add(p.port));
  assert.ok(found.has(6011), `ours found the js announce: ${[...found]}`);
  const ihOurs = randomBytes(20);
  await dht[12]!.announce(ihOurs, 6012);
  const jsFound = await new Promise<number[]>((resolve) => {
    const ports: number[] = [];
    js.on('peer', (p, ih) => Buffer.from(ih).equals(ihOurs) && ports.push(p.port));
    js.lookup(ihOurs, () => resolve(ports));
  });
  assert.ok(jsFound.includes(6012), `js found ours: ${jsFound}`);
  await new Promise<void>((res) => js.destroy(() => res()));
});

test('interop: our dht get-peers finds a python-libtorrent seeder through its DHT, and download fetches the bare magnet from it', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent'), timeout: 120_000 }, async () => {
  const r = rng(8);
  const files: TestFile[] = [{ path: ['lt.bin'], data: bytes(r, 200_000) }];
  const dir = await tmpDir('tt-dht-lt-');
  const { bytes: tb, torrent: t } = makeTorrent('ltdht', files, 16 * 1024);
  const tf = join(dir, 'lt.torrent');
  await writeFile(tf, tb);
  await writeFiles(join(dir, 'data'), 'ltdht', files);
  const base = 21_000 + Math.floor(Math.random() * 20_000);
  const py = spawn(SYSTEM_PYTHON, [fileURLToPath(new URL('dht-magnet-test.py', FIXTURES)), tf, join(dir, 'data'), join(dir, 'lt-out'), '--nodes', '2', '--relaxed', '--timeout', '30', '--hold', '110', '--base-port', String(base)], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(py);
  let log = '';
  py.stdout!.on('data', (b: Buffer) => (log += b.toString()));
  py.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  // its leecher completing means the seeder is announced in that DHT
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dht-magnet-test.py gave no result: ${log}`)), 60_000);
    py.stdout!.on('data', () => log.includes('RESULT') && (clearTimeout(timer), resolve()));
    py.once('exit', () => (clearTimeout(timer), log.includes('RESULT') ? resolve() : reject(new Error(log))));
  });
  assert.match(log, /RESULT dht_magnet=ok/);
  const boot = `127.0.0.1:${base}`;
  const gp = await runCli(['dht', 'get-peers', t.infoHashHex, '--bootstrap', boot, '--no-state', '--timeout', '20'], { timeoutMs: 30_000 });
  assert.equal(gp.code, 0, gp.stderr);
  assert.match(gp.stdout.toString(), new RegExp(`"port":${base}`), gp.stdout.toString());
  const out = join(dir, 'ours');
  // -v: every peer and DHT failure on stderr, for the assertion message should it fail
  const dl = await runCli(['download', `magnet:?xt=urn:btih:${t.infoHashHex}`, '-o', out, '--port', '0', '--bootstrap', boot, '-v'], { timeoutMs: 60_000 });
  assert.equal(dl.code, 0, dl.stderr);
  assert.deepEqual(await readFile(join(out, 'ltdht', 'lt.bin')), files[0]!.data);
  py.kill('SIGKILL');
});

test('dht serve: a long-lived node that answers, prints NDJSON stats, and ends on SIGINT', { timeout: 30_000 }, async () => {
  const c = spawn(process.execPath, [CLI, 'dht', 'serve', '--port', '0', '--bind', '127.0.0.1', '--no-state', '--stats-interval', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TORRENT_TOOLS_DHT_BOOTSTRAP: '' } });
  procs.push(c);
  let out = '';
  const first = await new Promise<{ port: number; id: string }>((resolve) => {
    c.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!) as { port: number; id: string });
    });
  });
  const asker = await startNode(null);
  assert.equal((await asker.ping('127.0.0.1', first.port)).toString('hex'), first.id);
  await new Promise((r) => setTimeout(r, 1200));
  c.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => c.on('close', resolve));
  assert.equal(code, 0);
  const last = JSON.parse(out.trim().split('\n').at(-1)!) as { event: string; queriesReceived: number };
  assert.equal(last.event, 'stats');
  assert.ok(last.queriesReceived >= 1);
});

test('BEP 5 port message: download tells a DHT-capable peer its DHT port', { timeout: 30_000 }, async () => {
  const r = rng(12);
  const files: TestFile[] = [{ path: ['p.bin'], data: bytes(r, 40_000) }];
  const { bytes: tb } = makeTorrent('port', files, 16 * 1024);
  const dir = await tmpDir('tt-dht-port-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  // the peer inspector listens, says it runs a DHT node, and traces what download sends
  const listenPort = 22_000 + Math.floor(Math.random() * 20_000);
  const insp = spawn(process.execPath, [CLI, 'peer', '--listen', String(listenPort), tf, '--dht-port', '4321', '--timeout', '5'], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(insp);
  let trace = '';
  insp.stdout!.on('data', (b: Buffer) => (trace += b.toString()));
  await new Promise<void>((resolve) => insp.stdout!.once('data', () => resolve()));
  const dl = spawn(process.execPath, [CLI, 'download', tf, '-o', join(dir, 'out'), '--port', '0', '--peer', `127.0.0.1:${listenPort}`, '--dht-port', '0', '--quiet', '--timeout', '10'], { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(dl);
  await new Promise<void>((resolve) => insp.on('close', () => resolve()));
  dl.kill('SIGINT');
  const lines = trace.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const hs = lines.find((l) => l['type'] === 'handshake')!;
  assert.ok((hs['extensions'] as string[]).includes('dht'), JSON.stringify(hs));
  const port = lines.find((l) => l['dir'] === 'in' && l['type'] === 'port');
  assert.ok(port && typeof port['port'] === 'number' && port['port'] > 0, trace);
  assert.ok(lines.some((l) => l['dir'] === 'out' && l['type'] === 'port' && l['port'] === 4321));
});

test('nodes on loopback or private networks are used only when every bootstrap node is on one', () => {
  const pub = new DhtNode({ bootstrap: [{ host: '192.0.2.1', port: 6881 }], stateFile: null });
  assert.equal(pub.acceptable('127.0.0.1', 6881), false);
  assert.equal(pub.acceptable('10.0.0.1', 6881), false);
  assert.equal(pub.acceptable('198.51.100.7', 6881), true);
  assert.equal(new DhtNode({ stateFile: null }).acceptable('127.0.0.1', 6881), false); // the routers
  const local = new DhtNode({ bootstrap: [{ host: '127.0.0.1', port: 6881 }], stateFile: null });
  assert.equal(local.acceptable('127.0.0.2', 6881), true);
  assert.equal(local.acceptable('224.0.0.1', 6881), false);
  assert.equal(local.acceptable('127.0.0.2', 0), false);
});
