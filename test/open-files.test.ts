/**
 * One limit on open descriptors shared by many stores (src/storage/open-files.ts): counted by
 * the budget and seen in /proc/self/fd, over real files in a temporary directory.
 */
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, test } from 'node:test';
import { FileStore } from '../src/storage/file-store.js';
import { nextUse, type Used } from '../src/storage/lru.js';
import { OpenFiles, type Holder } from '../src/storage/open-files.js';
import { AssembleStream } from '../src/streams/assemble.js';
import { pieceFrame } from '../src/streams/piece-frames.js';
import { bytes, int, rng, seedFromEnv } from './helpers/random.js';
import { makeTorrent, tmpDir, type TestFile } from './helpers/torrent.js';

const PL = 16 * 1024;
const made: string[] = [];
after(async () => {
  await Promise.all(made.map((d) => rm(d, { recursive: true, force: true })));
});

async function scratch(): Promise<string> {
  const d = await tmpDir('tt-open-files-');
  made.push(d);
  return d;
}

/** What this process's descriptors under `dir` point at (files and directories), read at one instant. */
function openUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the directory listing's own descriptor, closed already
    }
    if (target === dir || target.startsWith(dir + '/')) out.push(target);
  }
  return out.sort();
}

/** Samples the budget and /proc/self/fd between callbacks until stopped; the most of each seen. */
function watch(budget: OpenFiles, dir: string): { stop(): Promise<{ counted: number; seen: number; samples: number }> } {
  let running = true;
  let counted = 0;
  let seen = 0;
  let samples = 0;
  const done = (async () => {
    while (running) {
      counted = Math.max(counted, budget.open);
      seen = Math.max(seen, openUnder(dir).length);
      samples++;
      await new Promise((r) => setImmediate(r));
    }
  })();
  return {
    async stop() {
      running = false;
      await done;
      return { counted, seen, samples };
    },
  };
}

/** A single-file torrent and its file `dir/name`, written. */
async function singleFile(dir: string, name: string, data: Buffer): Promise<ReturnType<typeof makeTorrent>> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, name), data);
  return makeTorrent(name, [{ path: [name], data }], PL, true);
}

/**
 * Makes the reads of chosen files wait, inside FileHandle.read, until let go: their store's slot
 * stays in use meanwhile. A handle closed under a waiting read fails it (EBADF) once let go.
 */
