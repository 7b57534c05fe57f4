import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { test } from 'node:test';
import { HASH_BYTES, LayerTree, MERKLE_BLOCK, fileLeafCount, leafHashes, log2, merkleRoot, provenNode } from '../src/metainfo/merkle.js';
import { parseTorrent, type Torrent } from '../src/metainfo/torrent.js';
import { sourceOfMagnet } from '../src/metainfo/source.js';
import { Bitfield } from '../src/swarm/bitfield.js';
import { HashServer } from '../src/swarm/hash-server.js';
import { Uploader } from '../src/swarm/uploader.js';
import type { ReadCache } from '../src/storage/read-cache.js';
import { LayerFetcher } from '../src/swarm/layer-fetch.js';
import type { PeerConnection } from '../src/wire/peer-connection.js';
import type { WireMessage } from '../src/wire/protocol.js';
import { hasLibtorrent, skipUnless } from './helpers/interop.js';
import { contentImage, ltTorrent } from './helpers/lt-v2.js';
import { bytes, rng, seedFromEnv } from './helpers/random.js';
import { tmpDir, type TestFile } from './helpers/torrent.js';

const lt = { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent') };

/** A v2-only torrent python-libtorrent makes of `files`, and its content laid out as the model says (aligned). */
async function ltV2(files: Array<[string, Buffer]>, pieceLength: number): Promise<{ t: Torrent; content: Buffer }> {
  const dir = await tmpDir('tt-hashsrv-');
  const tfs: TestFile[] = files.map(([name, data]) => ({ path: [name], data }));
  const t = parseTorrent(await ltTorrent(dir, 'd', tfs, 'v2', pieceLength, join(dir, 'x.torrent')));
  return { t, content: contentImage(t, tfs) };
}

function serverOf(t: Torrent, content: Buffer, has: (i: number) => boolean = () => true): HashServer {
  return new HashServer({
    torrent: t,
    has,
    read: async (index, begin, length, use) => {
      use(content.subarray(index * t.pieceLength + begin, index * t.pieceLength + begin + length));
      return true;
    },
  });
}

test('hash requests are answered with proofs that check against the torrent\'s layers and roots', lt, async () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const pieceLength = 64 * 1024;
  // a file of 37 pieces and a bit, one of 3 leaves (under a piece), one of exactly 2 pieces
  const { t, content } = await ltV2([['a.bin', bytes(r, 37 * pieceLength + 5000)], ['b.bin', bytes(r, 40000)], ['c.bin', bytes(r, 2 * pieceLength)]], pieceLength);
  const server = serverOf(t, content);
  const ph = log2(pieceLength / MERKLE_BLOCK);
  for (const f of t.files.filter((x) => !x.pad)) {
    const root = f.piecesRoot!;
    const top = log2(fileLeafCount(f.length));
    const first = f.offset / pieceLength;
    const layer = t.pieceLayers?.get(root.toString('hex'));
    if (layer !== undefined) {
      // the whole piece layer, proved by the root (as a magnet's downloader asks for it)
      const pieces = layer.length / HASH_BYTES;
      const length = Math.min(512, 2 ** Math.ceil(Math.log2(pieces)));
      const req = { root, base: ph, index: 0, length, proofLayers: top - ph - 1 };
      const a = await server.answer(req);
      assert.ok(Buffer.isBuffer(a), String(a));
      assert.deepEqual(a.subarray(0, layer.length), layer);
      assert.deepEqual(provenNode(req, a), { height: top, index: 0, node: root });
      // each piece's leaves, proved by its piece-layer node, and with uncles up to the root
      for (let k = 0; k < pieces; k += 5) {
        for (const proofLayers of [ph - 1, top - 1]) {
          const leafReq = { root, base: 0, index: k * 4, length: 4, proofLayers };
          const b = await server.answer(leafReq);
          assert.ok(Buffer.isBuffer(b), String(b));
          const p = provenNode(leafReq, b);
          const bytesOf = content.subarray((first + k) * pieceLength, Math.min(f.offset + f.length, (first + k + 1) * pieceLength));
          assert.deepEqual(b.subarray(0, leafHashes(bytesOf).length), leafHashes(bytesOf), `piece ${k}`);
          if (proofLayers === ph - 1) assert.deepEqual(p, { height: ph, index: k, node: layer.subarray(k * 32, k * 32 + 32) });
          else assert.deepEqual(p, { height: top, index: 0, node: root });
        }
      }
    } else {
      // a file of one piece or less: its leaves, proved by its root
      const req = { root, base: 0, index: 0, length: Math.max(2, fileLeafCount(f.length)), proofLayers: top - 1 };
      const a = await server.answer(req);
      assert.ok(Buffer.isBuffer(a), String(a));
      assert.deepEqual(provenNode(req, a).node, root);
      assert.deepEqual(merkleRoot(leafHashes(content.subarray(f.offset, f.offset + f.length)), fileLeafCount(f.length)), root);
    }
  }
});

