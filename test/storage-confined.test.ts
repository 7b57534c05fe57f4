/**
 * Writes that cannot leave the output directory: a symlink planted on the way after the run
 * started, a directory swapped for one in a loop against a running `assemble`, and a file
 * pre-placed as a hard link to one outside.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { link, mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileStore } from '../src/storage/file-store.js';
import { walksByDescriptor } from '../src/storage/confined.js';
import { UnsafePathError } from '../src/storage/safe-path.js';
import { writeFileAtomic } from '../src/storage/write-atomic.js';
import { CLI, runCli } from './helpers/cli.js';
import { encodeFrames as frames } from './helpers/frames.js';
import { bytes, rng, seedFromEnv } from './helpers/random.js';
import { makeTorrent, tmpDir, type TestFile } from './helpers/torrent.js';

const PL = 16 * 1024;

/** Every path under `dir`, recursively (symlinks listed, not followed). */
async function everything(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    out.push(join(dir, e.name));
    if (e.isDirectory()) out.push(...(await everything(join(dir, e.name))));
  }
  return out;
}

test('a symlink planted after the store opened is refused at the write, and nothing lands outside', async () => {
  const r = rng(seedFromEnv());
  const files: TestFile[] = [
    { path: ['top.bin'], data: bytes(r, PL) },
    { path: ['a', 'sub', 'f.bin'], data: bytes(r, PL) },
  ];
  const { torrent: t, content } = makeTorrent('multi', files, PL);
  const parent = await tmpDir();
  const out = join(parent, 'out');
  const outside = join(parent, 'outside');
  await mkdir(outside);
  // the check at open finds nothing wrong: a/ does not exist yet
  const store = await FileStore.open(t, out, { mode: 'write' });
  try {
    await store.writePiece(0, content.subarray(0, PL));
    await mkdir(join(out, 'multi', 'a'));
    await symlink(outside, join(out, 'multi', 'a', 'sub'));
    await assert.rejects(store.writePiece(1, content.subarray(PL)), (e: unknown) => e instanceof UnsafePathError && /symlink .*multi\/a\/sub/.test((e as Error).message));
    // and a directory that was fine when created, then swapped for a symlink, once its file's handle is gone
    await rm(join(out, 'multi', 'a', 'sub'));
    await store.writePiece(1, content.subarray(PL));
  } finally {
    await store.close();
  }
  const again = await FileStore.open(t, out, { mode: 'write', maxOpen: 1 });
  try {
    await rename(join(out, 'multi', 'a'), join(out, 'stash'));
    await mkdir(join(out, 'multi', 'a'));
    await symlink(outside, join(out, 'multi', 'a', 'sub'));
    await assert.rejects(again.writePiece(1, content.subarray(PL)), UnsafePathError);
  } finally {
    await again.close();
  }
  assert.deepEqual(await readdir(outside), []);
  assert.deepEqual(await readFile(join(out, 'stash', 'sub', 'f.bin')), files[1]!.data);
});

test('a FIFO or a directory where a file belongs is in the way, never opened', { timeout: 20_000 }, async () => {
  const r = rng(seedFromEnv());
  const files: TestFile[] = [{ path: ['a', 'f.bin'], data: bytes(r, PL) }];
  const { torrent: t, content } = makeTorrent('multi', files, PL);
  const out = await tmpDir();
  const store = await FileStore.open(t, out, { mode: 'write' });
  const reader = await FileStore.open(t, out, { mode: 'read' });
  try {
    await mkdir(join(out, 'multi', 'a', 'f.bin'), { recursive: true });
    await assert.rejects(store.writePiece(0, content), /multi\/a\/f\.bin is in the way: it is not a regular file/);
    await rm(join(out, 'multi', 'a', 'f.bin'), { recursive: true });
    // a FIFO opened for reading would wait for a writer forever
    assert.equal(spawnSync('mkfifo', [join(out, 'multi', 'a', 'f.bin')]).status, 0);
    await assert.rejects(store.writePiece(0, content), /multi\/a\/f\.bin is in the way: it is not a regular file/);
    // reading (seed, verify): not a file there, so not on disk
    assert.equal(await reader.readPiece(0), null);
  } finally {
    await store.close();
    await reader.close();
  }
});

