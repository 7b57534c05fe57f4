/**
 * Values whose JSON is longer than a JS string can be (V8: 2^29−24 = 536,870,888 characters),
 * through the real CLI. The inputs (~100-270 MB) are built in a temporary directory and
 * removed; the output is compared byte for byte with what it must be as it streams, never held.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { constants } from 'node:buffer';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CLI, runShell } from './helpers/cli.js';

const MIB = 1024 * 1024;
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** `unit` repeated over `n` bytes. */
interface Repeat {
  unit: Buffer;
  n: number;
}
type Part = string | Repeat;

function* bytesOf(parts: Part[]): Generator<Buffer> {
  for (const p of parts) {
    if (typeof p === 'string') yield Buffer.from(p, 'latin1');
    else for (let left = p.n; left > 0; left -= p.unit.length) yield left >= p.unit.length ? p.unit : p.unit.subarray(0, left);
  }
}

function lengthOf(parts: Part[]): number {
  return parts.reduce((n, p) => n + (typeof p === 'string' ? p.length : p.n), 0);
}

/** A file of `parts`, written a part (of at most a unit) at a time. */
async function bigFile(parts: Part[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tt-big-'));
  dirs.push(dir);
  const f = join(dir, 'in.bin');
  const fh = await open(f, 'w');
  try {
    for (const b of bytesOf(parts)) await fh.write(b);
  } finally {
    await fh.close();
  }
  return f;
}

/**
 * Runs the CLI and compares its stdout, as it comes, with `want`: the length of the output and
 * where it first differs (null when it does not).
 */
function runCompared(args: string[], want: Part[]): Promise<{ code: number | null; stderr: string; length: number; differsAt: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const expected = bytesOf(want);
    let exp: Buffer = Buffer.alloc(0);
    let expAt = 0;
    let length = 0;
    let differsAt: number | null = null;
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      for (let i = 0; i < c.length && differsAt === null; ) {
        if (expAt === exp.length) {
          const next = expected.next();
          if (next.done) {
            differsAt = length + i;
            break;
          }
          exp = next.value;
          expAt = 0;
        }
        const n = Math.min(c.length - i, exp.length - expAt);
        if (!c.subarray(i, i + n).equals(exp.subarray(expAt, expAt + n))) {
          let k = 0;
          while (c[i + k] === exp[expAt + k]) k++;
          differsAt = length + i + k;
        }
        i += n;
        expAt += n;
      }
      length += c.length;
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, length, differsAt });
    });
  });
}

// not UTF-8 (0xff in each MiB), and two patterns, so that a piece out of place would show
const PATTERN_A = Buffer.from(Array.from({ length: MIB }, (_, i) => (i * 131 + 7) & 0xff));
const PATTERN_B = Buffer.from(Array.from({ length: MIB }, (_, i) => (i * 29 + 0xf0) & 0xff));

test('bdecode writes a value whose JSON is longer than a JS string can be: two 134.5 MB non-UTF-8 strings', async () => {
  const n = 134_500_000;
  const f = await bigFile([`l${n}:`, { unit: PATTERN_A, n }, `${n}:`, { unit: PATTERN_B, n }, 'e']);
  const hexA = Buffer.from(PATTERN_A.toString('hex'), 'latin1');
  const hexB = Buffer.from(PATTERN_B.toString('hex'), 'latin1');
  const want = ['[{"$hex":"', { unit: hexA, n: 2 * n }, '"},{"$hex":"', { unit: hexB, n: 2 * n }, '"}]\n'];
  assert.ok(lengthOf(want) > constants.MAX_STRING_LENGTH + 1, 'the line is longer than a string can be');
  const r = await runCompared(['bdecode', '--max-string', String(n), '--max-value', String(2 * n + 100), f], want);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  assert.equal(r.differsAt, null);
  assert.equal(r.length, lengthOf(want));
});

// with the default limits: 89.5 MB of control characters, each written as 6 (`\u0001`)
const CONTROLS = 89_500_000;
let controlsFile: Promise<string> | undefined;
const controls = (): Promise<string> => (controlsFile ??= bigFile([`d3:key${CONTROLS}:`, { unit: Buffer.alloc(MIB, 1), n: CONTROLS }, 'e']));

test('bdecode --pretty writes 89.5 MB of control characters, 537 M characters of JSON (default limits)', async () => {
  const want = ['{\n  "key": "', { unit: Buffer.from('\\u0001'.repeat(MIB), 'latin1'), n: 6 * CONTROLS }, '"\n}\n'];
  assert.ok(lengthOf(want) > constants.MAX_STRING_LENGTH + 1, 'the text is longer than a string can be');
  const r = await runCompared(['bdecode', '--pretty', await controls()], want);
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  assert.equal(r.differsAt, null);
  assert.equal(r.length, lengthOf(want));
});

test('bencode refuses a line longer than a string can be (bdecode\'s line above), in one line naming it and the limit', async () => {
  const r = await runShell('$TT bdecode "$IN" | $TT bencode --max-line 2147483647 > /dev/null; echo "status=${PIPESTATUS[*]}" >&2', { env: { IN: await controls() } });
  assert.equal(r.stderr, `torrent-tools bencode: stdin:1: line longer than ${constants.MAX_STRING_LENGTH} characters, the most one JSON text can have (the longest string V8 can make)\nstatus=0 1\n`);
});

test('an error about a key megabytes long quotes its start and its length, never the whole key', { timeout: 60_000 }, async () => {
  // out of order after "b": the message used to quote all 90 MB, escaped (six characters a byte)
  const f = await bigFile(['d1:bi1e90000000:', { unit: Buffer.alloc(MIB, 1), n: 90_000_000 }, 'i1ee']);
  const r = await runShell(`$TT bdecode "${f}"`, { timeoutMs: 60_000 });
  assert.equal(r.code, 1, r.stderr.slice(0, 300));
  assert.match(r.stderr, /^torrent-tools bdecode: .*in\.bin: byte 7: dict key "(\\u0001){100}"… \(90000000 characters\) is out of order \(keys must be sorted\)\n$/);
});
