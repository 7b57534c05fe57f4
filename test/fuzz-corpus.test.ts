/**
 * The fuzz corpus as regression tests: every file in test/fuzz-corpus/<target>/ (seeds, and
 * inputs `npm run fuzz` found failing) runs through its target as the fuzzer runs it, and must
 * be accepted or refused with the decoder's documented error, within the time limit.
 * CONTRIBUTING.md "Fuzzing" says how the corpus grows.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { replay } from '../fuzz/replay.js';
import { TARGETS } from '../fuzz/targets.js';

const CORPUS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fuzz-corpus');
const LIMIT_MS = 1000;

/**
 * Inputs that still fail because the code they break is being fixed in another change (not
 * this file's to fix): replayed as `todo` tests, so they show without failing the suite. Take
 * an entry out when its fix lands: the test then guards the fix.
 */
export const KNOWN_FAILURES: Readonly<Record<string, string>> = {};

for (const t of TARGETS) {
  let files: string[] = [];
  try {
    files = readdirSync(join(CORPUS, t.name)).filter((f) => !f.startsWith('.') && f !== 'README.md').sort();
  } catch {
    // no corpus yet for this target
  }
  test(`fuzz corpus: ${t.name} has seed inputs`, () => {
    assert.ok(files.some((f) => f.startsWith('seed-')), `test/fuzz-corpus/${t.name}/ has no seed-* file (npm run fuzz -- --write-seeds)`);
  });
  for (const f of files) {
    const key = `${t.name}/${f}`;
    const known = KNOWN_FAILURES[key];
    test(`fuzz corpus: ${key}`, known === undefined ? {} : { todo: known }, async () => {
      const input = readFileSync(join(CORPUS, t.name, f));
      let r = await replay(t, input, LIMIT_MS);
      // a loaded machine can stall a run for a second: slow is slow twice
      if (r.failure === null && r.ms >= LIMIT_MS) r = await replay(t, input, LIMIT_MS);
      if (r.failure !== null) {
        const e = r.failure;
        assert.fail(`${key}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      }
      assert.ok(r.ms < LIMIT_MS, `${key}: took ${Math.round(r.ms)} ms (limit ${LIMIT_MS} ms)`);
    });
  }
}

test('fuzz corpus: every known failure names a file that exists', () => {
  for (const key of Object.keys(KNOWN_FAILURES)) {
    const [dir, file] = key.split('/') as [string, string];
    assert.ok(readdirSync(join(CORPUS, dir)).includes(file), `KNOWN_FAILURES lists ${key}, which is not in test/fuzz-corpus/`);
  }
});