test('assemble racing a loop that swaps a directory for a symlink outside never writes outside', { timeout: 120_000 }, async (t) => {
  if (!walksByDescriptor) {
    t.skip('no /proc/self/fd here: the walk by descriptor that closes the race is Linux-only');
    return;
  }
  const seed = seedFromEnv();
  const r = rng(seed);
  // a first file beside the directory, then many small files in it: every one a fresh walk and open to race
  const files: TestFile[] = [{ path: ['top.bin'], data: bytes(r, PL) }, ...Array.from({ length: 160 }, (_, i) => ({ path: ['a', 'sub', `f${i}.bin`], data: bytes(r, PL) }))];
  const { bytes: tb, content } = makeTorrent('multi', files, PL);
  const parent = await tmpDir('tt-race-');
  const tf = join(parent, 'x.torrent');
  await writeFile(tf, tb);
  const outside = join(parent, 'outside');
  await mkdir(outside);
  const piece = (i: number) => ({ index: i, piece: content.subarray(i * PL, (i + 1) * PL) });
  const first = await frames([piece(0)]);
  const rest = await frames(files.slice(1).map((_, i) => piece(i + 1)));
  // the attacker: as fast as it can, move a/sub aside (inside the output) and plant a symlink in its place
  const swapper = `
    const fs = require('node:fs');
    const [sub, stash, outside] = process.argv.slice(1);
    const end = Date.now() + 60000;
    for (let k = 0; Date.now() < end; k++) {
      try { fs.renameSync(sub, stash + k); } catch {}
      try { fs.symlinkSync(outside, sub); } catch {}
      try { fs.unlinkSync(sub); } catch {}
    }`;
  let refused = 0;
  for (let run = 0; run < 8; run++) {
    const out = join(parent, `out${run}`);
    await mkdir(join(out, 'multi', 'a'), { recursive: true });
    const child = spawn(process.execPath, [CLI, 'assemble', tf, '-o', out, '--quiet'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.stdin.on('error', () => {});
    const closed = new Promise<number | null>((res) => child.on('close', res));
    // the attack starts once the run is under way: its checks at the start found nothing wrong
    child.stdin.write(first);
    await new Promise((res) => child.stdout.once('data', res));
    const attacker = spawn(process.execPath, ['-e', swapper, join(out, 'multi', 'a', 'sub'), join(out, 'stash'), outside], { stdio: 'ignore' });
    try {
      await new Promise((res) => setTimeout(res, 30));
      child.stdin.end(rest);
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const code = await closed;
      clearTimeout(timer);
      if (code !== 0) {
        // refused (a symlink on the way), or the tree kept vanishing under it: a line naming the path either way
        assert.match(stderr, new RegExp(`${out}/multi/a/sub`), `seed ${seed} run ${run}: ${stderr}`);
        assert.equal(stderr.trim().split('\n').length, 1, `seed ${seed} run ${run}: one line: ${stderr}`);
        refused++;
      }
    } finally {
      attacker.kill('SIGKILL');
      await new Promise((res) => attacker.on('close', res));
    }
    assert.deepEqual(await everything(outside), [], `seed ${seed} run ${run}: written outside the output directory`);
  }
  t.diagnostic(`${refused} of 8 runs refused a symlink on the way`);
});

test('a file pre-placed as a hard link to one outside gets a copy of its own; the outside file keeps its bytes', async () => {
  const r = rng(seedFromEnv());
  const files: TestFile[] = [
    { path: ['a.bin'], data: bytes(r, 2 * PL) },
    { path: ['b.bin'], data: bytes(r, PL) },
  ];
  const { bytes: tb, content } = makeTorrent('multi', files, PL);
  const parent = await tmpDir();
  const tf = join(parent, 'x.torrent');
  await writeFile(tf, tb);
  const out = join(parent, 'out');
  await mkdir(join(out, 'multi'), { recursive: true });
  // the outside file holds a's first piece and junk after it: one piece is valid on disk, one is not
  const precious = Buffer.concat([files[0]!.data.subarray(0, PL), Buffer.from('not yours to overwrite'), Buffer.alloc(PL - 22, 7)]);
  const outsideFile = join(parent, 'precious.bin');
  await writeFile(outsideFile, precious);
  await link(outsideFile, join(out, 'multi', 'a.bin'));
  const res = await runCli(['assemble', tf, '-o', out], { input: await frames([0, 1, 2].map((i) => ({ index: i, piece: content.subarray(i * PL, (i + 1) * PL) }))) });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, /multi\/a\.bin had 2 hard links: writing to a copy of its own/);
  assert.deepEqual(await readFile(outsideFile), precious);
  assert.equal((await stat(outsideFile)).nlink, 1);
  assert.deepEqual(await readFile(join(out, 'multi', 'a.bin')), files[0]!.data);
  assert.deepEqual(await readFile(join(out, 'multi', 'b.bin')), files[1]!.data);
  // no temporary file is left beside it
  assert.deepEqual((await readdir(join(out, 'multi'))).sort(), ['a.bin', 'b.bin']);
});

test('the torrent cached in DIR/.torrent-tools is never written through a symlink there', async () => {
  const parent = await tmpDir();
  const out = join(parent, 'out');
  const outside = join(parent, 'outside');
  await mkdir(outside);
  await mkdir(out);
  await symlink(outside, join(out, '.torrent-tools'));
  const file = join(out, '.torrent-tools', 'x.torrent');
  await assert.rejects(writeFileAtomic(file, Buffer.from('d1:ai1ee'), out), /symlink .*\.torrent-tools/);
  assert.deepEqual(await readdir(outside), []);
  await rm(join(out, '.torrent-tools'));
  await writeFileAtomic(file, Buffer.from('d1:ai1ee'), out);
  assert.equal(await readFile(file, 'utf8'), 'd1:ai1ee');
  assert.deepEqual(await readdir(join(out, '.torrent-tools')), ['x.torrent']);
});
