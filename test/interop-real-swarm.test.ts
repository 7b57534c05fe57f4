/**
 * Interop in a swarm that chokes, lags and churns (test/helpers/real-swarm.ts): rate-limited
 * python-libtorrent seeders (their limiter sends choke / allowed-fast / unchoke in bursts)
 * behind delay relays, found through a tracker, seeders leaving and joining; and a mixed swarm
 * where a python-libtorrent leecher must get a real share of its data from our download.
 * Skipped when python3-libtorrent is missing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { CLI, runShell } from './helpers/cli.js';
import { hasLibtorrent, skipUnless } from './helpers/interop.js';
import { freeTcpPort } from './helpers/ports.js';
import { bytes, rng } from './helpers/random.js';
import { spreadSeeders, startRealSwarm, type RealSwarm } from './helpers/real-swarm.js';
import { makeTorrentBytes, tmpDir, writeFiles } from './helpers/torrent.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const PL = 64 * KiB;
const skip = skipUnless(hasLibtorrent(), 'python3-libtorrent');
const swarms: RealSwarm[] = [];
after(async () => {
  for (const s of swarms) await s.close();
});

/** A fresh torrent announcing to a tracker on a free port, its payload on disk. */
async function prepare(sizeMiB: number, seed: number): Promise<{ dir: string; tf: string; full: string; data: Buffer; trackerPort: number }> {
  const dir = await tmpDir('tt-realswarm-');
  const data = bytes(rng(seed), sizeMiB * MiB + 4321);
  const trackerPort = await freeTcpPort();
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, makeTorrentBytes('real.bin', [{ path: ['real.bin'], data }], PL, [['announce', Buffer.from(`http://127.0.0.1:${trackerPort}/announce`)]], true));
  const full = join(dir, 'full');
  await writeFiles(full, 'real.bin', [{ path: ['real.bin'], data }], true);
  return { dir, tf, full, data, trackerPort };
}

test('download from six rate-limited libtorrent seeders behind 40-200 ms relays, one leaving and one joining: byte-identical, no violation', { skip, timeout: 120_000 }, async () => {
  const p = await prepare(12, 21);
  const swarm = await startRealSwarm({ torrentPath: p.tf, dataDir: p.full, trackerPort: p.trackerPort, seeders: spreadSeeders(6, 21, { minRate: 256 * KiB, maxRate: 2 * MiB }) });
  swarms.push(swarm);
  const fastest = [...swarm.seeders].sort((a, b) => b.rate - a.rate)[0]!;
  const dl = spawn(process.execPath, [CLI, 'download', p.tf, '-o', join(p.dir, 'out'), '--port', '0', '--no-dht', '--json', '--quiet', '--timeout', '60'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  dl.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const pieces = Math.ceil(p.data.length / PL);
  let got = 0;
  const churn: Promise<unknown>[] = [];
  for await (const line of createInterface({ input: dl.stdout! })) {
    if (!line.includes('"event":"piece"')) continue;
    got++;
    if (got === Math.floor(pieces * 0.3)) churn.push(swarm.leave(fastest.name));
    if (got === Math.floor(pieces * 0.5)) churn.push(swarm.join({ rate: 2 * MiB, rttMs: 100 }));
  }
  const code = await new Promise<number | null>((r) => (dl.exitCode !== null ? r(dl.exitCode) : dl.once('exit', r)));
  await Promise.all(churn);
  assert.equal(code, 0, err);
  assert.ok((await readFile(join(p.dir, 'out', 'real.bin'))).equals(p.data), 'byte-identical');
  assert.doesNotMatch(err, /protocol violation/, err);
});

test('fetch-pieces | assemble from rate-limited libtorrent seeders behind relays: byte-identical, no violation', { skip, timeout: 120_000 }, async () => {
  const p = await prepare(8, 22);
  const swarm = await startRealSwarm({ torrentPath: p.tf, dataDir: p.full, trackerPort: p.trackerPort, seeders: spreadSeeders(4, 22, { minRate: 256 * KiB, maxRate: 2 * MiB }) });
  swarms.push(swarm);
  const peers = swarm.seeders.map((s) => `--peer 127.0.0.1:${s.relayPort}`).join(' ');
  const out = join(p.dir, 'out');
  const res = await runShell(`$TT fetch-pieces "${p.tf}" ${peers} --no-dht < /dev/null | $TT assemble "${p.tf}" -o "${out}" --quiet > /dev/null; echo "\${PIPESTATUS[*]}"`, { timeoutMs: 100_000 });
  assert.equal(res.stdout.toString().trim(), '0 0', res.stderr);
  assert.ok((await readFile(join(out, 'real.bin'))).equals(p.data));
  assert.doesNotMatch(res.stderr, /protocol violation/, res.stderr);
});

test('mixed swarm: a libtorrent leecher starting beside our download gets a real share of its data from us', { skip, timeout: 120_000 }, async (t) => {
  const p = await prepare(8, 23);
  // one seeder at 1 MiB/s: each leecher alone would take ~8 s; whatever one gets from the
  // other, it did not have to wait for
  const swarm = await startRealSwarm({ torrentPath: p.tf, dataDir: p.full, trackerPort: p.trackerPort, seeders: [{ rate: MiB, rttMs: 40 }] });
  swarms.push(swarm);
  const dl = spawn(process.execPath, [CLI, 'download', p.tf, '-o', join(p.dir, 'ours'), '--port', '0', '--no-dht', '--quiet', '--timeout', '60'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  dl.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const lt = await swarm.ltLeech(join(p.dir, 'lt'));
  // per-peer figures exist only while connected: sampled until both are done
  let fromUs = 0;
  let fromAll = 0;
  let ltDone = false;
  const ltFinished = lt.done(90_000).then(() => (ltDone = true));
  while (!ltDone) {
    const s = await swarm.lt.stats(lt.name).catch(() => null);
    if (s !== null) {
      // libtorrent names a peer by its BEP 10 "v" (ours: "torrent-tools 0.1.0"), else by its peer id
      const ours = s.peers.filter((x) => /^(torrent-tools|TK)/.test(x.client)).reduce((a, x) => a + x.total_download, 0);
      fromUs = Math.max(fromUs, ours);
      fromAll = Math.max(fromAll, s.total_payload_download);
    }
    await Promise.race([ltFinished, new Promise((r) => setTimeout(r, 200))]);
  }
  const code = await new Promise<number | null>((r) => (dl.exitCode !== null ? r(dl.exitCode) : dl.once('exit', r)));
  assert.equal(code, 0, err);
  assert.ok((await readFile(join(p.dir, 'ours', 'real.bin'))).equals(p.data), 'our download is byte-identical');
  assert.ok((await readFile(join(p.dir, 'lt', 'real.bin'))).equals(p.data), 'the libtorrent leecher too');
  const share = fromUs / p.data.length;
  t.diagnostic(`the libtorrent leecher got ${(fromUs / MiB).toFixed(2)} MiB of ${(p.data.length / MiB).toFixed(2)} from us (${(share * 100).toFixed(0)} %; ${(fromAll / MiB).toFixed(2)} MiB counted in all)`);
  assert.ok(share >= 0.15, `a real share from us: ${(share * 100).toFixed(1)} %`);
});