async function gateReads(probe: string): Promise<{ block(path: string): void; waiting(): number; letGo(): void; restore(): void }> {
  const h = await open(probe);
  const proto = Object.getPrototypeOf(h) as { read: (...args: unknown[]) => Promise<unknown> };
  await h.close();
  const original = proto.read;
  const blocked = new Set<string>();
  let waiting = 0;
  let wake: () => void = () => {};
  let gate = new Promise<void>((r) => (wake = r));
  proto.read = async function (this: { fd: number }, ...args: unknown[]) {
    if (blocked.size > 0 && blocked.has(readlinkSync(`/proc/self/fd/${this.fd}`))) {
      waiting++;
      await gate;
      waiting--;
    }
    return original.apply(this, args);
  };
  return {
    block: (path) => blocked.add(path),
    waiting: () => waiting,
    letGo() {
      blocked.clear();
      wake();
      gate = new Promise<void>((r) => (wake = r));
    },
    restore() {
      proto.read = original;
    },
  };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const end = Date.now() + 10_000;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A holder of named entries of one or more descriptors, for the budget alone: a close takes a turn of the event loop. */
class FakeHolder implements Holder {
  readonly entries = new Map<string, Used & { n: number }>();
  readonly closed: string[] = [];
  constructor(private readonly budget: OpenFiles) {
    budget.register(this);
  }
  async add(name: string, users = 0, n = 1): Promise<Used> {
    await this.budget.reserve(n);
    const e = { users, lastUse: nextUse(), n };
    this.entries.set(name, e);
    return e;
  }
  oldestIdle(): number {
    let t = Infinity;
    for (const e of this.entries.values()) if (e.users === 0 && e.lastUse < t) t = e.lastUse;
    return t;
  }
  async closeOldestIdle(): Promise<void> {
    let victim: string | null = null;
    for (const [k, e] of this.entries) if (e.users === 0 && (victim === null || e.lastUse < this.entries.get(victim)!.lastUse)) victim = k;
    if (victim === null) return;
    const { n } = this.entries.get(victim)!;
    this.entries.delete(victim);
    await this.budget.releaseAfter(new Promise((r) => setImmediate(() => {
      this.closed.push(victim);
      r(n);
    })));
  }
}

test('the budget closes the least recently used idle entry of any holder, never one in use', async () => {
  assert.throws(() => new OpenFiles(0), RangeError);
  assert.throws(() => new OpenFiles(1.5), RangeError);
  const budget = new OpenFiles(3);
  const a = new FakeHolder(budget);
  const b = new FakeHolder(budget);
  await a.add('a1');
  const b1 = await b.add('b1');
  await a.add('a2');
  b1.lastUse = nextUse(); // b1 used again: a1 is now the oldest
  await b.add('b2');
  assert.deepEqual([a.closed, b.closed], [['a1'], []]);
  a.entries.get('a2')!.users = 1; // in use: skipped although it is older than b1's last use
  await a.add('a3');
  assert.deepEqual([a.closed, b.closed], [['a1'], ['b1']]);
  assert.equal(budget.open, 3);
  // everything in use: counted over the limit rather than waiting
  for (const e of [...a.entries.values(), ...b.entries.values()]) e.users = 1;
  await b.add('b3', 1);
  assert.equal(budget.open, 4);
  assert.deepEqual([a.closed, b.closed], [['a1'], ['b1']]);
  // once some are idle again, the next reservation closes down to the limit
  for (const e of a.entries.values()) e.users = 0;
  await b.add('b4');
  assert.equal(budget.open, 3);
  assert.deepEqual(a.closed, ['a1', 'a2', 'a3']);
  // a holder that left is never asked
  b.entries.get('b4')!.users = 0;
  budget.unregister(b);
  await a.add('a4');
  assert.equal(budget.open, 4);
  assert.ok(b.entries.has('b4'));
});

test('a reservation that finds nothing idle waits for a close under way rather than going over', async () => {
  const budget = new OpenFiles(3);
  const h = new FakeHolder(budget);
  await h.add('two', 0, 2); // a file with its O_DIRECT twin, idle
  await h.add('busy', 1);
  const first = h.add('x', 1); // closes 'two'
  const second = h.add('y', 1); // nothing idle now, but two descriptors are on their way back
  assert.equal(budget.open, 3);
  await Promise.all([first, second]);
  assert.deepEqual(h.closed, ['two']);
  assert.equal(budget.open, 3);
});

test('many stores sharing a budget of 8 never hold more than 8 open, and data round-trips', async () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const dir = await scratch();
  const budget = new OpenFiles(8);
  // 12 torrents of 4 files each (one in a folder): 48 files, and 12 roots plus 24 folders to hold
  const torrents = Array.from({ length: 12 }, (_, k) => {
    const files: TestFile[] = [
      { path: ['a.bin'], data: bytes(r, int(r, 1, 3 * PL)) },
      { path: ['b.bin'], data: bytes(r, int(r, 1, 2 * PL)) },
      { path: ['sub', 'c.bin'], data: bytes(r, int(r, 1, 2 * PL)) },
      { path: ['d.bin'], data: bytes(r, int(r, 1, PL)) },
    ];
    return makeTorrent(`t${k}`, files, PL);
  });
  const w = watch(budget, dir);
  // writers, direct writes on where the file system has them (two descriptors a file)
  const writers = await Promise.all(torrents.map(({ torrent }) => FileStore.open(torrent, dir, { mode: 'write', openFiles: budget })));
  const jobs = torrents.flatMap(({ torrent }, k) => Array.from({ length: torrent.pieceCount }, (_, i) => ({ k, i }))).sort(() => r() - 0.5);
  // two at a time: each holds at most a file (two descriptors) and the two folders of its walk
  const next = (): { k: number; i: number } | undefined => jobs.pop();
  const worker = async (): Promise<void> => {
    for (let j = next(); j !== undefined; j = next()) {
      const { content } = torrents[j.k]!;
      await writers[j.k]!.writePiece(j.i, content.subarray(j.i * PL, (j.i + 1) * PL));
    }
  };
  await Promise.all([worker(), worker()]);
  // readers beside the writers (still open, still holding what they hold), in the same budget
  const readers = await Promise.all(torrents.map(({ torrent }) => FileStore.open(torrent, dir, { mode: 'read', openFiles: budget })));
  for (let round = 0; round < 3; round++) {
    await Promise.all([0, 1].map(async (lane) => {
      for (let k = lane; k < torrents.length; k += 2) {
        const { torrent, content } = torrents[k]!;
        const i = int(r, 0, torrent.pieceCount - 1);
        const store = r() < 0.5 ? readers[k]! : writers[k]!;
        assert.deepEqual(await store.readPiece(i), content.subarray(i * PL, (i + 1) * PL), `seed ${seed}: t${k} piece ${i}`);
      }
    }));
  }
  const { counted, seen, samples } = await w.stop();
  assert.ok(samples > 50, `${samples} samples`);
  assert.ok(counted <= 8, `seed ${seed}: ${counted} counted at once`);
  assert.ok(seen <= 8, `seed ${seed}: ${seen} open under ${dir} at once`);
  assert.ok(seen >= 6, `seed ${seed}: the budget was used (${seen} at most)`);
  await Promise.all([...writers, ...readers].map((s) => s.close()));
  assert.equal(budget.open, 0);
  assert.deepEqual(openUnder(dir), []);
  for (const [k, { torrent, content }] of torrents.entries()) {
    let at = 0;
    for (const f of torrent.files) {
      assert.deepEqual(await readFile(join(dir, `t${k}`, ...f.path)), content.subarray(at, at + f.length), `seed ${seed}: t${k}/${f.path.join('/')}`);
      at += f.length;
    }
  }
});

