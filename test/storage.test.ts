import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { constants, lstat, mkdir, mkdtemp, open, readdir, readFile, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { pieceSpans } from '../src/metainfo/pieces.js';
import type { Torrent } from '../src/metainfo/torrent.js';
import { writeFileAtomic } from '../src/storage/write-atomic.js';
import { BufferPool } from '../src/storage/buffer-pool.js';
import { alignedPiecePool } from '../src/storage/direct-io.js';
import { HashPool } from '../src/storage/hash-pool.js';
import { PieceLease, PieceLeaseError } from '../src/storage/piece-lease.js';
import { FileStore } from '../src/storage/file-store.js';
import { AssembleStream } from '../src/streams/assemble.js';
import { InOrderContentStream, InOrderContentWriter } from '../src/streams/in-order.js';
import { pieceFrame } from '../src/streams/piece-frames.js';
import { UnsafePathError, safeJoin } from '../src/storage/safe-path.js';
import { verifyPieces } from '../src/storage/verify.js';
import { bytes, rng, seedFromEnv } from './helpers/random.js';
import { makeTorrent, tmpDir, tree, writeFiles, type TestFile } from './helpers/torrent.js';

const PL = 16 * 1024;

/** 7 files: pieces span 3+ files, a zero-length file, a pad file. */
function layout(r: () => number): TestFile[] {
  return [
    { path: ['a.bin'], data: bytes(r, PL + 100) },
    { path: ['sub', 'b.bin'], data: bytes(r, 50) },
    { path: ['sub', 'c.bin'], data: bytes(r, 70) },
    { path: ['empty.txt'], data: Buffer.alloc(0) },
    { path: ['d.bin'], data: bytes(r, PL - 220) },
    { path: ['.pad', '1234'], data: Buffer.alloc(PL - 500), pad: true },
    { path: ['e.bin'], data: bytes(r, 3 * PL + 7) },
  ];
}


test('pieces written in any order land in the right files; pad files are never written', async () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const files = layout(r);
  const { torrent: t, content } = makeTorrent('multi', files, PL);
  const out = await tmpDir();
  const store = await FileStore.open(t, out, { mode: 'write' });
  const order = Array.from({ length: t.pieceCount }, (_, i) => i).sort(() => r() - 0.5);
  for (const i of [...order, order[0]!]) await store.writePiece(i, content.subarray(i * PL, (i + 1) * PL));
  for (let i = 0; i < t.pieceCount; i++) assert.deepEqual(await store.readPiece(i), content.subarray(i * PL, (i + 1) * PL), `seed ${seed}`);
  await store.close();
  for (const f of files) {
    const p = join(out, 'multi', ...f.path);
    if (f.pad) await assert.rejects(lstat(p), /ENOENT/);
    else assert.deepEqual(await readFile(p), f.data, f.path.join('/'));
  }
  assert.deepEqual(await tree(out), ['multi', 'multi/a.bin', 'multi/d.bin', 'multi/e.bin', 'multi/empty.txt', 'multi/sub', 'multi/sub/b.bin', 'multi/sub/c.bin']);
});

/** True when files in `dir` can be opened with O_DIRECT. */
async function directIoWorks(dir: string): Promise<boolean> {
  const p = join(dir, '.direct-probe');
  await writeFile(p, '');
  try {
    await (await open(p, constants.O_WRONLY | constants.O_DIRECT)).close();
    return true;
  } catch {
    return false;
  } finally {
    await rm(p, { force: true });
  }
}

