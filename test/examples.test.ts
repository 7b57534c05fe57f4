/**
 * The library composes as the README says: the two example programs (examples/, compiled by
 * the build against the package as a user's program would be, under strict,
 * exactOptionalPropertyTypes and noUncheckedIndexedAccess) download from our seed, and the
 * README's library section shows exactly their code.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bytes, rng } from './helpers/random.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrentBytes, tmpDir, writeFiles } from './helpers/torrent.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const seeds: SeedProc[] = [];
after(async () => {
  for (const s of seeds) await s.stop();
});

const files = [{ path: ['a.bin'], data: bytes(rng(31), 300_000) }, { path: ['sub', 'b.bin'], data: bytes(rng(32), 50_000) }];

function run(script: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [join(ROOT, 'dist', 'examples', script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const kill = setTimeout(() => c.kill('SIGKILL'), 60_000);
    c.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, out, err });
    });
  });
}

for (const [script, expect] of [['pipeline.js', /^complete: 11 pieces, 350000 bytes$/m], ['download.js', /^lib: 11 pieces written, 0 already there$/m]] as const) {
  test(`examples/${script.replace('.js', '.ts')} downloads from our seed, byte-identical`, async () => {
    const dir = await tmpDir('tt-example-');
    const tf = join(dir, 'x.torrent');
    await writeFile(tf, makeTorrentBytes('lib', files, 32768));
    await writeFiles(join(dir, 'full'), 'lib', files);
    const seed = await startSeed(tf, join(dir, 'full'));
    seeds.push(seed);
    const r = await run(script, [tf, join(dir, 'out'), `127.0.0.1:${seed.port}`]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, expect);
    for (const f of files) assert.deepEqual(await readFile(join(dir, 'out', 'lib', ...f.path)), f.data);
  });
}

test("the README's library section is the examples' code, word for word", async () => {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  for (const name of ['pipeline.ts', 'download.ts']) {
    const code = await readFile(join(ROOT, 'examples', name), 'utf8');
    assert.ok(blocks.includes(code), `README.md shows examples/${name} as a ts block`);
  }
});
