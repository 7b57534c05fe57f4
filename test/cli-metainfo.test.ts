import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, runShell } from './helpers/cli.js';
import { SYSTEM_PYTHON, hasCommand, hasLibtorrent, skipUnless } from './helpers/interop.js';
import { bytes, rng } from './helpers/random.js';
import { tmpDir } from './helpers/torrent.js';

interface Info {
  infoHash: string;
  name: string;
  length: number;
  pieceLength: number;
  pieceCount: number;
  files: Array<{ path: string[]; length: number; offset: number; pad?: boolean }>;
  announce: string[][];
  private: boolean;
  pieces?: string[];
}

async function dataset(): Promise<string> {
  const r = rng(7);
  const dir = await tmpDir('tt-create-');
  const d = join(dir, 'data');
  await mkdir(join(d, 'sub', 'deeper'), { recursive: true });
  await writeFile(join(d, 'b.bin'), bytes(r, 100_000));
  await writeFile(join(d, 'a.txt'), 'hello\n');
  await writeFile(join(d, 'sub', 'c.bin'), bytes(r, 40_000));
  await writeFile(join(d, 'sub', 'deeper', 'e.bin'), bytes(r, 70_001));
  await writeFile(join(d, 'empty'), '');
  return d;
}

const infoOf = async (args: string[], input?: Buffer): Promise<Info> => {
  const r = await runCli(['info', ...args], { input });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString()) as Info;
};

test('create → info: deterministic files, lengths, tiers; byte-identical with --no-date', async () => {
  const d = await dataset();
  const args = ['create', d, '--no-date', '--announce', 'http://127.0.0.1:1/a,http://127.0.0.1:2/a', '--announce', 'udp://127.0.0.1:3', '--piece-length', '16384', '--private', '--comment', 'c'];
  const one = await runCli(args);
  const two = await runCli(args);
  assert.equal(one.code, 0, one.stderr);
  assert.ok(one.stdout.equals(two.stdout), 'same input, same bytes');
  const info = await infoOf(['-'], one.stdout);
  assert.deepEqual(info.files.map((f) => f.path.join('/')), ['a.txt', 'b.bin', 'empty', 'sub/c.bin', 'sub/deeper/e.bin']);
  assert.equal(info.length, 6 + 100_000 + 40_000 + 70_001);
  assert.equal(info.pieceCount, Math.ceil(info.length / 16384));
  assert.deepEqual(info.announce, [['http://127.0.0.1:1/a', 'http://127.0.0.1:2/a'], ['udp://127.0.0.1:3']]);
  assert.equal(info.private, true);
  const pieces = await infoOf(['--pieces', '-'], one.stdout);
  assert.equal(pieces.pieces!.length, info.pieceCount);
});

test('create --pad aligns every file on a piece boundary; symlinks are skipped with a warning', async () => {
  const d = await dataset();
  await symlink('/etc/passwd', join(d, 'link'));
  const r = await runCli(['create', d, '--no-date', '--pad', '--piece-length', '16384']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /link: skipped: symlinks are not followed/);
  const info = await infoOf(['-'], r.stdout);
  for (const f of info.files) if (!f.pad && f.length > 0) assert.equal(f.offset % 16384, 0, f.path.join('/'));
  assert.ok(info.files.some((f) => f.pad && f.path[0] === '.pad'));
  assert.ok(!info.files.some((f) => f.path.includes('link')));
});

test('create and info errors: exit codes and one-line messages', async () => {
  const none = await runCli(['create', '/nonexistent/x']);
  assert.equal(none.code, 1);
  assert.equal(none.stderr, 'torrent-tools create: /nonexistent/x: no such file or directory\n');
  const usage = await runCli(['create', '/tmp', '--piece-length', '1000']);
  assert.equal(usage.code, 2);
  const bad = await runCli(['info'], { input: Buffer.from('d4:infod4:name1:xee') });
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout.length, 0);
  assert.equal(bad.stderr, 'torrent-tools info: stdin: info.piece length: expected an integer\n');
});

test('info on a non-canonical torrent: one warning, raw-bytes hash; --strict refuses', async () => {
  const info = 'd6:lengthi5e4:name1:x12:piece lengthi4e6:pieces40:' + '\0'.repeat(40) + 'e';
  const unsorted = Buffer.from('d4:info' + info.replace('12:piece lengthi4e6:pieces40:' + '\0'.repeat(40), '6:pieces40:' + '\0'.repeat(40) + '12:piece lengthi4e') + 'e', 'latin1');
  const r = await runCli(['info', '-'], { input: unsorted });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.split('\n').filter(Boolean).length, 1);
  assert.match(r.stderr, /warning: stdin: byte \d+: dict keys out of order/);
  const { createHash } = await import('node:crypto');
  const raw = unsorted.subarray(7, unsorted.length - 1);
  assert.equal((JSON.parse(r.stdout.toString()) as Info).infoHash, createHash('sha1').update(raw).digest('hex'));
  const s = await runCli(['info', '--strict', '-'], { input: unsorted });
  assert.equal(s.code, 1);
  assert.match(s.stderr, /out of order/);
});

