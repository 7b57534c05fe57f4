import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, open, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { decodeAll } from '../src/bencode/index.js';
import { readHaveSet } from '../src/streams/have-set.js';
import { PieceFrameReader } from '../src/streams/piece-frame-reader.js';
import { FrameParser, PieceFrameDecoder, PieceFrameEncoder, writeFrames, type PieceFrame } from '../src/streams/piece-frames.js';
import { bytes, randomChunks, rng, seedFromEnv } from './helpers/random.js';

async function collect<T>(stream: NodeJS.ReadableStream): Promise<T[]> {
  const out: T[] = [];
  for await (const x of stream as AsyncIterable<T>) out.push(x);
  return out;
}

async function encodeFrames(frames: PieceFrame[]): Promise<Buffer> {
  const enc = new PieceFrameEncoder();
  const out = collect<Buffer>(enc);
  for (const f of frames) enc.write(f);
  enc.end();
  return Buffer.concat(await out);
}

test('frames are plain bencode: d5:indexi<N>e5:piece<len>:<bytes>e', async () => {
  const wire = await encodeFrames([{ index: 7, piece: Buffer.from('abc') }]);
  assert.equal(wire.toString('latin1'), 'd5:indexi7e5:piece3:abce');
  const [v] = decodeAll(wire) as Array<Map<string, unknown>>;
  assert.equal(v!.get('index'), 7);
});

test('frames round-trip in 1-byte and random chunks; unknown keys are ignored', async () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const frames = Array.from({ length: 20 }, (_, i) => ({ index: i * 3, piece: bytes(r, 1 + Math.floor(r() * 3000)) }));
  const wire = Buffer.concat([await encodeFrames(frames), Buffer.from('d5:extrai1e5:indexi1e5:piece2:hie')]);
  for (const max of [1, 7, 5000]) {
    const dec = new PieceFrameDecoder({ maxPieceLength: 4096, pieceCount: 100 });
    const got = collect<PieceFrame>(Readable.from(randomChunks(r, wire, max)).pipe(dec));
    const all = await got;
    assert.equal(all.length, 21, `seed ${seed}`);
    for (let i = 0; i < 20; i++) assert.deepEqual(all[i], frames[i], `seed ${seed} frame ${i}`);
    assert.deepEqual(all[20], { index: 1, piece: Buffer.from('hi') });
  }
});

test('bad piece streams fail with the byte offset and reason', async () => {
  const cases: Array<[string, RegExp]> = [
    ['d5:indexi1e5:piece5:abcdefe', /byte 25: expected a string dict key or 'e', got 'f'/],
    ['d5:piece2:hie', /byte 0: frame has no non-negative integer "index"/],
    ['d5:indexi1ee', /byte 0: frame has no byte string "piece"/],
    ['d5:indexi100e5:piece2:hie', /piece index 100 is beyond the torrent's 100 pieces/],
    ['i1e', /expected a dict/],
    ['d5:indexi1e5:piece2:h', /truncated piece stream/],
    ['d5:indexi1e5:piece99999:', /string length exceeds the limit of 4096 bytes/],
  ];
  for (const [input, re] of cases) {
    const dec = new PieceFrameDecoder({ maxPieceLength: 4096, pieceCount: 100 });
    await assert.rejects(collect(Readable.from([Buffer.from(input)]).pipe(dec)), re, input);
  }
});

test('have-sets: verify output and assemble events both count; later lines win', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tt-have-'));
  const f = join(dir, 'have.ndjson');
  await writeFile(f, [
    '{"index":0,"valid":true}',
    '{"index":1,"valid":false}',
    '{"event":"piece","index":2,"bytes":16384}',
    '{"event":"complete","pieces":3}',
    '',
    '{"index":3,"valid":true}',
    '{"index":3,"valid":false}',
  ].join('\n'));
  assert.deepEqual([...(await readHaveSet(f, 10))].sort(), [0, 2]);
  await writeFile(f, '{"index":0}\n{"index":12}\n');
  await assert.rejects(readHaveSet(f, 10), /^NdjsonError: 2: "index" must be an integer 0..9/);
});

test('writeFrames writes what the encoder does and releases each piece only once out has its bytes', async () => {
  const r = rng(seedFromEnv());
  const frames = Array.from({ length: 6 }, (_, i) => ({ index: i, piece: bytes(r, 100 + i * 500) }));
  const chunks: Buffer[] = [];
  const events: string[] = [];
  // a slow sink: each write completes a tick later, so a release before that would show
  const out = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _enc, cb) {
      setImmediate(() => {
        chunks.push(Buffer.from(chunk));
        events.push(`wrote ${chunks.length}`);
        cb();
      });
    },
  });
  let released = 0;
  const withRelease = frames.map((f) => ({ ...f, release: () => events.push(`release ${f.index} after ${chunks.length} chunks`) && released++ }));
  await pipeline(Readable.from(withRelease), writeFrames(out));
  assert.equal(released, 6);
  assert.deepEqual(Buffer.concat(chunks), await encodeFrames(frames));
  // three chunks per frame (header, piece, trailer): piece i is released once all 3(i+1) are written
  for (let i = 0; i < 6; i++) assert.ok(events.includes(`release ${i} after ${3 * (i + 1)} chunks`), events.join(', '));
  assert.ok(out.writableFinished, 'out is ended');
});

