/** Small files written whole or not at all: a temporary file beside the target, then rename. */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function writeFileAtomic(file: string, bytes: Buffer): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, file);
  } catch (e) {
    // a full disk or a target that is a directory: no half-written file is left behind
    await rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
}
