/**
 * Where a torrent's files may go. Path components come from a stranger's torrent: each one is
 * checked on its own, the joined path must stay under the output directory, and no directory
 * on the way may be a symlink (one planted in the output directory could point anywhere).
 */
import { lstat, mkdir, realpath } from 'node:fs/promises';
import { isAbsolute, join, resolve, sep } from 'node:path';
import { componentProblem } from '../metainfo/torrent.js';

export class UnsafePathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafePathError';
  }
}

/** The absolute path of `components` under `root`; throws UnsafePathError when it would leave it. */
export function safeJoin(root: string, components: readonly string[]): string {
  if (components.length === 0) throw new UnsafePathError('an empty path');
  for (const c of components) {
    // the torrent parser refuses these already; this is the last line of defence before a write
    const p = isAbsolute(c) ? 'is an absolute path' : componentProblem(c);
    if (p !== null) throw new UnsafePathError(`refusing ${JSON.stringify(components.join('/'))}: a path component ${p}`);
  }
  const base = resolve(root);
  const full = resolve(base, join(...components));
  if (!full.startsWith(base + sep)) throw new UnsafePathError(`refusing ${JSON.stringify(components.join('/'))}: it resolves outside ${base}`);
  return full;
}

/**
 * Checks that no existing directory between `root` and the file is a symlink or a non-directory,
 * and that `root` itself resolves where it says. Run before anything is created or written.
 */
export async function checkNoSymlinks(root: string, components: readonly string[]): Promise<void> {
  const base = resolve(root);
  let dir = base;
  for (let i = 0; i < components.length; i++) {
    const p = join(dir, components[i]!);
    let st;
    try {
      st = await lstat(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // nothing further exists yet
      throw e;
    }
    if (st.isSymbolicLink()) throw new UnsafePathError(`refusing to write through the symlink ${p}`);
    if (i < components.length - 1 && !st.isDirectory()) throw new UnsafePathError(`${p} is in the way: it is not a directory`);
    if (i === components.length - 1 && !st.isFile()) throw new UnsafePathError(`${p} is in the way: it is not a regular file`);
    dir = p;
  }
}

/** Creates the output directory (and parents) and returns its real path. */
export async function prepareRoot(root: string): Promise<string> {
  await mkdir(root, { recursive: true });
  return realpath(root);
}