test('writeFrames stops with the error of a sink that fails, releasing nothing it did not write', async () => {
  const out = new Writable({ write: (_c, _e, cb) => cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })) });
  out.on('error', () => {});
  let released = 0;
  const frames = [{ index: 0, piece: Buffer.from('ab'), release: () => released++ }];
  await assert.rejects(pipeline(Readable.from(frames), writeFrames(out)), /EPIPE/);
  assert.equal(released, 0);
});

for (const PL of [3000, 256 * 1024]) test(`PieceFrameReader reads a pipe and a file (${PL}-byte pieces${PL > 65536 ? ', read straight into their buffers' : ''}): every frame intact, pooled pieces released`, async () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  // full-size pieces and a short last one, an unknown key, split so that pieces complete in one
  // read and their frame in a later one (a slice of the reused buffer would be overwritten)
  const frames = Array.from({ length: 30 }, (_, i) => ({ index: i, piece: bytes(r, i === 29 ? Math.floor(PL / 3) : PL) }));
  const wire = Buffer.concat([await encodeFrames(frames), Buffer.from('d5:extrai1e5:indexi1e5:piece2:hie')]);
  const want = [...frames, { index: 1, piece: Buffer.from('hi') }];
  const dir = await mkdtemp(join(tmpdir(), 'tt-frames-'));
  const file = join(dir, 'pieces.bin');
  await writeFile(file, wire);
  const fifo = join(dir, 'pipe');
  execFileSync('mkfifo', [fifo]);
  for (const path of [file, fifo]) {
    if (path === fifo) {
      // a writer that stops at every frame's last piece byte for a moment
      void (async () => {
        const w = await open(fifo, 'w');
        let at = 0;
        for (const c of randomChunks(r, wire, PL + 1000)) {
          await w.write(c);
          at += c.length;
          if (r() < 0.3) await new Promise((res) => setTimeout(res, 2));
        }
        assert.equal(at, wire.length);
        await w.close();
      })();
    }
    const fd = openSync(path, 'r');
    const reader = new PieceFrameReader(fd, { maxPieceLength: PL, pieceCount: 100 });
    const got: PieceFrame[] = [];
    let released = 0;
    for await (const f of reader as AsyncIterable<PieceFrame>) {
      got.push({ index: f.index, piece: Buffer.from(f.piece) });
      if (f.release) {
        released++;
        f.release();
      }
    }
    assert.throws(() => closeSync(fd), /EBADF/, 'the reader closes its descriptor');
    assert.deepEqual(got, want, `${path}, seed ${seed}`);
    assert.equal(released, 29, 'every full-size piece came from the pool');
  }
});

test('FrameParser: pieces read straight into pendingPiece() and bytes written around them give the same frames, in any split', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const PL = 5000;
  const frames = Array.from({ length: 40 }, (_, i) => ({ index: i, piece: bytes(r, i === 39 ? 77 : PL) }));
  const wire = Buffer.concat(frames.map((f) => Buffer.concat([Buffer.from(`d5:indexi${f.index}e5:piece${f.piece.length}:`), f.piece, Buffer.from('e')])));
  for (let round = 0; round < 20; round++) {
    const parser = new FrameParser({ maxPieceLength: PL, pieceCount: 40, reusesInput: true });
    const got: PieceFrame[] = [];
    const onFrame = (f: PieceFrame): void => void got.push({ index: f.index, piece: Buffer.from(f.piece) });
    const scratch = Buffer.alloc(PL);
    let at = 0;
    while (at < wire.length) {
      const target = parser.pendingPiece();
      const n = 1 + Math.floor(r() * Math.min(wire.length - at, target !== null && r() < 0.7 ? target.length : 700));
      if (target !== null && n <= target.length && r() < 0.7) {
        wire.copy(target, 0, at, at + n); // read into place
        parser.filled(n, onFrame);
      } else {
        const c = scratch.subarray(0, Math.min(n, scratch.length));
        wire.copy(c, 0, at, at + c.length);
        parser.write(c, onFrame);
        c.fill(0xee); // the caller reuses its buffer
        at += c.length;
        continue;
      }
      at += n;
    }
    parser.end();
    assert.deepEqual(got, frames, `seed ${seed}, round ${round}`);
  }
  const p = new FrameParser({ maxPieceLength: PL });
  assert.equal(p.pendingPiece(), null, 'nothing pending between frames');
  assert.throws(() => p.filled(1, () => {}), RangeError);
});