test('hash requests we cannot or will not answer are rejected with the reason', lt, async () => {
  const r = rng(7);
  const pieceLength = 32 * 1024;
  const { t, content } = await ltV2([['a.bin', bytes(r, 700 * pieceLength)], ['b.bin', bytes(r, 3 * pieceLength)]], pieceLength);
  const a = t.files[0]!.piecesRoot!;
  const server = serverOf(t, content, (i) => i !== 3);
  const cases: Array<[Parameters<HashServer['answer']>[0], RegExp]> = [
    [{ root: Buffer.alloc(32, 1), base: 0, index: 0, length: 2, proofLayers: 0 }, /no file of the torrent has this pieces root/],
    [{ root: a, base: 0, index: 0, length: 1024, proofLayers: 0 }, /1024 hashes asked \(we answer 2 to 512\)/],
    [{ root: a, base: 0, index: 0, length: 1, proofLayers: 0 }, /1 hashes asked/],
    [{ root: a, base: 11, index: 0, length: 2, proofLayers: 0 }, /base layer 11 is not below the root \(11 layers\)/],
    [{ root: a, base: 1, index: 1024, length: 2, proofLayers: 0 }, /nodes 1024\.\.1026 are past the layer's 1024/],
    [{ root: a, base: 1, index: 0, length: 2, proofLayers: 10 }, /10 proof layers reach past the root/],
    [{ root: a, base: 0, index: 6, length: 2, proofLayers: 0 }, /we do not have piece 3/],
  ];
  for (const [req, re] of cases) {
    const ans = await server.answer(req);
    assert.ok(typeof ans === 'string' && re.test(ans), `${JSON.stringify({ ...req, root: undefined })}: ${String(ans)}`);
  }
  // 700 pieces: the layer comes in two requests of 512, the second padded, with 1 uncle each
  const ph = 1;
  const layer = t.pieceLayers!.get(a.toString('hex'))!;
  for (const index of [0, 512]) {
    const req = { root: a, base: ph, index, length: 512, proofLayers: 9 };
    const ans = await server.answer(req);
    assert.ok(Buffer.isBuffer(ans), String(ans));
    assert.equal(ans.length, 513 * 32);
    assert.deepEqual(ans.subarray(0, Math.min(512, 700 - index) * 32), layer.subarray(index * 32, Math.min(700, index + 512) * 32));
    assert.deepEqual(provenNode(req, ans).node, a);
  }
});

/** A connection as the layer fetcher sees one: what it is sent is kept. */
function fakeConn(): PeerConnection & { sent: WireMessage[] } {
  const sent: WireMessage[] = [];
  return { closed: false, remote: {}, sent, send: (m: WireMessage) => void sent.push(m) } as unknown as PeerConnection & { sent: WireMessage[] };
}

test('a magnet\'s piece layers: fetched chunk by chunk, proved by the roots; a liar\'s chunk goes to another peer', lt, async () => {
  const r = rng(8);
  const pieceLength = 16 * 1024;
  const { t, content } = await ltV2([['a.bin', bytes(r, 700 * pieceLength - 3)], ['b.bin', bytes(r, 5000)], ['c.bin', bytes(r, 3 * pieceLength)]], pieceLength);
  const server = serverOf(t, content);
  // the torrent as a magnet's metadata makes it: no layers
  const bare: Torrent = { ...t, pieceLayers: new Map() };
  const f = new LayerFetcher(bare);
  assert.ok(f.missing);
  const aFirst = 0;
  assert.equal(f.ready(aFirst), false);
  const bPiece = t.files.find((x) => x.path.at(-1) === 'b.bin')!.offset / pieceLength;
  assert.equal(f.ready(bPiece), true, 'a file of one piece needs no layer');
  const honest = fakeConn();
  const liar = fakeConn();
  f.ask(liar, () => true);
  f.ask(honest, () => true);
  assert.equal(liar.sent.length, 2, 'two requests at a time per peer');
  assert.equal(honest.sent.length, 1, 'what the liar was asked is not asked twice');
  const answer = async (m: WireMessage): Promise<WireMessage & { type: 'hashes' }> => {
    assert.equal(m.type, 'hash-request');
    const a = await server.answer(m);
    assert.ok(Buffer.isBuffer(a));
    return { ...m, type: 'hashes', hashes: a };
  };
  // the liar's first answer is altered: refused, and its chunk asked of the honest peer
  const lie = await answer(liar.sent[0]!);
  lie.hashes[40] ^= 1;
  assert.deepEqual(f.onHashes(liar, lie), { kind: 'bad', why: 'hashes for a.bin that do not prove its pieces root' });
  assert.equal(f.onHashes(honest, await answer(liar.sent[1]!)).kind, 'unsolicited', 'an answer to what another peer was asked');
  f.onReject(liar, liar.sent[1] as WireMessage & { type: 'hash-request' });
  const done: string[] = [];
  for (let round = 0; round < 10 && f.missing; round++) {
    f.ask(honest, () => true);
    for (const m of honest.sent.splice(0)) {
      const o = f.onHashes(honest, await answer(m));
      assert.equal(o.kind, 'stored');
      if (o.kind === 'stored' && o.done) done.push(o.done.path.join('/'));
    }
  }
  assert.deepEqual(done.sort(), ['a.bin', 'c.bin']);
  assert.equal(f.ready(aFirst), true);
  for (const [k, layer] of t.pieceLayers!) assert.deepEqual(bare.pieceLayers!.get(k), layer);
});

test('a btmh-only magnet is a source named by the truncated SHA-256', () => {
  const v2 = Buffer.alloc(32, 0xab);
  v2[0] = 0x12;
  const s = sourceOfMagnet(`magnet:?xt=urn:btmh:1220${v2.toString('hex')}&dn=x`);
  assert.deepEqual(s.infoHash, v2.subarray(0, 20));
  assert.deepEqual(s.magnet?.infoHashV2, v2);
  assert.equal(s.name, 'x');
});

test('any hash request within the wire limits gets proved hashes or a reason, never a throw', lt, async () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const pieceLength = 32 * 1024;
  const { t, content } = await ltV2([['a.bin', bytes(r, 41 * pieceLength + 77)], ['b.bin', bytes(r, 20000)]], pieceLength);
  const server = serverOf(t, content, (i) => i % 7 !== 3);
  const roots = t.files.filter((f) => !f.pad).map((f) => f.piecesRoot!);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  let answered = 0;
  for (let n = 0; n < 2000; n++) {
    // mostly inside the trees (a.bin has 7 layers, b.bin 1), now and then past them
    const wild = r() < 0.2;
    const length = 2 ** Math.floor(r() * (wild ? 11 : 5));
    const req = { root: pick([...roots, ...(wild ? [Buffer.alloc(32, 3)] : [])]), base: Math.floor(r() * (wild ? 10 : 4)), index: length * Math.floor(r() * (wild ? 5000 : 4)), length, proofLayers: Math.floor(r() * (wild ? 12 : 5)) };
    const a = await server.answer(req);
    if (typeof a === 'string') continue;
    answered++;
    const f = t.files.find((x) => x.piecesRoot?.equals(req.root))!;
    const p = provenNode(req, a);
    // what it proves is that node of the file's whole tree, built here from its bytes
    const tree = new LayerTree(leafHashes(content.subarray(f.offset, f.offset + f.length)), fileLeafCount(f.length), 0);
    assert.deepEqual(p.node, tree.node(p.height, p.index), `seed ${seed} ${JSON.stringify({ ...req, root: undefined })}`);
  }
  assert.ok(answered > 100, `seed ${seed}: only ${answered} answered`);
});

