/** A peer that sends data failing the hash check is banned, and the log says so once. */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { PieceFrameDecoder, type PieceFrame } from '../src/streams/piece-frames.js';
import { runCli } from './helpers/cli.js';
import { bytes, rng } from './helpers/random.js';
import { startScriptedSeeder, type ScriptedSeeder } from './helpers/scripted-seeder.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles } from './helpers/torrent.js';

const PL = 16 * 1024;
const data = bytes(rng(23), 160 * PL + 321);
const { torrent, content, bytes: tb } = makeTorrent('ban.bin', [{ path: ['ban.bin'], data }], PL, true);
const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup) await c();
});

/**
 * A liar: it has every piece, unchokes at once and answers each request promptly with the
 * right length and the wrong bytes, so many of its pieces are in flight when the first fails.
 */
async function startLiar(): Promise<ScriptedSeeder> {
  const liar = await startScriptedSeeder({
    torrent, content, fast: true,
    onMessage: (ctx, m) => {
      if (m.type === 'interested') ctx.send({ type: 'unchoke' });
      if (m.type !== 'request') return;
      const p = ctx.piece(m);
      if (p.type === 'piece') ctx.send({ ...p, block: Buffer.from(p.block).fill(0x5a) });
    },
  });
  cleanup.push(() => liar.close());
  return liar;
}

const banned = (stderr: string, port: number): string[] => stderr.split('\n').filter((l) => l.includes(`127.0.0.1:${port}`) && /\bbanned\b/.test(l));

for (const cmd of ['fetch-pieces', 'download'] as const) {
  test(`${cmd} -v: a lying peer with many pieces in flight gets one 'banned' line; the honest seed completes the download`, async () => {
    const dir = await tmpDir('tt-ban-');
    const tf = join(dir, 'x.torrent');
    await writeFile(tf, tb);
    await writeFiles(join(dir, 'full'), 'ban.bin', [{ path: ['ban.bin'], data }], true);
    const liar = await startLiar();
    const honest: SeedProc = await startSeed(tf, join(dir, 'full'), { args: ['--skip-verify', '--no-announce'] });
    cleanup.push(() => honest.stop());
    const peers = [liar, honest].flatMap((p) => ['--peer', `127.0.0.1:${p.port}`]);
    const out = join(dir, 'out');
    // --no-utp: the scripted liar speaks TCP only; dialled over uTP first it would be reached 3 s late
    const r = await runCli(
      cmd === 'fetch-pieces' ? ['fetch-pieces', tf, ...peers, '-v', '--no-dht', '--no-utp'] : ['download', tf, '-o', out, ...peers, '--no-announce', '--no-dht', '--no-utp', '-v'],
      { timeoutMs: 60_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    const failed = r.stderr.split('\n').filter((l) => /failed its hash check/.test(l)).length;
    const lines = banned(r.stderr, liar.port);
    assert.equal(lines.length, 1, `${failed} pieces failed their hash check; the ban was said ${lines.length} times:\n${lines.join('\n')}`);
    assert.match(lines[0]!, /banned: sent data that failed the hash check/);
    assert.deepEqual(banned(r.stderr, honest.port), []);
    if (cmd === 'download') {
      assert.ok((await readFile(join(out, 'ban.bin'))).equals(data), 'the file is the torrent');
    } else {
      const got = Buffer.alloc(torrent.length);
      let n = 0;
      for await (const f of Readable.from([r.stdout]).pipe(new PieceFrameDecoder({ maxPieceLength: PL, pieceCount: torrent.pieceCount }))) {
        const frame = f as PieceFrame;
        frame.piece.bytes.copy(got, frame.index * PL);
        frame.piece.release();
        n++;
      }
      assert.equal(n, torrent.pieceCount);
      assert.ok(got.equals(content), 'the piece stream is the torrent');
    }
  });
}
