import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, open, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { decodeAll } from '../src/bencode/index.js';
import { readHaveSet } from '../src/streams/have-set.js';
import { PieceFrameReader } from '../src/streams/piece-frame-reader.js';
import { AssembleStream, type AssembleEvent } from '../src/streams/assemble.js';
import { DeferredError } from '../src/streams/deferred-error.js';
import { PieceLease } from '../src/storage/piece-lease.js';
import { FrameParser, PieceFrameDecoder, PieceStreamError, writeFrames, type PieceFrame } from '../src/streams/piece-frames.js';
import { encodeFrames, rawCopy, type RawFrame } from './helpers/frames.js';
import { bytes, randomChunks, rng, seedFromEnv } from './helpers/random.js';
import { makeTorrent } from './helpers/torrent.js';

async function collect<T>(stream: NodeJS.ReadableStream): Promise<T[]> {
  const out: T[] = [];
  for await (const x of stream as AsyncIterable<T>) out.push(x);
  return out;
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
    const all = (await collect<PieceFrame>(Readable.from(randomChunks(r, wire, max)).pipe(dec))).map(rawCopy);
    assert.equal(all.length, 21, `seed ${seed}`);
    for (let i = 0; i < 20; i++) assert.deepEqual(all[i], frames[i], `seed ${seed} frame ${i}`);
    assert.deepEqual(all[20], { index: 1, piece: Buffer.from('hi') });
  }
});

/** Malformed frames: the input, where the error is in it, what it says, and whether a frame may follow it (not: only the end makes it malformed). */
const MALFORMED: Array<[string, number, RegExp, boolean]> = [
  ['d5:indexi1e5:piece5:abcdefe', 25, /expected a string dict key or 'e', got 'f'/, true],
  ['d5:piece2:hie', 0, /frame has no non-negative integer "index"/, true],
  ['d5:indexi-1e5:piece2:hie', 0, /frame has no non-negative integer "index"/, true],
  ['d5:indexi1ee', 0, /frame has no byte string "piece"/, true],
  ['d5:indexi100e5:piece2:hie', 0, /piece index 100 is beyond the torrent's 100 pieces/, true],
  ['i1e', 0, /expected a dict \(a piece frame\)/, true],
  ['xyz', 0, /expected 'i', 'l', 'd' or a digit/, true],
  ['d5:indexi1e5:piece99999:', 21, /string length exceeds the limit of 4096 bytes/, true],
  ['d5:indexi1e5:piece2:h', 21, /truncated piece stream/, false],
];

/** What a decoder gave: frames as {index, piece}, and the DeferredError's message (only ever last). */
async function outcome(stream: NodeJS.ReadableStream): Promise<{ frames: RawFrame[]; error: string | null }> {
  const frames: RawFrame[] = [];
  let error: string | null = null;
  for await (const x of stream as AsyncIterable<PieceFrame | DeferredError>) {
    assert.equal(error, null, 'nothing comes after the DeferredError');
    if (x instanceof DeferredError) {
      assert.ok(x.error instanceof PieceStreamError, String(x.error));
      error = x.error.message;
    } else {
      frames.push(rawCopy(x));
      x.piece.release();
    }
  }
  return { frames, error };
}

test('bad piece streams end with a DeferredError naming the byte offset and reason', async () => {
  for (const [input, at, re] of MALFORMED) {
    const dec = new PieceFrameDecoder({ maxPieceLength: 4096, pieceCount: 100 });
    const got = await outcome(Readable.from([Buffer.from(input)]).pipe(dec));
    assert.deepEqual(got.frames, [], input);
    assert.match(got.error ?? '', new RegExp(`^byte ${at}: ${re.source}`), input);
  }
});

test('a malformed frame after good ones: every frame before it comes out, then the error, in 1-byte and random chunks (decoder) and from a file and a pipe (reader)', async () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const PL = 4096;
  const good = [0, 1, 2].map((i) => ({ index: i, piece: bytes(r, i === 1 ? 100 : PL) }));
  const prefix = await encodeFrames(good);
  const after = await encodeFrames([{ index: 3, piece: Buffer.from('never') }]);
  const dir = await mkdtemp(join(tmpdir(), 'tt-badframe-'));
  for (const [bad, at, re, more] of MALFORMED) {
    // a frame after the bad one is never parsed: the stream is over at the bad one
    const wire = Buffer.concat([prefix, Buffer.from(bad), more ? after : Buffer.alloc(0)]);
    const want = new RegExp(`^byte ${prefix.length + at}: ${re.source}`);
    for (const max of [1, 13, 5000, wire.length]) {
      const dec = new PieceFrameDecoder({ maxPieceLength: PL, pieceCount: 100 });
      const got = await outcome(Readable.from(randomChunks(r, wire, max)).pipe(dec));
      assert.deepEqual(got.frames, good, `${bad}, chunks <= ${max}, seed ${seed}`);
      assert.match(got.error ?? 'no error', want, `${bad}, chunks <= ${max}, seed ${seed}`);
    }
    const file = join(dir, 'pieces.bin');
    await writeFile(file, wire);
    const fifo = join(dir, `pipe${MALFORMED.findIndex((m) => m[0] === bad)}`);
    execFileSync('mkfifo', [fifo]);
    // the pipe gets the whole stream in one write and stays open (the reader must not wait for
    // its end), unless only the end makes the frame malformed
    const writer = open(fifo, 'w').then(async (w) => {
      await w.write(wire);
      if (!more) await w.close();
      return w;
    });
    for (const path of [file, fifo]) {
      const fd = openSync(path, 'r');
      const got = await outcome(new PieceFrameReader(fd, { maxPieceLength: PL, pieceCount: 100 }));
      assert.deepEqual(got.frames, good, `${bad} from ${path}, seed ${seed}`);
      assert.match(got.error ?? 'no error', want, `${bad} from ${path}, seed ${seed}`);
      assert.throws(() => closeSync(fd), /EBADF/, 'the reader closes its descriptor');
    }
    if (more) await (await writer).close();
  }
});