test('a flood of hash requests from one peer: eight answers in flight, the rest rejected at once', lt, async () => {
  const r = rng(9);
  const pieceLength = 16 * 1024;
  const { t, content } = await ltV2([['a.bin', bytes(r, 40 * pieceLength)]], pieceLength);
  // a connection whose socket never takes the bytes: answers stay in flight
  const pending: Array<() => void> = [];
  const sent: WireMessage[] = [];
  const conn = Object.assign(new EventEmitter(), {
    closed: false,
    amChoking: false,
    fast: true,
    send: (m: WireMessage, flushed?: () => void) => {
      sent.push(m);
      if (flushed) pending.push(flushed);
      return true;
    },
  });
  new Uploader(conn as unknown as PeerConnection, null as unknown as ReadCache, new Bitfield(t.pieceCount), {}, serverOf(t, content));
  const root = t.files[0]!.piecesRoot!;
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 20; i++) await new Promise((res) => setImmediate(res));
  };
  for (let i = 0; i < 20; i++) conn.emit('message', { type: 'hash-request', root, base: 0, index: 2 * i, length: 2, proofLayers: 0 });
  await settle();
  assert.equal(sent.filter((m) => m.type === 'hashes').length, 8);
  assert.equal(sent.filter((m) => m.type === 'hash-reject').length, 12);
  // once the socket takes them, more are answered
  for (const f of pending.splice(0)) f();
  conn.emit('message', { type: 'hash-request', root, base: 0, index: 0, length: 2, proofLayers: 0 });
  await settle();
  assert.equal(sent.filter((m) => m.type === 'hashes').length, 9);
});
