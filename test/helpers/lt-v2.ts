/**
 * v2 and hybrid torrents made by python-libtorrent 2.0 (`make` of test/fixtures/lt-v2.py), as
 * qBittorrent makes them, and the content image they describe.
 */
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Torrent } from '../../src/metainfo/torrent.js';
import { FIXTURES, SYSTEM_PYTHON } from './interop.js';
import { writeFiles, type TestFile } from './torrent.js';

/** libtorrent's torrent of `root/name` (a directory of `files`, or the one file when `single`), written to `out`. */
export async function ltTorrent(root: string, name: string, files: TestFile[], kind: 'v2' | 'hybrid', pieceLength: number, out: string, single = false): Promise<Buffer> {
  await writeFiles(root, name, files, single);
  const r = spawnSync(SYSTEM_PYTHON, [fileURLToPath(new URL('lt-v2.py', FIXTURES)), 'make', join(root, name), out, kind, String(pieceLength)], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`lt-v2.py make: ${r.stderr}`);
  return readFile(out);
}

/** The torrent's piece space: each file's bytes where the layout puts it, pads as zeros. */
export function contentImage(t: Torrent, files: TestFile[], single = false): Buffer {
  const img = Buffer.alloc(t.length);
  const byPath = new Map(files.map((f) => [f.path.join('/'), f.data]));
  for (const f of t.files) {
    if (f.pad || f.length === 0) continue;
    const data = single ? files[0]!.data : byPath.get(f.path.join('/'));
    if (data === undefined || data.length !== f.length) throw new Error(`no data for ${f.path.join('/')}`);
    data.copy(img, f.offset);
  }
  return img;
}