test('writes go around the page cache where the file system allows it, through it elsewhere, and land the same bytes', async () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const pl = 64 * 1024;
  // files that start and end off the 4 KiB grid, so writes have unaligned edges around an aligned middle
  const files: TestFile[] = [
    { path: ['a.bin'], data: bytes(r, 3 * pl + 100) },
    { path: ['b.bin'], data: bytes(r, 5000) },
    { path: ['c.bin'], data: bytes(r, 9 * pl + 4097) },
    { path: ['d.bin'], data: bytes(r, 1) },
    { path: ['.pad', '0'], data: Buffer.alloc(pl - 600), pad: true },
    { path: ['e.bin'], data: bytes(r, 200_000) },
  ];
  const { torrent: t, content } = makeTorrent('multi', files, pl);
  const roots: Array<{ dir: string; osCache: boolean; direct: boolean }> = [];
  const tmp = await tmpDir();
  roots.push({ dir: tmp, osCache: false, direct: await directIoWorks(tmp) }, { dir: await tmpDir(), osCache: true, direct: false });
  if (existsSync('/dev/shm')) {
    const shm = await mkdtemp('/dev/shm/tt-store-');
    roots.push({ dir: shm, osCache: false, direct: await directIoWorks(shm) }); // tmpfs has O_DIRECT since Linux 6.6
  }
  for (const root of roots) {
    const store = await FileStore.open(t, root.dir, { mode: 'write', osCache: root.osCache });
    const order = Array.from({ length: t.pieceCount }, (_, i) => i).sort(() => r() - 0.5);
    for (const i of [...order, order[0]!]) await store.writePiece(i, content.subarray(i * pl, (i + 1) * pl));
    const direct = store.directBytes;
    await store.close();
    for (const f of files) {
      if (!f.pad) assert.deepEqual(await readFile(join(root.dir, 'multi', ...f.path)), f.data, `seed ${seed}, ${root.dir} ${f.path.join('/')}`);
    }
    if (root.direct) assert.ok(direct > content.length / 2, `${root.dir}: ${direct} of ${content.length} bytes written directly`);
    else assert.equal(direct, 0, root.dir);
    if (root.dir.startsWith('/dev/shm/')) await rm(root.dir, { recursive: true, force: true });
  }
});

test('a run over existing files never truncates them; files are sparse at their final size', async () => {
  const r = rng(1);
  const files = [{ path: ['x.bin'], data: bytes(r, 5 * PL) }];
  const { torrent: t, content } = makeTorrent('x.bin', files, PL, true);
  const out = await tmpDir();
  await writeFiles(out, 'x.bin', files, true);
  const store = await FileStore.open(t, out, { mode: 'write' });
  await store.writePiece(2, content.subarray(2 * PL, 3 * PL));
  await store.close();
  assert.deepEqual(await readFile(join(out, 'x.bin')), content);
  const fresh = await tmpDir();
  const s2 = await FileStore.open(t, fresh, { mode: 'write' });
  await s2.writePiece(4, content.subarray(4 * PL));
  await s2.close();
  const st = await stat(join(fresh, 'x.bin'));
  assert.equal(st.size, 5 * PL);
  assert.ok(st.blocks * 512 < 5 * PL, 'sparse: the unwritten pieces take no blocks');
});

test('read mode reports missing and short files as null, never throws', async () => {
  const r = rng(2);
  const files = layout(r);
  const { torrent: t } = makeTorrent('multi', files, PL);
  const out = await tmpDir();
  const store = await FileStore.open(t, out, { mode: 'read' });
  assert.equal(await store.readPiece(0), null);
  await store.close();
  assert.deepEqual(await readdir(out), [], 'read mode created nothing');
});

test('hostile paths are refused before anything is written', async () => {
  const base = makeTorrent('multi', layout(rng(3)), PL).torrent;
  const hostile: Array<[string[], RegExp]> = [
    [['..', 'escape'], /a path component is ".."/],
    [['a', '..', '..', 'b'], /a path component is ".."/],
    [['/etc/passwd'], /absolute path/],
    [['a\\..\\..\\b'], /path separator/],
    [['nul\0byte'], /NUL/],
    [[''], /is empty/],
    [['.'], /is "."/],
    [['CON'], /reserved device name/],
  ];
  for (const [path, re] of hostile) {
    const parent = await tmpDir();
    const out = join(parent, 'out');
    const t: Torrent = { ...base, files: base.files.map((f, i) => (i === 1 ? { ...f, path } : f)) };
    await assert.rejects(FileStore.open(t, out, { mode: 'write' }), (e: unknown) => e instanceof UnsafePathError && re.test((e as Error).message), JSON.stringify(path));
    // nothing anywhere around: only the (empty) output directory itself
    assert.deepEqual(await tree(parent), ['out'], JSON.stringify(path));
  }
  assert.throws(() => safeJoin('/tmp/x', ['a', 'b']) && safeJoin('/tmp/x', ['..']), UnsafePathError);
});

