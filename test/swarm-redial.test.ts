/** Peers come back: a seed that restarts mid-download, a peer dropped once for a violation. */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FetchStream } from '../src/streams/fetch.js';
import type { PieceFrame } from '../src/streams/piece-frames.js';
import { runShell } from './helpers/cli.js';
import { freeTcpPort } from './helpers/ports.js';
import { bytes, rng } from './helpers/random.js';
import { startScriptedSeeder, type ScriptedSeeder } from './helpers/scripted-seeder.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles } from './helpers/torrent.js';

const PL = 64 * 1024;
const data = bytes(rng(11), 200 * PL + 77);
const { torrent, content, bytes: tb } = makeTorrent('redial.bin', [{ path: ['redial.bin'], data }], PL, true);
const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup) await c();
});

test('a seed that restarts on the same port mid-download is dialled again and the download completes', async () => {
  const dir = await tmpDir('tt-redial-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  await writeFiles(join(dir, 'full'), 'redial.bin', [{ path: ['redial.bin'], data }], true);
  const port = await freeTcpPort();
  // the first seed serves 60 blocks and stops answering; we kill it and start a new one
  const args = ['--skip-verify', '--no-announce'];
  let seed: SeedProc = await startSeed(tf, join(dir, 'full'), { args, port, env: { TORRENT_TOOLS_FAULT: 'stall:60' } });
  cleanup.push(() => seed.stop());
  const out = join(dir, 'out');
  const run = runShell(`$TT fetch-pieces "${tf}" --peer 127.0.0.1:${port} --quiet --no-dht < /dev/null | $TT assemble "${tf}" -o "${out}" > "${dir}/events"; echo "\${PIPESTATUS[*]}"`, { timeoutMs: 90_000 });
  await new Promise((r) => setTimeout(r, 1500));
  await seed.stop();
  await new Promise((r) => setTimeout(r, 1000));
  seed = await startSeed(tf, join(dir, 'full'), { args, port });
  const res = await run;
  assert.equal(res.stdout.toString().trim(), '0 0', res.stderr);
  assert.ok((await readFile(join(out, 'redial.bin'))).equals(data));
  const before = (await readFile(`${dir}/events`, 'utf8')).split('\n').filter((l) => l.includes('"piece"')).length;
  assert.equal(before, torrent.pieceCount);
});

test('a peer dropped for a protocol violation is dialled again (only a ban is final)', async () => {
  let connections = 0;
  const seeder: ScriptedSeeder = await startScriptedSeeder({
    torrent, content, fast: true,
    onMessage: (ctx, m) => {
      if (m.type === 'interested') {
        connections++;
        ctx.send({ type: 'unchoke' });
      }
      if (m.type !== 'request') return;
      const r = ctx.requests.at(-1)!;
      // the first connection answers its first request off the block grid: a violation
      ctx.send(connections === 1 && ctx.requests.length === 1 ? ctx.piece({ ...r, begin: r.begin + 1 }) : ctx.piece(r));
    },
  });
  cleanup.push(() => seeder.close());
  const f = new FetchStream(torrent, { stallTimeoutMs: 20_000 });
  const logs: string[] = [];
  f.swarm.on('log', (l) => logs.push(l));
  f.write({ ip: '127.0.0.1', port: seeder.port, source: 'cli' });
  const got = Buffer.alloc(torrent.length);
  for await (const p of f as AsyncIterable<PieceFrame>) {
    p.piece.bytes.copy(got, p.index * PL);
    p.piece.release();
  }
  assert.ok(got.equals(content));
  assert.match(logs.join('\n'), /protocol violation/);
  assert.ok(seeder.connections.length >= 2, 'dialled again after the violation');
});
