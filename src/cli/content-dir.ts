/**
 * The DIR of `verify` and `seed`, as people give it. A torrent's content lives at DIR/NAME
 * (NAME: the torrent's name, a folder for a multi-file torrent, the file for a single one), so
 * DIR is the folder that holds it, as `download -o DIR` writes it. People also name the
 * content itself (`create data/ ...` then `verify x.torrent data/`), so the rule is:
 *
 *   DIR/NAME exists                      → DIR holds the content (the usual meaning)
 *   else DIR's last component is NAME    → DIR is the content itself; its parent holds it
 *   else                                 → DIR holds it, and nothing is there yet
 *
 * Unambiguous: the first case wins when both could apply (a folder data/ holding data/).
 */
import { stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Torrent } from '../metainfo/torrent.js';

export interface ContentDir {
  /** the folder that holds NAME */
  root: string;
  /** where the content is expected: root/NAME */
  expected: string;
  /** DIR named the content itself (the second case) */
  named: boolean;
}

export async function contentDir(t: Torrent, dir: string): Promise<ContentDir> {
  const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);
  if (!(await exists(join(dir, t.name))) && basename(resolve(dir)) === t.name && (await exists(dir))) {
    const root = dirname(resolve(dir));
    return { root, expected: join(root, t.name), named: true };
  }
  return { root: dir, expected: join(dir, t.name), named: false };
}
