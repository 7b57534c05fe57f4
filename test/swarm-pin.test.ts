/**
 * BEP 52 pinning: a v2 piece made of blocks from a liar and an honest seed fails its merkle
 * check; the leaf hashes a peer proves name the liar's blocks, so the liar alone is banned and
 * only its blocks are fetched again.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseTorrent } from '../src/metainfo/torrent.js';
import { runCli } from './helpers/cli.js';
import { hasLibtorrent, skipUnless } from './helpers/interop.js';
import { contentImage, ltTorrent } from './helpers/lt-v2.js';
import { bytes, rng } from './helpers/random.js';
import { startScriptedSeeder } from './helpers/scripted-seeder.js';
import { startSeed } from './helpers/swarm.js';
import { tmpDir } from './helpers/torrent.js';

const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup) await c();
});

test('download -v: a liar\'s bad blocks in pieces shared with an honest seed are pinned to it by leaf hashes (v2)', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent (makes the v2 torrent)') }, async () => {
  const PL = 64 * 1024;
  const data = bytes(rng(26), 40 * PL - 5000);
  const dir = await tmpDir('tt-pin-');
  const tf = join(dir, 'x.torrent');
  const files = [{ path: ['pin.bin'], data }];
  const torrent = parseTorrent(await ltTorrent(join(dir, 'full'), 'pin.bin', files, 'v2', PL, tf, true));
  assert.equal(torrent.version, 2);
  // the liar sends its even blocks wrong and rejects the odd ones, which the honest seed
  // then sends: every piece it starts has two senders; it will not give leaf hashes either
  const liar = await startScriptedSeeder({
    torrent, content: contentImage(torrent, files, true), fast: true,
    onMessage: (ctx, m) => {
      if (m.type === 'interested') ctx.send({ type: 'unchoke' });
      if (m.type === 'hash-request') ctx.send({ ...m, type: 'hash-reject' });
      if (m.type !== 'request') return;
      if ((m.begin / 16384) % 2 === 1) ctx.send({ type: 'reject', index: m.index, begin: m.begin, length: m.length });
      else {
        const p = ctx.piece(m);
        if (p.type === 'piece') ctx.send({ ...p, block: Buffer.from(p.block).fill(0x5a) });
      }
    },
  });
  cleanup.push(() => liar.close());
  const honest = await startSeed(tf, join(dir, 'full'));
  cleanup.push(() => honest.stop());
  const out = join(dir, 'out');
  // --no-utp: the scripted liar speaks TCP only; dialled over uTP first it would be reached 3 s late
  const r = await runCli(['download', tf, '-o', out, '--peer', `127.0.0.1:${liar.port}`, '--peer', `127.0.0.1:${honest.port}`, '--no-announce', '--no-dht', '--no-utp', '-v'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await readFile(join(out, 'pin.bin'))).equals(data), 'the file is the torrent');
  const lines = r.stderr.split('\n');
  const pinned = lines.filter((l) => /does not match its leaf hash/.test(l));
  assert.ok(pinned.length > 0, r.stderr);
  for (const l of pinned) {
    assert.match(l, new RegExp(`block \\d+ from 127\\.0\\.0\\.1:${liar.port} does not match its leaf hash \\(proved by 127\\.0\\.0\\.1:${honest.port}\\)`));
    assert.match(l, /block (0|2) /, 'only the liar\'s even blocks');
  }
  const bans = lines.filter((l) => /\bbanned\b/.test(l));
  assert.equal(bans.length, 1, r.stderr);
  assert.match(bans[0]!, new RegExp(`127\\.0\\.0\\.1:${liar.port}: banned`));
  assert.ok(lines.some((l) => /failed its hash check .*asking a peer for its leaf hashes/.test(l)), r.stderr);
});
