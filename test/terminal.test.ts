/**
 * The terminal a new user sees: `download` under tmux at 80x30 and at 60 columns, from our
 * seed with a dead peer beside it. The screen must show one progress line (no wrapped or
 * stacked frames), no log text glued to it, the final state and the summary; the dead peer is
 * counted, not printed line after line. Skipped without tmux (.ci/run installs it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CLI } from './helpers/cli.js';
import { hasCommand, skipUnless } from './helpers/interop.js';
import { bytes, rng } from './helpers/random.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrentBytes, tmpDir, writeFiles } from './helpers/torrent.js';

const seeds: SeedProc[] = [];
const sessions: string[] = [];
after(async () => {
  for (const s of sessions) spawnSync('tmux', ['kill-session', '-t', s]);
  for (const s of seeds) await s.stop();
});

const tmux = (...args: string[]): string => spawnSync('tmux', args, { encoding: 'utf8' }).stdout;

for (const width of [80, 60]) {
  test(`download in a ${width}-column terminal: one progress line, the final state, a summary, no noise`, { skip: skipUnless(hasCommand('tmux'), 'tmux'), timeout: 60_000 }, async () => {
    const dir = await tmpDir('tt-term-');
    const data = bytes(rng(width), 24 * 1024 * 1024);
    const tf = join(dir, 'x.torrent');
    await writeFile(tf, makeTorrentBytes('screen.bin', [{ path: ['screen.bin'], data }], 65536, [], true));
    await writeFiles(join(dir, 'full'), 'screen.bin', [{ path: ['screen.bin'], data }], true);
    const seed = await startSeed(tf, join(dir, 'full'));
    seeds.push(seed);
    const name = `tt-${width}-${process.pid}`;
    sessions.push(name);
    // a dead peer (nothing listens on port 1) beside the seed; the shell waits so that the pane
    // stays. TCP only: a uTP dial to a dead port waits 3 s for nothing, after the download is done
    const cmd = `TORRENT_TOOLS_DHT_BOOTSTRAP= "${process.execPath}" "${CLI}" download "${tf}" -o "${join(dir, 'out')}" --peer 127.0.0.1:${seed.port} --peer 127.0.0.1:1 --no-dht --no-utp --port 0; echo "EXIT $?"; sleep 60`;
    spawnSync('tmux', ['new-session', '-d', '-s', name, '-x', String(width), '-y', '30', cmd]);
    let screen = '';
    for (let i = 0; i < 200 && !/EXIT \d+/.test(screen); i++) {
      await new Promise((r) => setTimeout(r, 100));
      screen = tmux('capture-pane', '-p', '-J', '-t', name); // -J: a wrapped line comes back whole
    }
    const lines = screen.split('\n').filter((l) => l.trim() !== '');
    assert.match(screen, /EXIT 0/, screen);
    const bars = lines.filter((l) => /^download /.test(l));
    assert.equal(bars.length, 1, `one progress line:\n${screen}`);
    assert.match(bars[0]!, /^download 100% .*384\/384/, `its final state:\n${screen}`);
    assert.ok(bars[0]!.length <= width, `the line fits (a wrapped one would leave frames behind):\n${screen}`);
    assert.match(screen, /^screen\.bin: 24\.0 MiB in \d+:\d\d, [\d.]+ [KMG]?i?B\/s, 1 peer, \d+ failed$/m, `the summary:\n${screen}`);
    assert.doesNotMatch(screen, /127\.0\.0\.1:1: ECONNREFUSED/, 'the dead peer is counted, not printed');
    // the torrent's dead tracker is said once; then only the line, the summary and the shell's EXIT
    assert.equal(lines.filter((l) => /announce: ECONNREFUSED/.test(l)).length, 1, screen);
    assert.equal(lines.length, 4, screen);
  });
}