test('a symlink already in the output directory is never written through', async () => {
  const parent = await tmpDir();
  const out = join(parent, 'out');
  const outside = join(parent, 'outside');
  await mkdir(outside);
  await mkdir(join(out, 'multi'), { recursive: true });
  await symlink(outside, join(out, 'multi', 'sub'));
  const { torrent: t } = makeTorrent('multi', layout(rng(4)), PL);
  await assert.rejects(FileStore.open(t, out, { mode: 'write' }), /symlink/);
  await symlink(join(outside, 'target'), join(out, 'multi', 'a.bin'));
  await assert.rejects(FileStore.open(t, out, { mode: 'write' }), /symlink/);
  assert.deepEqual(await readdir(outside), []);
});

test('verify: valid, damaged, short and missing files, on several workers, in index order', async () => {
  const r = rng(5);
  const files = layout(r);
  const { torrent: t } = makeTorrent('multi', files, PL);
  const out = await tmpDir();
  await writeFiles(out, 'multi', files);
  const results = async (workers: number) => {
    const got: Array<[number, boolean]> = [];
    for await (const x of verifyPieces(t, out, { workers })) got.push(x);
    return got;
  };
  assert.deepEqual(await results(2), Array.from({ length: t.pieceCount }, (_, i) => [i, true]));
  // damage one byte of e.bin's second piece, cut d.bin short, delete b.bin
  const e = join(out, 'multi', 'e.bin');
  const buf = await readFile(e);
  buf[PL + 5] ^= 0xff;
  await writeFile(e, buf);
  await truncate(join(out, 'multi', 'd.bin'), 10);
  const { rm } = await import('node:fs/promises');
  await rm(join(out, 'multi', 'sub', 'b.bin'));
  const got = await results(3);
  const bad = got.filter(([, ok]) => !ok).map(([i]) => i);
  // b.bin (offset PL+100) and d.bin ([PL+220, 2PL)) are in piece 1; e.bin's byte PL+5 is in the piece holding offset e.offset+PL+5
  const eOff = t.files[6]!.offset;
  assert.deepEqual(bad, [1, Math.floor((eOff + PL + 5) / PL)]);
  assert.deepEqual(got.map(([i]) => i), Array.from({ length: t.pieceCount }, (_, i) => i));
});

test('blocking and pooled reads return the same bytes, pad files as zeros, short files as null', async () => {
  const r = rng(seedFromEnv());
  const files = layout(r);
  const { torrent: t, content } = makeTorrent('multi', files, PL);
  const dir = await tmpDir();
  await writeFiles(dir, 'multi', files);
  for (const blockingReads of [false, true]) {
    const store = await FileStore.open(t, dir, { mode: 'read', blockingReads });
    for (let i = 0; i < t.pieceCount; i++) {
      assert.deepEqual(await store.readPiece(i), content.subarray(i * PL, (i + 1) * PL), `piece ${i}, blockingReads ${blockingReads}`);
    }
    assert.deepEqual(await store.read(1, 10, 300), content.subarray(PL + 10, PL + 310));
    await store.close();
  }
  await truncate(join(dir, 'multi', 'e.bin'), 10);
  const store = await FileStore.open(t, dir, { mode: 'read', blockingReads: true });
  assert.equal(await store.readPiece(t.pieceCount - 1), null);
  await store.close();
});

test('BufferPool hands back what was given, keeps at most max of its size, refuses a double give', () => {
  const pool = new BufferPool(1024, 2);
  const a = pool.take();
  const b = pool.take();
  const c = pool.take();
  assert.equal(a.length, 1024);
  assert.notEqual(a.buffer, b.buffer);
  pool.give(a);
  assert.throws(() => pool.give(a), /given back twice/);
  pool.give(Buffer.alloc(10)); // another size: not kept
  pool.give(b);
  pool.give(c); // beyond max: left to the collector
  const got = [pool.take(), pool.take()];
  assert.deepEqual(new Set(got), new Set([a, b]));
  assert.notEqual(pool.take(), c);
});

