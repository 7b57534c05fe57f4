/**
 * Crash safety: `download` and `fetch-pieces | assemble` killed with SIGKILL at random moments
 * (seeded: the seed is in the test names, TT_SEED=n replays), each resumed by the next run, from
 * our own seed behind a relay that slows it and a gate that lets each run fetch only a share of
 * what is left, so every kill lands before the run could end. After every kill, what the run
 * said is on disk is, and the next run fetches no piece its resume knew to be there: for
 * download every piece valid on disk (it verifies DIR first), for assemble every piece in its
 * journal (its events, fed back with --have). The last run completes; the files are identical.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { verifyPieces } from '../src/storage/verify.js';
import { CLI } from './helpers/cli.js';
import { startDelayRelay } from './helpers/delay-relay.js';
import { bytes, int, rng, seedFromEnv } from './helpers/random.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles, type TestFile } from './helpers/torrent.js';

const PL = 16 * 1024;
const KILLS = 10;
const seed = seedFromEnv();
const files: TestFile[] = [
  { path: ['a.bin'], data: bytes(rng(seed), 100 * PL + 777) },
  { path: ['sub', 'b.bin'], data: bytes(rng(seed + 1), 3000) },
  { path: ['c.bin'], data: bytes(rng(seed + 2), 140 * PL + 5) },
];
const { torrent: t, bytes: tb } = makeTorrent('crash', files, PL);
const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

/**
 * The torrent, our seed, and a relay in front of it that holds each chunk 20 ms and at most
 * 16 KiB at a time (~2 MB/s measured): pieces trickle in, so a kill after the k-th finds the
 * next ones being written rather than all of them on disk already.
 */