test('AssembleStream after a decoder: the pieces before a malformed frame are on disk and announced before the sink raises its error', async () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const PL = 16 * 1024;
  const { torrent, content } = makeTorrent('x.bin', [{ path: ['x.bin'], data: bytes(r, 5 * PL) }], PL, true);
  const piece = (i: number): Buffer => content.subarray(i * PL, (i + 1) * PL);
  const prefix = await encodeFrames([2, 0, 4].map((i) => ({ index: i, piece: piece(i) })));
  const wire = Buffer.concat([prefix, Buffer.from('d5:indexi1e5:piece3:abcX')]);
  for (const max of [1, 777, wire.length]) {
    const dir = await mkdtemp(join(tmpdir(), 'tt-badframe-asm-'));
    const events: AssembleEvent[] = [];
    const sink = new Writable({
      objectMode: true,
      write(ev: AssembleEvent | DeferredError, _enc, cb) {
        if (ev instanceof DeferredError) return cb(ev.error);
        events.push(ev);
        setTimeout(cb, 5); // a slow journal: the error must still wait for it
      },
    });
    const dec = new PieceFrameDecoder({ maxPieceLength: PL, pieceCount: torrent.pieceCount });
    await assert.rejects(
      pipeline(Readable.from(randomChunks(r, wire, max)), dec, new AssembleStream(torrent, dir), sink),
      new RegExp(`^PieceStreamError: byte ${prefix.length + 23}: expected a string dict key or 'e', got 'X'`),
    );
    assert.deepEqual(events, [2, 0, 4].map((i) => ({ event: 'piece', index: i, bytes: PL })), `chunks <= ${max}, seed ${seed}`);
    const file = await readFile(join(dir, 'x.bin'));
    for (const i of [0, 2, 4]) assert.deepEqual(file.subarray(i * PL, (i + 1) * PL), piece(i), `piece ${i}, chunks <= ${max}, seed ${seed}`);
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
  const leased = frames.map((f) => ({ index: f.index, piece: new PieceLease(f.piece, { give: () => events.push(`release ${f.index} after ${chunks.length} chunks`) && released++ }) }));
  await pipeline(Readable.from(leased), writeFrames(out));
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
  const frames = [{ index: 0, piece: new PieceLease(Buffer.from('ab'), { give: () => released++ }) }];
  await assert.rejects(pipeline(Readable.from(frames), writeFrames(out)), /EPIPE/);
  assert.equal(released, 0);
  assert.ok(!frames[0]!.piece.ended, 'the lease is still the pipeline\'s: out may hold the bytes');
});

for (const PL of [3000, 256 * 1024]) test(`PieceFrameReader reads a pipe and a file (${PL}-byte pieces${PL > 65536 ? ', read straight into their buffers' : ''}): every frame intact, released pieces' buffers reused`, async () => {
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
    const got: RawFrame[] = [];
    /** the memory of the full-size pieces: the pool's (aligned, shared) */
    const memory = new Set<ArrayBufferLike>();
    for await (const f of reader as AsyncIterable<PieceFrame>) {
      got.push(rawCopy(f));
      if (f.piece.bytes.length === PL) {
        assert.ok(f.piece.bytes.buffer instanceof SharedArrayBuffer, `piece ${f.index} is from the pool`);
        memory.add(f.piece.bytes.buffer);
      }
      f.piece.release();
    }
    assert.throws(() => closeSync(fd), /EBADF/, 'the reader closes its descriptor');
    assert.deepEqual(got, want, `${path}, seed ${seed}`);
    // small pieces: a read holds many, all parsed before the first is released; big ones are
    // read one at a time, each into a buffer released pieces gave back
    if (PL > 65536) assert.ok(memory.size <= 4, `29 full-size pieces in ${memory.size} buffers`);
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
    const got: RawFrame[] = [];
    const onFrame = (f: PieceFrame): void => {
      got.push(rawCopy(f));
      f.piece.release();
    };
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

