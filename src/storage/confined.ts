/**
 * Opening a file under a directory so that no symlink anywhere on the way is followed, and no
 * descriptor that ends up outside the directory is ever used, whatever happens to the tree
 * meanwhile.
 *
 * A check of the path before opening it (lstat each component, then open) leaves a window:
 * a directory swapped for a symlink between the check and the open gets the file created
 * wherever the symlink points. On Linux the walk is done by descriptor instead, openat()-style:
 * each directory is opened with O_NOFOLLOW|O_DIRECTORY and the next component is looked up
 * through `/proc/self/fd/N/`, which names the directory already opened, not a path that can be
 * swapped. Each opened file's real path (`/proc/self/fd/N`) is then checked to lie under the
 * root's real path before its descriptor is handed out: a directory moved outside meanwhile
 * costs the run, not a byte.
 *
 * Elsewhere (no /proc) the walk falls back to lstat before each step: the window is narrow,
 * not closed, and the documentation says so.
 */
import { constants, copyFile, type FileHandle, lstat, mkdir, open, readlink, rename, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, sep } from 'node:path';
import { leastRecentlyUsedIdle, nextUse, oldestIdleUse, type Used } from './lru.js';
import type { Holder, OpenFiles } from './open-files.js';
import { UnsafePathError } from './safe-path.js';

const PROC_FD = '/proc/self/fd';
let unlinks = 0;
/** Whether the walk can go by descriptor (Linux with /proc mounted). */
export const walksByDescriptor = process.platform === 'linux' && existsSync(`${PROC_FD}/0`);

export interface ConfinedOpen {
  /** create missing directories and the file (read mode opens what exists, or gives null) */
  create: boolean;
  /** open for reading and writing (else read only) */
  write: boolean;
  /**
   * A file found with more than one hard link is given a copy of its own (same content) before
   * it is opened for writing, so that its other names, inside the directory or not, keep theirs;
   * `onNotice` hears of each. Only with `write`.
   */
  onNotice?: (message: string) => void;
}

export interface ConfinedOptions {
  /** directories kept open, at most (default 32) */
  maxDirs?: number;
  /** a limit on open descriptors shared with other holders (open-files.ts): each held directory counts */
  openFiles?: OpenFiles;
}

interface HeldDir extends Used {
  handle: Promise<FileHandle | null>;
  /** no longer in the cache: closed when its last user lets go */
  forgotten: boolean;
}

/**
 * A directory that files are opened under, never through a symlink. Directories walked are kept
 * open (a few, least recently used out) so that a file beside the last one costs one open, not a
 * walk from the root: 4,000 small files in 40 folders took 1.5–2× as long to assemble otherwise.
 * A held directory is safe to reuse whatever happens to its path: it is the directory that was
 * checked, and the file opened in it is checked again.
 */
export class ConfinedRoot {
  /** the root's real path */
  readonly root: string;
  private readonly maxDirs: number;
  /** held directories by their components joined with '/' (no component contains one); '' is the root */
  private readonly dirs = new Map<string, HeldDir>();
  /** the shared limit, and what it may close of ours to make room (null without one) */
  private readonly openFiles: OpenFiles | null;
  private readonly holder: Holder;

  /** `root` must be a real path (no symlink in it). */
  constructor(root: string, options: ConfinedOptions = {}) {
    this.root = root;
    this.maxDirs = options.maxDirs ?? 32;
    this.openFiles = options.openFiles ?? null;
    this.holder = {
      oldestIdle: () => oldestIdleUse(this.dirs),
      closeOldestIdle: async () => {
        const victim = leastRecentlyUsedIdle(this.dirs);
        if (victim === null) return;
        const held = this.dirs.get(victim)!;
        this.dirs.delete(victim);
        await this.closeHeld(held);
      },
    };
    this.openFiles?.register(this.holder);
  }

