/**
 * A seeder nobody can lock out: forty peers that take upload slots and never read, or a
 * hundred that take every connection slot and idle, and an honest leecher still gets the
 * whole torrent from our `seed`. Real processes and sockets on loopback.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runShell } from './helpers/cli.js';
import { startHostileLeechers, type HostileLeechers } from './helpers/hostile-leechers.js';
import { bytes, rng } from './helpers/random.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles } from './helpers/torrent.js';

const PL = 256 * 1024;
const data = bytes(rng(5), 32 * PL);
const { torrent, bytes: tb } = makeTorrent('lockout.bin', [{ path: ['lockout.bin'], data }], PL, true);
const running: Array<{ stop: () => unknown }> = [];
after(async () => {
  for (const r of running) await r.stop();
});

async function setup(): Promise<{ dir: string; tf: string; seed: SeedProc }> {
  const dir = await tmpDir('tt-lockout-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  await writeFiles(join(dir, 'full'), 'lockout.bin', [{ path: ['lockout.bin'], data }], true);
  const seed = await startSeed(tf, join(dir, 'full'), { args: ['--skip-verify', '--no-announce'] });
  running.push(seed);
  return { dir, tf, seed };
}

/** The honest leecher: fetch-pieces | assemble from the seed; its wall time in seconds. */
async function honest(dir: string, tf: string, port: number, name: string): Promise<number> {
  const out = join(dir, name);
  const t0 = Date.now();
  const res = await runShell(`$TT fetch-pieces "${tf}" --peer 127.0.0.1:${port} --quiet --no-dht < /dev/null | $TT assemble "${tf}" -o "${out}" --quiet > /dev/null; echo "\${PIPESTATUS[*]}"`, { timeoutMs: 120_000 });
  assert.equal(res.stdout.toString().trim(), '0 0', res.stderr);
  assert.ok((await readFile(join(out, 'lockout.bin'))).equals(data), 'the bytes are the torrent');
  return (Date.now() - t0) / 1000;
}

// every block of the first two pieces, requested again and again
const blocks = Array.from({ length: (2 * PL) / 16384 }, (_, i) => ({ index: i >> 4, begin: (i & 15) * 16384, length: 16384 }));

test('forty peers that queue requests and never read do not starve an honest leecher', async (t) => {
  const { dir, tf, seed } = await setup();
  const alone = await honest(dir, tf, seed.port, 'alone');
  const bad: HostileLeechers = await startHostileLeechers({ port: seed.port, infoHash: torrent.infoHash, count: 40, mode: 'no-read', requests: blocks });
  running.push({ stop: () => bad.close() });
  await new Promise((r) => setTimeout(r, 1000)); // they hold every slot by now
  const besieged = await honest(dir, tf, seed.port, 'besieged');
  t.diagnostic(`honest leecher alone ${alone.toFixed(2)} s, beside 40 non-readers ${besieged.toFixed(2)} s`);
  bad.close();
});

test('a hundred idle connections do not keep an honest leecher out', async (t) => {
  const { dir, tf, seed } = await setup();
  const idle = await startHostileLeechers({ port: seed.port, infoHash: torrent.infoHash, count: 100, mode: 'idle' });
  running.push({ stop: () => idle.close() });
  await new Promise((r) => setTimeout(r, 3500)); // old enough to be worth dropping for a newcomer
  assert.equal(idle.open, 100, 'the seed took all hundred (its default --max-peers)');
  const took = await honest(dir, tf, seed.port, 'admitted');
  assert.ok(idle.open < 100, 'an idle connection was dropped to make room');
  t.diagnostic(`honest leecher beside 100 idle connections: ${took.toFixed(2)} s`);
  idle.close();
});
