/**
 * wire/memory-pipe.ts: the in-process connection a web seed is reached through behaves as a
 * socket does where PeerConnection looks, and carries the peer protocol between two of them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { memoryPipe } from '../src/wire/memory-pipe.js';
import { PeerConnection } from '../src/wire/peer-connection.js';
import { makePeerId, type WireMessage } from '../src/wire/protocol.js';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('bytes arrive later, in order, as written; a write callback runs once the reader has them', async () => {
  const [a, b] = memoryPipe();
  const got: Buffer[] = [];
  b.on('data', (c) => got.push(c));
  const taken: number[] = [];
  a.write(Buffer.from('one'), () => taken.push(1));
  a.write(new Uint8Array([0x32]), () => taken.push(2));
  assert.equal(got.length, 0, 'nothing is delivered inside write()');
  assert.equal(a.writableLength, 4);
  await tick();
  assert.equal(Buffer.concat(got).toString(), 'one2');
  assert.deepEqual(taken, [1, 2]);
  assert.equal(a.writableLength, 0);
});

test('past the high-water mark write() says false, and drain comes once the reader took the bytes; pause holds them', async () => {
  const [a, b] = memoryPipe();
  let n = 0;
  b.on('data', (c) => (n += c.length));
  b.pause();
  let ok = true;
  let writes = 0;
  while (ok && writes < 1000) {
    ok = a.write(Buffer.alloc(64 * 1024));
    writes++;
  }
  assert.equal(ok, false, 'write() says wait');
  assert.ok(writes <= 17, `${writes} writes of 64 KiB before it said wait`);
  assert.equal(a.writableNeedDrain, true);
  let drained = false;
  a.on('drain', () => (drained = true));
  await tick();
  await tick();
  assert.equal(n, 0, 'a paused end delivers nothing');
  assert.equal(drained, false);
  b.resume();
  await tick();
  assert.equal(n, writes * 64 * 1024);
  assert.equal(drained, true);
  assert.equal(a.writableNeedDrain, false);
});

test('destroy: the other end gets what was written before, then end and close; writes after fail', async () => {
  const [a, b] = memoryPipe();
  const events: string[] = [];
  b.on('data', (c) => events.push(`data ${c.toString()}`));
  b.on('end', () => events.push('end'));
  b.on('close', () => events.push('close b'));
  a.on('close', () => events.push('close a'));
  a.write(Buffer.from('last'));
  a.destroy();
  assert.equal(a.write(Buffer.from('late')), false);
  await tick();
  await tick();
  assert.deepEqual(events, ['close a', 'data last', 'end', 'close b']);
  assert.equal(b.write(Buffer.from('x')), false);
});

test('two PeerConnections over a pipe: handshake, BEP 6 and BEP 10, a piece, a close seen by the other', async () => {
  const [a, b] = memoryPipe();
  const infoHash = randomBytes(20);
  const limits = { pieceCount: 4, pieceSize: () => 32 * 1024 };
  const out = new PeerConnection(a, { peerId: makePeerId(randomBytes), infoHash, outgoing: true, limits });
  const inc = new PeerConnection(b, { peerId: makePeerId(randomBytes), outgoing: false, accept: (h) => (h.equals(infoHash) ? limits : null), skeys: [infoHash], extendedHandshake: { reqq: 2000 } });
  const got: WireMessage[] = [];
  out.on('message', (m) => got.push(m.type === 'piece' ? { ...m, block: Buffer.from(m.block) } : m));
  const block = randomBytes(16 * 1024);
  inc.on('handshake', () => {
    inc.send({ type: 'have-all' });
    inc.send({ type: 'piece', index: 2, begin: 16 * 1024, block });
  });
  const deadline = Date.now() + 5000;
  while (got.filter((m) => m.type === 'piece' || m.type === 'extended').length < 2 && Date.now() < deadline) await tick();
  assert.ok(out.fast && out.extended, 'BEP 6 and BEP 10 negotiated');
  assert.equal(out.remoteExtended?.get('reqq'), 2000);
  const piece = got.find((m) => m.type === 'piece');
  assert.ok(piece?.type === 'piece' && piece.index === 2 && piece.begin === 16 * 1024 && piece.block.equals(block));
  const closed = new Promise((resolve) => out.on('close', resolve));
  inc.close(null);
  assert.equal((await closed as { kind: string } | null)?.kind, 'hang-up');
});
