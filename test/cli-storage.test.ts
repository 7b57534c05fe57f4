import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, runCli, runShell } from './helpers/cli.js';
import { encodeFrames as frames } from './helpers/frames.js';
import { bytes, rng, seedFromEnv } from './helpers/random.js';
import { makeTorrent, tmpDir, type TestFile } from './helpers/torrent.js';
import { startSeed } from './helpers/swarm.js';

const PL = 16 * 1024;

function files(r: () => number): TestFile[] {
  return [
    { path: ['a.bin'], data: bytes(r, 3 * PL + 100) },
    { path: ['sub', 'b.bin'], data: bytes(r, 50) },
    { path: ['sub', 'c.bin'], data: bytes(r, 70) },
    { path: ['empty.txt'], data: Buffer.alloc(0) },
    { path: ['d.bin'], data: bytes(r, 40 * PL + 5) },
  ];
}

async function setup(seed: number, single = false) {
  const r = rng(seed);
  const fs = single ? [{ path: ['one.bin'], data: bytes(r, 20 * PL + 3) }] : files(r);
  const name = single ? 'one.bin' : 'multi';
  const { torrent: t, bytes: tb, content } = makeTorrent(name, fs, PL, single);
  const dir = await tmpDir();
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  const piece = (i: number) => content.subarray(i * PL, (i + 1) * PL);
  const order = Array.from({ length: t.pieceCount }, (_, i) => i).sort(() => r() - 0.5);
  const stream = await frames([...order, order[0]!, order[1]!].map((i) => ({ index: i, piece: piece(i) })));
  return { t, tf, dir, fs, name, content, piece, stream, order };
}

async function sameFiles(out: string, name: string, fs: TestFile[]): Promise<void> {
  for (const f of fs) assert.deepEqual(await readFile(join(out, name, ...f.path)), f.data, f.path.join('/'));
}

test('assemble writes every file from a shuffled stream with duplicates, one event per piece', async () => {
  const seed = seedFromEnv();
  const s = await setup(seed);
  const out = join(s.dir, 'out');
  const r = await runCli(['assemble', s.tf, '-o', out], { input: s.stream });
  assert.equal(r.code, 0, r.stderr);
  const events = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { event: string; index?: number });
  assert.equal(events.filter((e) => e.event === 'piece').length, s.t.pieceCount + 2);
  assert.equal(events.filter((e) => e.event === 'complete').length, 1);
  await sameFiles(out, 'multi', s.fs);
  // the events are a have-set that verify agrees with
  const v = await runCli(['verify', s.tf, out]);
  assert.equal(v.code, 0, v.stderr);
  assert.equal(v.stdout.toString().trim().split('\n').length, s.t.pieceCount);
  assert.match(v.stderr, new RegExp(`${s.t.pieceCount} of ${s.t.pieceCount} pieces valid`));
});

test('assemble --stdout is byte-identical to the content (multi-file, single-file, one --select file)', async () => {
  const seed = seedFromEnv();
  for (const single of [false, true]) {
    const s = await setup(seed, single);
    const r = await runCli(['assemble', s.tf, '--stdout', '--max-buffer', String(4 * PL)], { input: s.stream });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(s.content), `seed ${seed} single=${single}`);
  }
  const s = await setup(seed);
  const r = await runCli(['assemble', s.tf, '--stdout', '--select', 'sub/c.bin'], { input: s.stream });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout, s.fs[2]!.data);
});

test('a stream that ends early: exit 1 saying how many pieces are missing', async () => {
  const s = await setup(seedFromEnv());
  const half = await frames(s.order.slice(0, 10).map((i) => ({ index: i, piece: s.piece(i) })));
  const r = await runCli(['assemble', s.tf, '-o', join(s.dir, 'out')], { input: half });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`the piece stream ended with ${s.t.pieceCount - 10} of ${s.t.pieceCount} wanted pieces missing`));
  const bad = await runCli(['assemble', s.tf, '-o', join(s.dir, 'out2')], { input: Buffer.concat([half, Buffer.from('garbage')]) });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^torrent-tools assemble: stdin: byte \d+: expected 'i', 'l', 'd' or a digit/);
});