  /**
   * Opens `root/components…`. Returns null when opening for reading and the file or a directory
   * on the way is missing. Throws UnsafePathError for a symlink or a non-directory on the way, or
   * a file that resolves outside `root`; other errors keep their code and name the logical path.
   */
  async open(components: readonly string[], o: ConfinedOpen): Promise<FileHandle | null> {
    const shown = join(this.root, ...components);
    try {
      if (!walksByDescriptor) return await openByPath(this.root, components, o, shown);
      try {
        return await this.openByDescriptor(components, o, shown);
      } catch (e) {
        // a held directory removed meanwhile cannot take new files: walk again from the root, once
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || !o.create) throw e;
        this.forget(components);
        return await this.openByDescriptor(components, o, shown);
      }
    } catch (e) {
      throw namedFor(e, shown);
    }
  }

  async close(): Promise<void> {
    this.openFiles?.unregister(this.holder);
    const held = [...this.dirs.values()];
    this.dirs.clear();
    await Promise.allSettled(held.map((h) => this.closeHeld(h)));
  }

  private async openByDescriptor(components: readonly string[], o: ConfinedOpen, shown: string): Promise<FileHandle | null> {
    const { entry, dir } = await this.hold(components, components.length - 1, o);
    try {
      if (dir === null) return null;
      const name = components[components.length - 1]!;
      for (let attempt = 0; ; attempt++) {
        const opened = await openFileIn(dir, name, o, shown);
        if (opened === null) return null;
        const { file, links } = opened;
        const outside = await placeOutside(file, this.root);
        if (outside !== null) {
          await file.close();
          this.forget(components);
          throw new UnsafePathError(`refusing to use ${shown}: it resolves to ${outside}, outside ${this.root} (a directory on the way was moved or replaced)`);
        }
        if (!o.write || attempt > 0 || links <= 1) return file;
        await breakLink(dir, file, name);
        o.onNotice?.(`${shown} had ${links} hard links: writing to a copy of its own, so that the other names keep their content`);
        // and open the copy, checked like any other
      }
    } finally {
      this.release(entry);
    }
  }

  /** The directory components[0, n) (null when reading and it is missing), held: take one off `entry.users` when done. */
  private async hold(components: readonly string[], n: number, o: ConfinedOpen): Promise<{ entry: HeldDir; dir: FileHandle | null }> {
    const key = components.slice(0, n).join('/');
    let held = this.dirs.get(key);
    if (held === undefined) {
      const handle = n === 0 ? this.counted(() => openRoot(this.root, o)) : this.openChild(components, n, o);
      held = { handle, users: 0, lastUse: 0, forgotten: false };
      this.dirs.set(key, held);
      // a failure or a missing directory is not kept: the next open looks again
      handle.then((h) => { if (h === null) this.drop(key, held!); }, () => this.drop(key, held!));
    }
    held.users++;
    held.lastUse = nextUse();
    try {
      return { entry: held, dir: await held.handle };
    } catch (e) {
      this.release(held);
      throw e;
    } finally {
      this.trim();
    }
  }

  private async openChild(components: readonly string[], n: number, o: ConfinedOpen): Promise<FileHandle | null> {
    const { entry, dir } = await this.hold(components, n - 1, o);
    try {
      // counted once the parent is held: making room cannot close the parent itself
      return dir === null ? null : await this.counted(() => openDirectoryIn(dir, components[n - 1]!, o, join(this.root, ...components.slice(0, n))));
    } finally {
      this.release(entry);
    }
  }

  /** Opens a directory counted in a shared limit: reserved first, given back when nothing opened. */
  private async counted(open: () => Promise<FileHandle | null>): Promise<FileHandle | null> {
    const budget = this.openFiles;
    if (budget === null) return open();
    await budget.reserve(1);
    let dir: FileHandle | null = null;
    try {
      dir = await open();
      return dir;
    } finally {
      if (dir === null) budget.release(1);
    }
  }

  /** Closes a held directory, if it opened at all, and gives its descriptor back; never rejects. */
  private async closeHeld(held: HeldDir): Promise<void> {
    const closing = held.handle.then((dir) => (dir === null ? 0 : dir.close().then(() => 1, () => 1)), () => 0);
    await (this.openFiles === null ? closing : this.openFiles.releaseAfter(closing));
  }

  private release(held: HeldDir): void {
    held.users--;
    if (held.forgotten && held.users === 0) void this.closeHeld(held);
  }

  private drop(key: string, held: HeldDir): void {
    if (this.dirs.get(key) === held) this.dirs.delete(key);
  }

  /** Lets go of the directories on the way to `components` (they are looked up again). */
  private forget(components: readonly string[]): void {
    for (let n = 1; n < components.length; n++) {
      const key = components.slice(0, n).join('/');
      const held = this.dirs.get(key);
      if (held === undefined) continue;
      this.dirs.delete(key);
      // one a walk holds now is closed when it lets go (its number could be reused meanwhile)
      if (held.users === 0) void this.closeHeld(held);
      else held.forgotten = true;
    }
  }

  /** Closes the least recently used idle directories beyond `maxDirs`; one in use is never closed (its number could be reused). */
  private trim(): void {
    while (this.dirs.size > this.maxDirs) {
      const victim = leastRecentlyUsedIdle(this.dirs);
      if (victim === null) return;
      const held = this.dirs.get(victim)!;
      this.dirs.delete(victim);
      void this.closeHeld(held);
    }
  }
}

