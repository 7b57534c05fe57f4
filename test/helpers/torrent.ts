/** Test data: real .torrent files built byte by byte from file contents. */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { encode, type BValue } from '../../src/bencode/index.js';
import { parseTorrent } from '../../src/metainfo/torrent.js';
import type { Torrent } from '../../src/metainfo/torrent.js';

export interface TestFile {
  path: string[];
  data: Buffer;
  pad?: boolean;
}

/** A v1 torrent for `files` (single-file when `name` is given with one unnamed file). */
export function makeTorrentBytes(name: string, files: TestFile[], pieceLength: number, extra: Array<[string, BValue]> = [], single = false, infoExtra: Array<[string, BValue]> = []): Buffer {
  const all = Buffer.concat(files.map((f) => f.data));
  const hashes: Buffer[] = [];
  for (let o = 0; o < all.length; o += pieceLength) hashes.push(createHash('sha1').update(all.subarray(o, o + pieceLength)).digest());
  const info = new Map<string, BValue>();
  if (single) info.set('length', all.length);
  else {
    info.set('files', files.map((f) => {
      const m = new Map<string, BValue>();
      if (f.pad) m.set('attr', Buffer.from('p'));
      m.set('length', f.data.length);
      m.set('path', f.path.map((c) => Buffer.from(c)));
      return m;
    }));
  }
  info.set('name', Buffer.from(name));
  info.set('piece length', pieceLength);
  info.set('pieces', Buffer.concat(hashes));
  for (const [k, v] of infoExtra) info.set(k, v);
  const top = new Map<string, BValue>([['announce', Buffer.from('http://127.0.0.1:1/announce')], ...extra, ['info', info]]);
  return encode(new Map([...top].sort((a, b) => (a[0] < b[0] ? -1 : 1))));
}

export function makeTorrent(name: string, files: TestFile[], pieceLength: number, single = false): { torrent: Torrent; bytes: Buffer; content: Buffer } {
  const bytes = makeTorrentBytes(name, files, pieceLength, [], single);
  return { torrent: parseTorrent(bytes), bytes, content: Buffer.concat(files.map((f) => f.data)) };
}

export async function tmpDir(prefix = 'tt-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Writes the torrent's files (and the .torrent) into a fresh directory: a complete download. */
export async function writeFiles(root: string, name: string, files: TestFile[], single = false): Promise<void> {
  for (const f of files) {
    if (f.pad) continue;
    const p = single ? join(root, name) : join(root, name, ...f.path);
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, f.data);
  }
}

/** Every file and directory under `dir`, relative, sorted. */
export async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string, rel: string): Promise<void> {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      out.push(p);
      if (e.isDirectory()) await walk(join(d, e.name), p);
    }
  }
  await walk(dir, '');
  return out.sort();
}