test('PieceLease: one buffer, followed through the hashing thread, given home once; misuse throws', async () => {
  const pool = new BufferPool(1024, 4);
  const given: Buffer[] = [];
  const home = { give: (b: Buffer) => void given.push(b) };
  const hasher = new HashPool();
  try {
    // moved memory: the buffer object changes, the lease follows, the pool gets the new one
    const buf = pool.take();
    buf.fill(7);
    const lease = new PieceLease(buf, home);
    const hashing = lease.sha1(hasher);
    assert.throws(() => lease.bytes, /cannot read: its bytes are on the hashing thread/);
    assert.throws(() => lease.release(), PieceLeaseError, 'no release while the memory is away');
    assert.deepEqual(await hashing, createHash('sha1').update(Buffer.alloc(1024, 7)).digest());
    assert.equal(buf.length, 0, 'the original Buffer was detached by the move');
    assert.notEqual(lease.bytes, buf);
    assert.deepEqual(lease.bytes, Buffer.alloc(1024, 7));
    const moved = lease.bytes;
    lease.release();
    assert.equal(given.length, 1);
    assert.equal(given[0], moved, 'the buffer the bytes are in now goes home');
    assert.ok(lease.ended);
    assert.throws(() => lease.release(), /cannot release: it was released/);
    assert.throws(() => lease.bytes, PieceLeaseError);
    assert.equal(given.length, 1, 'a second release gives nothing back');

    // handed on: the old lease is spent, the new one owns the buffer and gives it home
    const c = pool.take();
    const a = pool.lease(c);
    const b = a.transfer();
    assert.throws(() => a.bytes, /cannot read: it was handed on/);
    assert.throws(() => a.release(), PieceLeaseError);
    assert.equal(b.bytes, c);
    b.release();
    assert.equal(pool.take(), c, 'back in the pool');

    // detached: the bytes stay with the caller, the buffer never goes home
    const d = new PieceLease(Buffer.alloc(1024), home);
    const kept = d.detach();
    assert.equal(kept.length, 1024);
    assert.throws(() => d.release(), /cannot release: it was detached/);
    assert.equal(given.length, 1);
  } finally {
    await hasher.close();
  }
});

test('assemble releases each piece once it is on disk, also a bad one, never before', async () => {
  const r = rng(seedFromEnv());
  const files = layout(r);
  const { torrent: t, content } = makeTorrent('multi', files, PL);
  const dir = await tmpDir();
  const store = await FileStore.open(t, dir, { mode: 'write' });
  /** what the files hold of piece i right now (read synchronously, as the release happens) */
  const onDisk = (i: number): Buffer => {
    const out = Buffer.alloc(PL);
    for (const sp of pieceSpans(t, i)) {
      if (t.files[sp.file]!.pad) continue;
      const fd = openSync(store.paths[sp.file]!, 'r');
      readSync(fd, out, sp.pieceOffset, sp.length, sp.fileOffset);
      closeSync(fd);
    }
    return out.subarray(0, content.subarray(i * PL, (i + 1) * PL).length);
  };
  const released: number[] = [];
  const frames = Array.from({ length: t.pieceCount }, (_, i) => ({
    index: i,
    piece: new PieceLease(i === 1 ? Buffer.alloc(PL) : Buffer.from(content.subarray(i * PL, (i + 1) * PL)), {
      give: () => {
        released.push(i);
        if (i !== 1) assert.deepEqual(onDisk(i), content.subarray(i * PL, (i + 1) * PL), `piece ${i} released before it was on disk`);
      },
    }),
  }));
  const asm = new AssembleStream(t, store);
  const events: string[] = [];
  asm.on('data', (e: { event: string; index?: number }) => events.push(`${e.event} ${e.index ?? ''}`.trim()));
  await pipeline(Readable.from(frames), asm);
  await store.close();
  assert.deepEqual([...released].sort((a, b) => a - b), frames.map((f) => f.index), 'each piece released exactly once');
  assert.ok(events.includes('bad-piece 1'));
  assert.deepEqual(events.filter((e) => e !== 'complete').map((e) => Number(e.split(' ')[1])), frames.map((f) => f.index), 'events in input order');
});

