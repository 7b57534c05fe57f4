/** Small files written whole or not at all: a temporary file beside the target, then rename. */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { openConfined } from './confined.js';
import { prepareRoot } from './safe-path.js';

/**
 * Writes `bytes` to `file` atomically. Given `root` (a directory `file` lies under, such as a
 * download's output directory), the temporary file is created by the confined walk: nothing is
 * written through a symlink planted on the way.
 */
export async function writeFileAtomic(file: string, bytes: Buffer, root?: string): Promise<void> {
  let tmp = `${file}.${process.pid}.tmp`;
  let target = file;
  // the confined tmp is only ever removed once it was made: its path may lead through a symlink
  let made = root === undefined;
  try {
    if (root === undefined) {
      await mkdir(dirname(file), { recursive: true });
      await writeFile(tmp, bytes);
    } else {
      const real = await prepareRoot(root);
      const components = relative(root, tmp).split(sep);
      tmp = join(real, ...components);
      target = join(real, relative(root, file));
      const handle = (await openConfined(real, components, { create: true, write: true }))!;
      made = true;
      try {
        await handle.truncate(0);
        await handle.writeFile(bytes);
      } finally {
        await handle.close();
      }
    }
    // the rename goes by path: a directory swapped meanwhile can only make it fail (no tmp there)
    await rename(tmp, target);
  } catch (e) {
    // a full disk or a target that is a directory: no half-written file is left behind
    if (made) await rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
}
