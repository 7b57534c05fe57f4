/** Turns: the queue beyond --max-active, and one disk writer for every torrent of a process. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FileStore } from '../src/storage/file-store.js';
import { AssembleStream } from '../src/streams/assemble.js';
import { pieceFrame } from '../src/streams/piece-frames.js';
import { Turns } from '../src/turns.js';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bytes, rng } from './helpers/random.js';
import { makeTorrent, tmpDir } from './helpers/torrent.js';

test('turns: at most n at once, the rest in the order they asked; release once; abort leaves the queue', async () => {
  const turns = new Turns(2);
  const order: number[] = [];
  const a = (await turns.acquire())!;
  const b = (await turns.acquire())!;
  const stop = new AbortController();
  const waiting = [1, 2, 3].map((n) => turns.acquire(n === 2 ? stop.signal : undefined).then((r) => {
    order.push(n);
    return r;
  }));
  stop.abort();
  assert.equal(await waiting[1], null, 'an aborted wait gets no turn');
  a();
  a(); // twice: still one turn given back
  const r1 = (await waiting[0])!;
  assert.deepEqual(order, [2, 1]);
  b();
  const r3 = (await waiting[2])!;
  assert.deepEqual(order, [2, 1, 3]);
  r1();
  r3();
  // two free again, not three
  const x = await turns.acquire();
  const y = await turns.acquire();
  let third = false;
  void turns.acquire().then(() => (third = true));
  await new Promise((res) => setImmediate(res));
  assert.equal(third, false);
  x!();
  y!();
  assert.throws(() => new Turns(0), RangeError);
});

test('assemble stages sharing write turns never write more pieces at once than the turns allow', async () => {
  const r = rng(77);
  const dir = await tmpDir('tt-turns-');
  const PL = 16 * 1024;
  const shared = new Turns(1);
  let writing = 0;
  let most = 0;
  const torrents = [0, 1, 2].map((k) => makeTorrent(`w${k}`, [{ path: ['a.bin'], data: bytes(r, 9 * PL + 100) }], PL));
  await Promise.all(torrents.map(async ({ torrent, content }) => {
    const store = await FileStore.open(torrent, dir, { mode: 'write' });
    const write = store.writePiece.bind(store);
    store.writePiece = async (i: number, b: Buffer): Promise<void> => {
      most = Math.max(most, ++writing);
      try {
        await new Promise((res) => setTimeout(res, 2));
        await write(i, b);
      } finally {
        writing--;
      }
    };
    const frames = Array.from({ length: torrent.pieceCount }, (_, i) => pieceFrame(i, Buffer.from(content.subarray(i * PL, (i + 1) * PL))));
    await pipeline(Readable.from(frames), new AssembleStream(torrent, store, { writeTurns: shared }), new Writable({ objectMode: true, write: (_e, _enc, cb) => cb() }));
    await store.close();
  }));
  assert.equal(most, 1, 'one piece written at a time across the three stages');
  for (const [k, { content }] of torrents.entries()) assert.deepEqual(await readFile(join(dir, `w${k}`, 'a.bin')), content);
});
