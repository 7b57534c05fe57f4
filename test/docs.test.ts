/** Docs are part of each feature: every command has --help, a lint-clean man page and a README section. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { optionsOf } from '../src/cli/completion.js';
import type { Command } from '../src/cli/io.js';
import { commands } from '../src/commands/index.js';
import { hasCommand, skipUnless } from './helpers/interop.js';

const root = new URL('../../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { man: string[]; bin: Record<string, string>; version: string };
const readme = readFileSync(new URL('README.md', root), 'utf8');

test('every command has a registered man page and a README section with a piped example', async () => {
  for (const entry of commands) {
    const c = await entry.load();
    assert.equal(c.name, entry.name, `commands/index.ts lists ${entry.name} but loads ${c.name}`);
    const page = `man/torrent-tools-${c.name}.1`;
    assert.ok(pkg.man.includes(page), `${page} is not in package.json "man"`);
    const heading = new RegExp(`^## ${c.name}\\b[^\\n]*\\n([\\s\\S]*?)(?=^## |$(?![\\s\\S]))`, 'm').exec(readme);
    assert.ok(heading, `README.md has no "## ${c.name}" section`);
    assert.match(heading[1]!, /torrent-tools [^\n]*\|/, `README section "${c.name}" has no piped example`);
    assert.ok(c.help.startsWith(`usage: torrent-tools ${c.name}`), `${c.name} --help starts with its usage`);
  }
  for (const page of ['man/torrent-tools.1', 'man/torrent-tools-formats.7']) assert.ok(pkg.man.includes(page), page);
});

test('man pages are lint-clean under groff -man -ww', { skip: skipUnless(hasCommand('groff'), 'groff') }, () => {
  for (const page of pkg.man) {
    assert.ok(existsSync(new URL(page, root)), `${page} is missing`);
    const r = spawnSync('groff', ['-man', '-ww', '-z', new URL(page, root).pathname], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${page}: groff failed`);
    assert.equal(r.stderr, '', `${page}: ${r.stderr}`);
  }
});

test('the top-level man page lists every command', () => {
  const top = readFileSync(new URL('man/torrent-tools.1', root), 'utf8');
  for (const c of commands) assert.match(top, new RegExp(`^\\.B ${c.name}$`, 'm'), `man/torrent-tools.1 does not list ${c.name}`);
});

test('the bin runs as an executable, with the node flags of its first line', () => {
  const bin = fileURLToPath(new URL(pkg.bin['torrent-tools'], root));
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), pkg.version);
  assert.match(readFileSync(bin, 'utf8').split('\n')[0]!, /^#!\/usr\/bin\/env -S node --max-semi-space-size=\d+$/);
});

test('the top-level man page names every command page in SEE ALSO and shows a download', () => {
  const top = readFileSync(new URL('man/torrent-tools.1', root), 'utf8');
  for (const c of commands) assert.match(top, new RegExp(`^\\.BR torrent-tools-${c.name} \\(1\\)`, 'm'), `SEE ALSO lacks torrent-tools-${c.name}(1)`);
  assert.match(top, /^torrent-tools download x\.torrent \\-o out\/$/m);
});

test('completion: bash completes commands and each command\'s options from its --help', { skip: skipUnless(hasCommand('bash'), 'bash') }, () => {
  const script = `eval "$("${process.execPath}" "${fileURLToPath(new URL('dist/src/cli.js', root))}" completion bash)"
COMP_WORDS=(torrent-tools downl); COMP_CWORD=1; _torrent_tools; echo "\${COMPREPLY[*]}"
COMP_WORDS=(torrent-tools download --out); COMP_CWORD=2; _torrent_tools; echo "\${COMPREPLY[*]}"
COMP_WORDS=(torrent-tools announce --dow); COMP_CWORD=2; _torrent_tools; echo "\${COMPREPLY[*]}"`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), ['download', '--output', '--downloaded']);
  for (const shell of ['zsh', 'fish']) {
    const s = spawnSync(process.execPath, [fileURLToPath(new URL('dist/src/cli.js', root)), 'completion', shell], { encoding: 'utf8' });
    assert.equal(s.status, 0, s.stderr);
    assert.match(s.stdout, /fetch-pieces/);
  }
});

test('every --help fits an 80-column terminal, its words and option lines unchanged', async () => {
  const cli = fileURLToPath(new URL('dist/src/cli.js', root));
  // the option names completion reads from a help text (sorted: a set)
  const optionNames = (c: Command, help: string): string[] => {
    const o = optionsOf({ ...c, help });
    return [...o.long, ...o.short].sort();
  };
  const words = (text: string): string[] => text.split(/[\s\\]+/).filter((w) => w !== '');
  const runs: Array<{ name: string; args: string[]; c?: Command }> = [{ name: 'torrent-tools', args: ['--help'] }];
  for (const entry of commands) runs.push({ name: entry.name, args: [entry.name, '--help'], c: await entry.load() });
  for (const { name, args, c } of runs) {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${name} --help: ${r.stderr}`);
    const wide = r.stdout.split('\n').filter((l) => [...l].length > 80);
    assert.deepEqual(wide, [], `${name} --help has lines over 80 columns`);
    if (c !== undefined) {
      assert.deepEqual(optionNames(c, r.stdout), optionNames(c, c.help), `${name} --help: the options completion reads changed`);
      assert.deepEqual(words(r.stdout), words(c.help), `${name} --help: wording changed`);
    }
  }
});