test('a malformed frame after good ones arriving in one read: the good pieces are written and journalled, then exit 1 with one line', async () => {
  const seed = seedFromEnv();
  const s = await setup(seed);
  const first = s.order.slice(0, 3);
  const good = await frames(first.map((i) => ({ index: i, piece: s.piece(i) })));
  // a frame whose piece is one byte short of its length: the byte after it is not the closing 'e'
  // (its own length: the last piece is shorter, and the seed decides whether it is this one)
  const cut = s.piece(s.order[3]!);
  const bad = Buffer.concat([Buffer.from(`d5:indexi${s.order[3]}e5:piece${cut.length}:`), cut.subarray(1), Buffer.from('e')]);
  const input = Buffer.concat([good, bad, await frames([{ index: s.order[4]!, piece: s.piece(s.order[4]!) }])]);
  const at = good.length + bad.length; // the frame's end, where 'e' was expected: the next frame's 'd' is there
  await writeFile(join(s.dir, 'stream'), input);
  // stdin a pipe (the whole stream in one write) and a file (one read)
  for (const how of ['pipe', 'file'] as const) {
    const out = join(s.dir, `out-${how}`);
    const journal = join(s.dir, `journal-${how}.ndjson`);
    const r = how === 'pipe'
      ? await runCli(['assemble', s.tf, '-o', out], { input })
      : await runShell(`$TT assemble "${s.tf}" -o "${out}" < "${join(s.dir, 'stream')}"`);
    assert.equal(r.code, 1, `${how}, seed ${seed}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^torrent-tools assemble: stdin: byte ${at}: expected a string dict key or 'e', got 'd'\n$`), `${how}, seed ${seed}`);
    await writeFile(journal, r.stdout);
    const events = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { event: string; index: number });
    assert.deepEqual(events, first.map((i) => ({ event: 'piece', index: i, bytes: s.piece(i).length })), `${how}, seed ${seed}`);
    const v = await runCli(['verify', s.tf, out, '--quiet']);
    const valid = v.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { index: number; valid: boolean }).filter((x) => x.valid).map((x) => x.index);
    assert.deepEqual(valid, [...first].sort((a, b) => a - b), `${how}: on disk, seed ${seed}`);
    // the journal is the resume state: the rest of the pieces complete the files
    const rest = s.order.slice(3).map((i) => ({ index: i, piece: s.piece(i) }));
    const resumed = await runCli(['assemble', s.tf, '-o', out, '--have', journal], { input: await frames(rest) });
    assert.equal(resumed.code, 0, `${how}, seed ${seed}: ${resumed.stderr}`);
    await sameFiles(out, 'multi', s.fs);
  }
  // --stdout: the content of the pieces before the bad frame goes out first
  const inOrder = Buffer.concat([await frames([0, 1, 2].map((i) => ({ index: i, piece: s.piece(i) }))), bad]);
  const c = await runCli(['assemble', s.tf, '--stdout'], { input: inOrder });
  assert.equal(c.code, 1, c.stderr);
  assert.equal(c.stderr.split('\n').length, 2, c.stderr);
  assert.deepEqual(c.stdout, s.content.subarray(0, 3 * PL), `--stdout, seed ${seed}`);
});

test('a corrupted piece is refused with a warning and counted missing', async () => {
  const s = await setup(seedFromEnv());
  const good = s.order.slice(1).map((i) => ({ index: i, piece: s.piece(i) }));
  const broken = Buffer.from(s.piece(s.order[0]!));
  broken[0] ^= 1;
  const r = await runCli(['assemble', s.tf, '-o', join(s.dir, 'out')], { input: await frames([{ index: s.order[0]!, piece: broken }, ...good]) });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`warning: piece ${s.order[0]} refused: SHA-1 mismatch`));
  assert.match(r.stderr, /1 of \d+ wanted pieces missing/);
});

test('crash safety: assemble killed with SIGKILL at 20 random points, then verify and resume give identical files', async () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const s = await setup(seed);
  for (let run = 0; run < 20; run++) {
    const out = join(s.dir, `crash${run}`);
    const child = spawn(process.execPath, [CLI, 'assemble', s.tf, '-o', out], { stdio: ['pipe', 'pipe', 'ignore'] });
    const journal: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => journal.push(c));
    child.stdin.on('error', () => {});
    const cut = Math.floor(r() * s.stream.length);
    child.stdin.write(s.stream.subarray(0, cut));
    await new Promise((res) => setTimeout(res, 50 + r() * 150));
    child.kill('SIGKILL');
    await new Promise((res) => child.on('close', res));
    // every piece the journal reports is really on disk
    const v = await runCli(['verify', s.tf, out, '--quiet']);
    const valid = new Set(v.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as { index: number; valid: boolean }).filter((x) => x.valid).map((x) => x.index));
    for (const line of Buffer.concat(journal).toString().split('\n')) {
      if (!line.startsWith('{"event":"piece"')) continue;
      const idx = (JSON.parse(line) as { index: number }).index;
      assert.ok(valid.has(idx), `seed ${seed} run ${run}: journal says piece ${idx} is on disk, verify disagrees`);
    }
    // resume with exactly the pieces verify found missing
    const missing = Array.from({ length: s.t.pieceCount }, (_, i) => i).filter((i) => !valid.has(i));
    const have = join(s.dir, `have${run}.ndjson`);
    await writeFile(have, v.stdout);
    const resumed = await runCli(['assemble', s.tf, '-o', out, '--have', have], { input: await frames(missing.map((i) => ({ index: i, piece: s.piece(i) }))) });
    assert.equal(resumed.code, 0, `seed ${seed} run ${run}: ${resumed.stderr}`);
    await sameFiles(out, 'multi', s.fs);
  }
});

const canMount = (() => {
  if (process.getuid?.() !== 0) return false;
  const probe = spawnSync('sh', ['-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"; r=$?; rmdir "$d"; exit $r']);
  return probe.status === 0;
})();