async function setup(): Promise<{ dir: string; tf: string; upstream: number }> {
  const dir = await tmpDir('tt-crash-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  await writeFiles(join(dir, 'full'), 'crash', files);
  const s: SeedProc = await startSeed(tf, join(dir, 'full'), { args: ['--skip-verify', '--no-announce'] });
  cleanup.push(() => s.stop());
  const relay = await startDelayRelay({ host: '127.0.0.1', port: s.port }, 20, { maxQueuedBytes: PL });
  cleanup.push(() => relay.close());
  return { dir, tf, upstream: relay.port };
}

/**
 * A relay to `upstream` (the seed's relay) that passes at most `budget` bytes from it, then holds the rest: a run
 * can fetch only so much, so it is still running when its kill comes however fast the machine
 * is or however late the test's timers fire (Infinity: no limit).
 */
async function gate(upstream: number, budget: number): Promise<{ peer: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = connect({ host: '127.0.0.1', port: upstream });
    let left = budget;
    for (const [a, b] of [[inbound, outbound], [outbound, inbound]] as const) {
      sockets.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
    inbound.on('data', (c: Buffer) => outbound.write(c));
    outbound.on('data', (c: Buffer) => {
      if (left <= 0) return;
      inbound.write(c.subarray(0, left));
      left -= c.length;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    peer: `127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => new Promise<void>((resolve) => {
      for (const x of sockets) x.destroy();
      server.close(() => resolve());
    }),
  };
}

/** Bytes from the seed for `pieces` pieces and the talk around them (handshakes, bitfield, message headers). */
const bytesFor = (pieces: number): number => pieces * (PL + 13) + 2048;

async function validOnDisk(out: string): Promise<Set<number>> {
  const valid = new Set<number>();
  for await (const [i, ok] of verifyPieces(t, out, { workers: 1 })) if (ok) valid.add(i);
  return valid;
}

/** The indexes of the piece events in an NDJSON file (a torn last line, from a kill, is not one). */
async function pieceEvents(file: string): Promise<number[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const out: number[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{"event":"piece"') || !line.endsWith('}')) continue;
    out.push((JSON.parse(line) as { index: number }).index);
  }
  return out;
}

const exited = (c: ChildProcess): Promise<void> => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve() : c.once('exit', () => resolve())));

/** A process to kill: whether it has ended by itself, how to kill it, when it is gone. */
interface Victim {
  ended(): boolean;
  kill(): Promise<void>;
}

const childVictim = (c: ChildProcess): Victim => ({
  ended: () => c.exitCode !== null || c.signalCode !== null,
  kill: async () => {
    c.kill('SIGKILL');
    await exited(c);
  },
});

/**
 * Kills `victim` with SIGKILL at a random moment: a random time into the run (its start, the
 * resume's own checking), or once `events` lists a random number (at most `most`) of this
 * run's pieces, or its fetching is held at the gate, plus a little more.
 */
async function killSomewhere(r: () => number, victim: Victim, events: string, before: number, most: number, what: string): Promise<string> {
  if (r() < 0.25) {
    await new Promise((res) => setTimeout(res, int(r, 0, 300)));
  } else {
    const k = int(r, 1, most);
    let seen = -1;
    let still = Date.now();
    for (;;) {
      const n = (await pieceEvents(events)).length - before;
      if (n !== seen) [seen, still] = [n, Date.now()];
      if (n >= k || victim.ended() || Date.now() - still > 1000) break;
      await new Promise((res) => setTimeout(res, 5));
    }
    await new Promise((res) => setTimeout(res, int(r, 0, 30)));
  }
  assert.ok(!victim.ended(), `${what}: the run ended before the kill`);
  await victim.kill();
  return `killed at ${(await pieceEvents(events)).length - before} pieces`;
}

/** How many pieces run `run` may fetch: a share of what is left, so that every run has some. */
const share = (remaining: number, run: number): number => (run < KILLS ? Math.max(1, Math.floor(remaining / (KILLS - run + 1))) : Infinity);

test(`crash safety: download killed with SIGKILL ${KILLS} times at random moments, then resumed: no valid piece fetched again, identical files (seed ${seed})`, { timeout: 60_000 }, async () => {
  const r = rng(seed);
  const { dir, tf, upstream } = await setup();
  const out = join(dir, 'out');
  let valid = new Set<number>();
  for (let run = 0; run <= KILLS; run++) {
    const most = share(t.pieceCount - valid.size, run);
    const { peer, close } = await gate(upstream, bytesFor(most));
    const events = join(dir, `events${run}.ndjson`);
    const fd = openSync(events, 'w');
    const child = spawn(process.execPath, [CLI, 'download', tf, '-o', out, '--peer', peer, '--no-announce', '--no-dht', '--port', '0', '--json', '--quiet'], { stdio: ['ignore', fd, 'pipe'] });
    closeSync(fd);
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const at = `seed ${seed}, run ${run}`;
    let how = 'completed';
    if (run < KILLS) how = await killSomewhere(r, childVictim(child), events, 0, most, at);
    else {
      await exited(child);
      assert.equal(child.exitCode, 0, `${at}: ${stderr}`);
    }
    await close();
    const wrote = await pieceEvents(events);
    const again = wrote.filter((i) => valid.has(i));
    assert.deepEqual(again, [], `${at} (${how}): pieces valid on disk before the run were fetched again`);
    const now = await validOnDisk(out);
    const lost = wrote.filter((i) => !now.has(i));
    assert.deepEqual(lost, [], `${at} (${how}): pieces the run reported written are not valid on disk`);
    for (const i of valid) assert.ok(now.has(i), `${at} (${how}): piece ${i} was valid before the run and is not now`);
    valid = now;
  }
  assert.equal(valid.size, t.pieceCount, `seed ${seed}`);
  for (const f of files) assert.ok((await readFile(join(out, 'crash', ...f.path))).equals(f.data), `seed ${seed}: ${f.path.join('/')}`);
});

test(`crash safety: fetch-pieces | assemble with assemble killed by SIGKILL ${KILLS} times at random moments, resumed from its journal: no journalled piece fetched again, identical files (seed ${seed})`, { timeout: 60_000 }, async () => {
  const r = rng(seed ^ 0x5eed);
  const { dir, tf, upstream } = await setup();
  const out = join(dir, 'out');
  const journal = join(dir, 'journal.ndjson');
  await writeFile(journal, '');
  for (let run = 0; run <= KILLS; run++) {
    const journalled = new Set(await pieceEvents(journal));
    const before = (await pieceEvents(journal)).length;
    const most = share(t.pieceCount - journalled.size, run);
    const { peer, close } = await gate(upstream, bytesFor(most));
    // a real pipe, as the shell makes it (fetch-pieces learns from it that its reader has gone),
    // and the journal appended to; $! is assemble's pid
    const q = (x: string): string => `'${x.replace(/'/g, `'\\''`)}'`;
    const tt = (args: string[]): string => [process.execPath, CLI, ...args].map(q).join(' ');
    const status = (name: string): string => join(dir, `${name}.status`);
    const script = [
      `( ${tt(['fetch-pieces', tf, '--peer', peer, '--no-dht', '--quiet', '--have', journal])}; echo $? > ${q(status('fetch'))} )`,
      ` | ${tt(['assemble', tf, '-o', out, '--quiet', '--have', journal])} >> ${q(journal)} &`,
      `\necho $!; wait $!; echo $? > ${q(status('assemble'))}; wait`,
    ].join('');
    const sh = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    sh.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const pid = Number(await new Promise<string>((resolve) => createInterface({ input: sh.stdout! }).once('line', resolve)));
    const at = `seed ${seed}, run ${run}`;
    let how = 'completed';
    if (run < KILLS) {
      const asm: Victim = {
        ended: () => existsSync(status('assemble')),
        kill: async () => {
          process.kill(pid, 'SIGKILL');
          await exited(sh); // and fetch-pieces, which sees its reader gone
        },
      };
      how = await killSomewhere(r, asm, journal, before, most, at);
      assert.equal((await readFile(status('assemble'), 'utf8')).trim(), '137', `${at}: assemble was killed`);
    } else {
      await exited(sh);
      assert.equal((await readFile(status('assemble'), 'utf8')).trim(), '0', `${at}: ${stderr}`);
    }
    assert.equal((await readFile(status('fetch'), 'utf8')).trim(), '0', `${at}: fetch-pieces ends normally when its reader goes: ${stderr}`);
    await rm(status('assemble'));
    await rm(status('fetch'));
    await close();
    const all = await pieceEvents(journal);
    const again = all.slice(before).filter((i) => journalled.has(i));
    assert.deepEqual(again, [], `${at} (${how}): pieces in the journal before the run were fetched again`);
    const now = await validOnDisk(out);
    const lost = all.filter((i) => !now.has(i));
    assert.deepEqual([...new Set(lost)], [], `${at} (${how}): the journal lists pieces that are not valid on disk`);
  }
  for (const f of files) assert.ok((await readFile(join(out, 'crash', ...f.path))).equals(f.data), `seed ${seed}: ${f.path.join('/')}`);
});