/**
 * Opens `root/components…` once (see ConfinedRoot.open), holding no directory afterwards.
 */
export async function openConfined(root: string, components: readonly string[], o: ConfinedOpen): Promise<FileHandle | null> {
  const r = new ConfinedRoot(root);
  try {
    return await r.open(components, o);
  } finally {
    await r.close();
  }
}

async function openRoot(root: string, o: ConfinedOpen): Promise<FileHandle | null> {
  try {
    return await open(root, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !o.create) return null;
    throw e;
  }
}

/** Copies `file` and renames the copy over `name` in `dir`: the other names keep the old inode and its bytes. */
async function breakLink(dir: FileHandle, file: FileHandle, name: string): Promise<void> {
  // short, so that a name at the length limit still leaves room; unique per process and attempt
  const tmp = `.tt-unlink-${process.pid}-${++unlinks}.tmp`;
  try {
    await copyFile(`${PROC_FD}/${file.fd}`, `${PROC_FD}/${dir.fd}/${tmp}`, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
    await rename(`${PROC_FD}/${dir.fd}/${tmp}`, `${PROC_FD}/${dir.fd}/${name}`);
  } catch (e) {
    await rm(`${PROC_FD}/${dir.fd}/${tmp}`, { force: true }).catch(() => {});
    throw e;
  } finally {
    await file.close();
  }
}

/** The directory `name` inside the open directory `dir` (made first when `create`), never through a symlink. */
async function openDirectoryIn(dir: FileHandle, name: string, o: ConfinedOpen, shown: string): Promise<FileHandle | null> {
  const p = `${PROC_FD}/${dir.fd}/${name}`;
  // made, then gone before it could be opened: someone else is at work in the tree; a few tries, not forever
  for (let attempt = 1; ; attempt++) {
    if (o.create) {
      try {
        await mkdir(p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // a symlink of that name is EEXIST too: the open below refuses it
      }
    }
    try {
      return await open(p, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && !o.create) return null;
      if (code === 'ENOENT' && attempt < 3) continue;
      throw await dirRefusal(e, p, o, shown);
    }
  }
}

/** Why the directory `p` (shown as `shown`) could not be opened, as the error to throw. */
async function dirRefusal(e: unknown, p: string, o: ConfinedOpen, shown: string): Promise<unknown> {
  const code = (e as NodeJS.ErrnoException).code;
  // O_DIRECTORY meeting a symlink says ENOTDIR: lstat tells the two apart, for the message only
  if (code === 'ELOOP' || code === 'ENOTDIR') {
    const link = await lstat(p).then((st) => st.isSymbolicLink(), () => false);
    return link ? symlinkRefused(shown, o) : new UnsafePathError(`${shown} is in the way: it is not a directory`);
  }
  return namedFor(e, shown);
}

/** The file `name` in the open directory `dir`, and its count of hard links. */
async function openFileIn(dir: FileHandle, name: string, o: ConfinedOpen, shown: string): Promise<{ file: FileHandle; links: number } | null> {
  let file: FileHandle;
  try {
    file = await open(`${PROC_FD}/${dir.fd}/${name}`, fileFlags(o), 0o666);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw symlinkRefused(shown, o);
    if (code === 'EISDIR') throw new UnsafePathError(`${shown} is in the way: it is not a regular file`);
    if (code === 'ENOENT' && !o.create) return null;
    throw e;
  }
  return { file, links: await regularFileLinks(file, shown) };
}

/** O_NONBLOCK: opening a FIFO for reading would wait for a writer (forever); on a regular file it changes nothing. */
function fileFlags(o: ConfinedOpen): number {
  return (o.write ? constants.O_RDWR : constants.O_RDONLY) | (o.create ? constants.O_CREAT : 0) | constants.O_NOFOLLOW | constants.O_NONBLOCK;
}

/** The hard links of `file`; closes it and throws when it is not a regular file (a FIFO or a device would block, or write somewhere else entirely). */
async function regularFileLinks(file: FileHandle, shown: string): Promise<number> {
  const st = await file.stat();
  if (st.isFile()) return st.nlink;
  await file.close();
  throw new UnsafePathError(`${shown} is in the way: it is not a regular file`);
}

/** Null when the open file lies under `root`, else where it really is. */
async function placeOutside(file: FileHandle, root: string): Promise<string | null> {
  const real = await readlink(`${PROC_FD}/${file.fd}`);
  return real.startsWith(root + sep) ? null : real;
}

/** Without /proc: lstat every component before opening, which narrows the window without closing it. */
async function openByPath(root: string, components: readonly string[], o: ConfinedOpen, shown: string): Promise<FileHandle | null> {
  let dir = root;
  for (let i = 0; i < components.length - 1; i++) {
    dir = join(dir, components[i]!);
    if (o.create) await mkdir(dir).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'EEXIST') throw e; });
    const st = await lstat(dir).catch((e: NodeJS.ErrnoException) => { if (e.code === 'ENOENT' && !o.create) return null; throw e; });
    if (st === null) return null;
    if (st.isSymbolicLink()) throw symlinkRefused(dir, o);
    if (!st.isDirectory()) throw new UnsafePathError(`${dir} is in the way: it is not a directory`);
  }
  try {
    const file = await open(shown, fileFlags(o), 0o666);
    await regularFileLinks(file, shown);
    return file;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw symlinkRefused(shown, o);
    if (code === 'ENOENT' && !o.create) return null;
    throw e;
  }
}

/**
 * The same open file again with other flags (O_DIRECT): through its descriptor where /proc
 * allows, so that it is the same file whatever its path names now.
 */
export function reopen(file: FileHandle, path: string, flags: number): Promise<FileHandle> {
  return walksByDescriptor ? open(`${PROC_FD}/${file.fd}`, flags) : open(path, flags | constants.O_NOFOLLOW);
}

function symlinkRefused(path: string, o: ConfinedOpen): UnsafePathError {
  return new UnsafePathError(`refusing to ${o.write ? 'write' : 'read'} through the symlink ${path}`);
}

/** A system error names the logical path, not /proc/self/fd/N/…; its code is kept. */
function namedFor(e: unknown, shown: string): unknown {
  if (e instanceof Error && !(e instanceof UnsafePathError)) {
    const sys = e as NodeJS.ErrnoException;
    if (sys.path?.startsWith(PROC_FD) === true) sys.path = shown;
    e.message = e.message.replace(/'\/proc\/self\/fd\/[^']*'/g, `'${shown}'`);
  }
  return e;
}