test('the least recently used is chosen across stores: a file used again outlives an older one', async () => {
  const dir = await scratch();
  const r = rng(7);
  const budget = new OpenFiles(8);
  const made = await Promise.all(Array.from({ length: 6 }, (_, k) => singleFile(join(dir, `s${k}`), 'f', bytes(r, 100 + k))));
  const stores = await Promise.all(made.map(({ torrent }, k) => FileStore.open(torrent, join(dir, `s${k}`), { mode: 'read', openFiles: budget })));
  const files = (): string[] => openUnder(dir).filter((p) => p.endsWith('/f')).map((p) => p.slice(dir.length + 1, -2));
  try {
    // each store holds its folder and its file: 4 stores fill the budget
    for (const k of [0, 1, 2, 3]) assert.deepEqual(await stores[k]!.readPiece(0), made[k]!.content);
    assert.deepEqual(files(), ['s0', 's1', 's2', 's3']);
    assert.equal(openUnder(dir).length, 8);
    assert.deepEqual(await stores[0]!.readPiece(0), made[0]!.content); // s0's file used again
    // s4 and s5 need four places: the folders s0..s2 (used only to open their files) and s1's file go
    for (const k of [4, 5]) assert.deepEqual(await stores[k]!.readPiece(0), made[k]!.content);
    assert.deepEqual(files(), ['s0', 's2', 's3', 's4', 's5']);
    assert.equal(openUnder(dir).length, 8);
    assert.equal(budget.open, 8);
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
});

test('a handle in use is never closed to make room; all in use goes over the limit, then back under', async () => {
  const dir = await scratch();
  const r = rng(11);
  const budget = new OpenFiles(4);
  const made = await Promise.all(Array.from({ length: 11 }, (_, k) => singleFile(join(dir, `s${k}`), 'f', bytes(r, 1000 + k))));
  const stores = await Promise.all(made.map(({ torrent }, k) => FileStore.open(torrent, join(dir, `s${k}`), { mode: 'read', openFiles: budget })));
  const file = (k: number): string => join(dir, `s${k}`, 'f');
  const gate = await gateReads(file(0));
  try {
    // s0's read waits inside its handle's read: its slot is in use
    gate.block(file(0));
    const held = stores[0]!.readPiece(0);
    await until('the read of s0', () => gate.waiting() === 1);
    // four stores more through a budget of 4: s0's folder may go, its file may not
    for (const k of [1, 2, 3, 4]) {
      assert.deepEqual(await stores[k]!.readPiece(0), made[k]!.content);
      const now = openUnder(dir);
      assert.ok(now.includes(file(0)), `s0's file is open after s${k}: ${now.join(' ')}`);
      assert.ok(now.length <= 4, now.join(' '));
    }
    gate.letGo();
    assert.deepEqual(await held, made[0]!.content); // a handle closed under it would have failed it
    // five reads in use at once through a budget of 4: over the limit rather than waiting for a release
    const over = [5, 6, 7, 8, 9];
    for (const k of over) gate.block(file(k));
    const reads = over.map((k) => stores[k]!.readPiece(0));
    await until('five reads in flight', () => gate.waiting() === 5);
    assert.ok(budget.open >= 5, `${budget.open} counted`);
    const now = openUnder(dir);
    for (const k of over) assert.ok(now.includes(file(k)), `s${k} open: ${now.join(' ')}`);
    gate.letGo();
    assert.deepEqual(await Promise.all(reads), over.map((k) => made[k]!.content));
    // idle again: the next open closes down to the limit
    assert.deepEqual(await stores[10]!.readPiece(0), made[10]!.content);
    assert.equal(budget.open, 4);
    assert.equal(openUnder(dir).length, 4);
  } finally {
    gate.letGo();
    gate.restore();
    await Promise.all(stores.map((s) => s.close()));
  }
  assert.equal(budget.open, 0);
  assert.deepEqual(openUnder(dir), []);
});

test('a closed store gives its descriptors back; one that never opens a file counts nothing', async () => {
  const dir = await scratch();
  const r = rng(3);
  const budget = new OpenFiles(4);
  const a = await singleFile(join(dir, 'a'), 'f', bytes(r, 500));
  const b = await singleFile(join(dir, 'b'), 'f', bytes(r, 600));
  const sa = await FileStore.open(a.torrent, join(dir, 'a'), { mode: 'read', openFiles: budget });
  const sb = await FileStore.open(b.torrent, join(dir, 'b'), { mode: 'read', openFiles: budget });
  assert.deepEqual(await sa.readPiece(0), a.content);
  assert.equal(budget.open, 2);
  assert.deepEqual(await sb.readPiece(0), b.content);
  assert.equal(budget.open, 4);
  await sa.close();
  assert.equal(budget.open, 2);
  assert.deepEqual(openUnder(dir), [join(dir, 'b'), join(dir, 'b', 'f')]);
  // a missing file opens nothing and keeps nothing counted
  const missing = makeTorrent('gone', [{ path: ['gone'], data: Buffer.alloc(10) }], PL, true);
  const sm = await FileStore.open(missing.torrent, join(dir, 'a'), { mode: 'read', openFiles: budget });
  assert.equal(await sm.readPiece(0), null);
  await sm.close();
  assert.equal(budget.open, 2);
  await sb.close();
  assert.equal(budget.open, 0);
  assert.deepEqual(openUnder(dir), []);
});

test('assemble opens its store in the budget it is given and gives it all back', async () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const dir = await scratch();
  const budget = new OpenFiles(6);
  const torrents = Array.from({ length: 3 }, (_, k) => makeTorrent(`t${k}`, [
    { path: ['x', 'a.bin'], data: bytes(r, int(r, 1, 3 * PL)) },
    { path: ['b.bin'], data: bytes(r, int(r, 1, 3 * PL)) },
  ], PL));
  const w = watch(budget, dir);
  await Promise.all(torrents.map(({ torrent, content }) => {
    const frames = Array.from({ length: torrent.pieceCount }, (_, i) => pieceFrame(i, Buffer.from(content.subarray(i * PL, (i + 1) * PL))));
    const sink = new Writable({ objectMode: true, write: (_e, _enc, cb) => cb() });
    return pipeline(Readable.from(frames), new AssembleStream(torrent, dir, { openFiles: budget }), sink);
  }));
  const { counted } = await w.stop();
  assert.ok(counted > 0, 'the stores counted their descriptors');
  assert.equal(budget.open, 0);
  assert.deepEqual(openUnder(dir), []);
  for (const [k, { content }] of torrents.entries()) {
    const got = Buffer.concat([await readFile(join(dir, `t${k}`, 'x', 'a.bin')), await readFile(join(dir, `t${k}`, 'b.bin'))]);
    assert.deepEqual(got, content, `seed ${seed}: t${k}`);
  }
});