test('magnet: torrent → URI → fields', async () => {
  const d = await dataset();
  const t = await runCli(['create', d, '--no-date', '--announce', 'http://127.0.0.1:1/a']);
  const m = await runCli(['magnet', '-'], { input: t.stdout });
  assert.match(m.stdout.toString(), /^magnet:\?xt=urn:btih:[0-9a-f]{40}&dn=data&tr=http:\/\/127\.0\.0\.1:1\/a\n$/);
  const back = await runCli(['magnet', m.stdout.toString().trim()]);
  const info = await infoOf(['-'], t.stdout);
  assert.equal((JSON.parse(back.stdout.toString()) as { infoHash: string }).infoHash, info.infoHash);
  const bad = await runCli(['magnet', 'magnet:?xt=urn:btih:zz']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^torrent-tools magnet: magnet: parameter 1 \(xt\): the btih info hash must be/);
});

test('interop: mktorrent and python-libtorrent read our torrents, and we read theirs, with the same info hash',
  { skip: skipUnless(hasCommand('mktorrent') && hasLibtorrent(), 'mktorrent and python3-libtorrent') }, async () => {
    const d = await dataset();
    const dir = join(d, '..');
    // ours → libtorrent
    const ours = join(dir, 'ours.torrent');
    assert.equal((await runCli(['create', d, '-o', ours, '--no-date', '--piece-length', '32768'])).code, 0);
    const lt = (f: string): { hash: string; files: string[] } => {
      const py = `import sys, json, libtorrent as lt\nti = lt.torrent_info(sys.argv[1])\nfs = ti.files()\nprint(json.dumps({"hash": str(ti.info_hashes().v1), "files": [fs.file_path(i) for i in range(fs.num_files()) if not fs.file_flags(i) & lt.file_storage.flag_pad_file]}))`;
      const r = spawnSync(SYSTEM_PYTHON, ['-c', py, f], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { hash: string; files: string[] };
    };
    const ourInfo = await infoOf([ours]);
    const ltOurs = lt(ours);
    assert.equal(ltOurs.hash, ourInfo.infoHash);
    assert.deepEqual(ltOurs.files.sort(), ourInfo.files.map((f) => ['data', ...f.path].join('/')).sort());
    // mktorrent → ours and libtorrent
    const mk = join(dir, 'mk.torrent');
    const r = spawnSync('mktorrent', ['-l', '15', '-a', 'http://127.0.0.1:1/a', '-o', mk, d], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const mkInfo = await infoOf([mk]);
    assert.equal(lt(mk).hash, mkInfo.infoHash);
    assert.equal(mkInfo.length, ourInfo.length);
    // libtorrent → ours
    const ltf = join(dir, 'lt.torrent');
    const py = `import sys, libtorrent as lt\nfs = lt.file_storage()\nlt.add_files(fs, sys.argv[1])\nt = lt.create_torrent(fs, 16384, flags=lt.create_torrent.v1_only)\nlt.set_piece_hashes(t, sys.argv[2])\nopen(sys.argv[3], 'wb').write(lt.bencode(t.generate()))`;
    const c = spawnSync(SYSTEM_PYTHON, ['-c', py, d, dir, ltf], { encoding: 'utf8' });
    assert.equal(c.status, 0, c.stderr);
    const ltInfo = await infoOf([ltf]);
    assert.equal(ltInfo.infoHash, lt(ltf).hash);
    assert.equal(ltInfo.length, ourInfo.length);
    // the same data: verify agrees with every one of them
    for (const f of [ours, mk, ltf]) assert.equal((await runShell(`$TT verify "${f}" "${dir}" --quiet > /dev/null`)).code, 0, f);
  });

test('a file that is no torrent says what it is, and every file error names its path', async () => {
  const dir = await tmpDir('tt-notorrent-');
  const cases: Array<[string, Buffer | null, RegExp]> = [
    ['page.torrent', Buffer.from('<!DOCTYPE html>\n<html><body>Login</body></html>'), /page\.torrent: not a torrent file: it is an HTML page/],
    ['doc.torrent', Buffer.from('%PDF-1.7\n...'), /doc\.torrent: not a torrent file: it is a PDF document/],
    ['empty.torrent', Buffer.alloc(0), /empty\.torrent: not a torrent file: it is empty/],
    ['link.txt', Buffer.from('magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567\n'), /link\.txt: not a torrent file: it holds a magnet link: give the link itself as the argument/],
    ['folder', null, /folder: is a directory/],
  ];
  for (const [name, content, re] of cases) {
    const p = join(dir, name);
    if (content === null) await mkdir(p);
    else await writeFile(p, content);
    const r = await runCli(['info', p]);
    assert.equal(r.code, 1, name);
    assert.match(r.stderr, re, name);
  }
  const bd = await runCli(['bdecode', join(dir, 'folder')]);
  assert.equal(bd.stderr, `torrent-tools bdecode: ${join(dir, 'folder')}: is a directory\n`);
});

test('--piece-length takes binary units (256K, 4M); other text is a usage error', async () => {
  const dir = await tmpDir('tt-units-');
  await writeFile(join(dir, 'f.bin'), Buffer.alloc(1_000_000, 3));
  for (const [arg, want] of [['256K', 262144], ['1M', 1048576], ['16KiB', 16384], ['65536', 65536]] as const) {
    const r = await runCli(['create', join(dir, 'f.bin'), '-o', join(dir, `${arg}.torrent`), '--piece-length', arg, '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    const info = await runCli(['info', join(dir, `${arg}.torrent`)]);
    assert.equal((JSON.parse(info.stdout.toString()) as { pieceLength: number }).pieceLength, want, arg);
  }
  const bad = await runCli(['create', join(dir, 'f.bin'), '-o', join(dir, 'x.torrent'), '--piece-length', '3X']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--piece-length: expected a size in bytes like 262144, 256K or 4M, got "3X"/);
});