test('in-order content: the stream and the stdout writer give the content in order from shuffled pieces, spilling past the bound; the writer releases each piece only once its bytes are out', async () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const files = layout(r);
  const { torrent: t, content } = makeTorrent('multi', files, PL);
  const want = Buffer.concat(files.filter((f) => !f.pad).map((f) => f.data));
  const order = Array.from({ length: t.pieceCount }, (_, i) => i).sort(() => r() - 0.5);
  const piece = (i: number): Buffer => Buffer.from(content.subarray(i * PL, (i + 1) * PL));
  const parts: Buffer[] = [];
  await pipeline(Readable.from(order.map((i) => pieceFrame(i, piece(i)))), new InOrderContentStream(t, { maxBuffer: 2 * PL }), new Writable({
    write(c: Buffer, _e, cb) { parts.push(c); cb(); },
  }));
  assert.deepEqual(Buffer.concat(parts), want, `seed ${seed}: stream`);

  // a slow output that takes the bytes only when it calls back; a release scribbles over the piece
  const out: Buffer[] = [];
  const sink = new Writable({ write(c: Buffer, _e, cb) { setImmediate(() => { out.push(Buffer.from(c)); cb(); }); } });
  const released: number[] = [];
  const frames = [...order, order[0]!].map((i) => ({ index: i, piece: new PieceLease(piece(i), { give: (b) => { released.push(i); b.fill(0xaa); } }) }));
  const writer = new InOrderContentWriter(t, sink, { maxBuffer: 2 * PL });
  await pipeline(Readable.from(frames), writer);
  assert.deepEqual(Buffer.concat(out), want, `seed ${seed}: writer`);
  assert.ok(writer.done);
  assert.deepEqual([...released].sort((a, b) => a - b), [...order, order[0]!].sort((a, b) => a - b), 'every piece (and the duplicate) released');

  // a piece that is not the torrent's stops the output with an error
  const bad = piece(0);
  bad[3] ^= 1;
  await assert.rejects(pipeline(Readable.from([pieceFrame(0, bad)]), new InOrderContentWriter(t, new Writable({ write(_c, _e, cb) { cb(); } }))), /piece 0 does not match/);
});

test('aligned shared piece buffers: hashed in place on the hashing thread, and written directly', async () => {
  const r = rng(seedFromEnv());
  const pl = 64 * 1024;
  const files: TestFile[] = [{ path: ['x.bin'], data: bytes(r, 5 * pl + 1000) }];
  const { torrent: t, content } = makeTorrent('x.bin', files, pl, true);
  const pool = alignedPiecePool(pl, 2);
  const hasher = new HashPool();
  const dir = await tmpDir();
  const store = await FileStore.open(t, dir, { mode: 'write' });
  try {
    for (let i = 0; i < t.pieceCount; i++) {
      const want = content.subarray(i * pl, (i + 1) * pl);
      const buf = want.length === pl ? pool.take() : Buffer.alloc(want.length);
      want.copy(buf);
      const lease = want.length === pl ? pool.lease(buf) : new PieceLease(buf);
      const digest = await lease.sha1(hasher);
      if (want.length === pl) assert.ok(lease.bytes === buf && buf.buffer instanceof SharedArrayBuffer && buf.length === pl, 'shared memory stays where it is');
      assert.deepEqual(digest, createHash('sha1').update(want).digest());
      await store.writePiece(i, lease.bytes);
      lease.release();
    }
    if (await directIoWorks(dir)) assert.ok(store.directBytes >= 5 * pl, `${store.directBytes} bytes written directly`);
  } finally {
    await store.close();
    await hasher.close();
  }
  assert.deepEqual(await readFile(join(dir, 'x.bin')), content);
});


test('writeFileAtomic leaves no temporary file behind when it fails', async () => {
  const dir = await tmpDir('tt-atomic-');
  const target = join(dir, 'x.torrent');
  await mkdir(target); // a directory where the file should go: the rename fails
  await assert.rejects(writeFileAtomic(target, Buffer.from('d4:infod4:name1:xee')));
  assert.deepEqual(await readdir(dir), ['x.torrent'], 'only the directory that was there');
  await writeFileAtomic(join(dir, 'ok.torrent'), Buffer.from('d1:ai1ee'));
  assert.deepEqual((await readdir(dir)).sort(), ['ok.torrent', 'x.torrent']);
});