const canLoopMount = canMount && spawnSync('sh', ['-c', 'command -v mkfs.ext4 && command -v losetup']).status === 0;

/**
 * A small file system at `mnt` with `room` bytes free, and how to make room later: tmpfs (its
 * size), or ext4 on a loop device (a filler file), where the aligned parts of writes are direct.
 */
async function tinyFs(kind: 'tmpfs' | 'ext4', dir: string, mnt: string, room: number): Promise<{ grow: () => Promise<void>; unmount: () => void }> {
  const unmount = (): void => void spawnSync('umount', [mnt]);
  if (kind === 'tmpfs') {
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${room}`, 'tmpfs', mnt]).status, 0);
    return { grow: async () => assert.equal(spawnSync('mount', ['-o', 'remount,size=4m', mnt]).status, 0), unmount };
  }
  const img = join(dir, 'fs.img');
  assert.equal(spawnSync('sh', ['-c', `truncate -s 8M "${img}" && mkfs.ext4 -q "${img}" && mount -o loop "${img}" "${mnt}"`]).status, 0);
  const st = await statfs(mnt);
  const filler = join(mnt, 'filler');
  assert.equal(spawnSync('fallocate', ['-l', String(st.bavail * st.bsize - room), filler]).status, 0);
  return { grow: () => rm(filler), unmount };
}

for (const kind of ['tmpfs', 'ext4'] as const) {
  const skip = kind === 'tmpfs' ? (canMount ? false : 'needs root to mount a small tmpfs') : canLoopMount ? false : 'needs root, mkfs.ext4 and losetup for a loop-mounted ext4';
  test(`disk full (${kind}): a clear error and exit 1; a later run with room resumes`, { skip }, async (t) => {
    const s = await setup(seedFromEnv());
    const mnt = await tmpDir('tt-full-');
    const fsys = await tinyFs(kind, s.dir, mnt, 256 * 1024);
    t.after(fsys.unmount);
    await writeFile(join(s.dir, 'stream'), s.stream);
    const out = join(mnt, 'out2');
    const r1 = await runShell(`$TT assemble "${s.tf}" -o "${out}" < "${join(s.dir, 'stream')}"`);
    assert.equal(r1.code, 1, r1.stderr);
    assert.match(r1.stderr, /no space left on device/);
    assert.equal(r1.stderr.trim().split('\n').length, 1, r1.stderr);
    await fsys.grow();
    const v = await runCli(['verify', s.tf, out, '--quiet']);
    const have = join(s.dir, 'have.ndjson');
    await writeFile(have, v.stdout);
    const r2 = await runShell(`$TT assemble "${s.tf}" -o "${out}" --have "${have}" < "${join(s.dir, 'stream')}" > /dev/null`);
    assert.equal(r2.code, 0, r2.stderr);
    await sameFiles(out, 'multi', s.fs);
  });
}

test('verify --summary and exit status on damage', async () => {
  const s = await setup(seedFromEnv());
  const out = join(s.dir, 'out');
  await runCli(['assemble', s.tf, '-o', out], { input: s.stream });
  const p = join(out, 'multi', 'd.bin');
  const b = await readFile(p);
  b[5 * PL] ^= 1;
  await writeFile(p, b);
  const v = await runCli(['verify', '--summary', s.tf, out]);
  assert.equal(v.code, 1);
  const sum = JSON.parse(v.stdout.toString()) as { pieces: number; valid: number; invalid: number; missingFiles: string[]; bitfield: string };
  assert.equal(sum.invalid, 1);
  assert.equal(sum.valid, s.t.pieceCount - 1);
  assert.deepEqual(sum.missingFiles, []);
  assert.equal(sum.bitfield.length, Math.ceil(s.t.pieceCount / 8) * 2);
  const missing = await runCli(['verify', s.tf, join(s.dir, 'nowhere')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /0 of \d+ pieces valid, 5 file\(s\) missing/);
});

test('verify and seed take DIR as the folder holding the content or as the content itself', async () => {
  const dir = await tmpDir('tt-dirrule-');
  const data = join(dir, 'data');
  await mkdir(join(data, 'sub'), { recursive: true });
  await writeFile(join(data, 'a.bin'), Buffer.alloc(100_000, 1));
  await writeFile(join(data, 'sub', 'b.bin'), Buffer.alloc(5000, 2));
  const tf = join(dir, 'data.torrent');
  assert.equal((await runCli(['create', data, '-o', tf, '--quiet'])).code, 0);
  for (const d of [dir, data]) {
    const r = await runCli(['verify', tf, d, '--summary']);
    assert.equal(r.code, 0, `${d}: ${r.stderr}`);
    assert.equal(JSON.parse(r.stdout.toString()).invalid, 0);
    const s = await startSeed(tf, d); // it checks the files first: no valid piece would end it
    await s.stop();
  }
  const wrong = await runCli(['verify', tf, join(dir, 'elsewhere'), '--summary']);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /the torrent's content was expected at .*elsewhere\/data \(DIR is the folder that holds data, or data itself\)/);
});
