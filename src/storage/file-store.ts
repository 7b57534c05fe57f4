/**
 * Where a byte hits the disk: a torrent's pieces mapped onto its files, written and read with
 * positional I/O through a bounded cache of open file handles.
 *
 * Files are opened without O_TRUNC and only ever grown (sparse) to their final length: a run
 * over an existing directory never loses a byte that was there. BEP 47 pad files are never
 * written; they read back as zeros.
 */
import { constants, type FileHandle, realpath } from 'node:fs/promises';
import { readSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Torrent } from '../metainfo/torrent.js';
import { pieceSize, pieceSpans } from '../metainfo/pieces.js';
import type { BufferPool } from './buffer-pool.js';
import { BOUNCE_SIZE, DIRECT_ALIGN, alignDown, alignUp, bouncePool, isAligned } from './direct-io.js';
import { allocReadBuffer } from './io-buffer.js';
import { ConfinedRoot, reopen } from './confined.js';
import { leastRecentlyUsedIdle, nextUse, oldestIdleUse } from './lru.js';
import type { Holder, OpenFiles } from './open-files.js';
import { UnsafePathError, checkNoSymlinks, prepareRoot, safeJoin } from './safe-path.js';

export interface StoreOptions {
  /** 'write' creates directories and files as needed; 'read' never creates anything. */
  mode: 'read' | 'write';
  /** file indexes to write (default: every file); pieces still span the others, which are skipped */
  select?: ReadonlySet<number>;
  /** the most files kept open at once (torrents can have tens of thousands); two descriptors each when writing directly */
  maxOpen?: number;
  /**
   * A limit on open descriptors shared with other stores of the process (open-files.ts): each
   * file's descriptors (two when writing directly) and each held directory count, and the least
   * recently used idle one of any store is closed to make room. `maxOpen` still caps this store.
   * Counted at open and close only. Not across threads.
   */
  openFiles?: OpenFiles;
  /**
   * Read with blocking pread on the calling thread instead of libuv's pool. Only for a thread
   * that does nothing else (the hashing workers): there it saves the pool hop and its wake-ups
   * (create on 1 GiB, 2 workers: 0.93 s → 0.72 s, measured).
   */
  blockingReads?: boolean;
  /**
   * Write through the page cache. By default (write mode) the block-aligned part of every
   * write goes around it with O_DIRECT where the file system allows it (direct-io.ts).
   */
  osCache?: boolean;
  /** hears what the store did that the user should know of (a hard link broken before a write) */
  onNotice?: (message: string) => void;
}

interface Slot {
  handle: FileHandle;
  /** the same file opened with O_DIRECT, for the aligned part of writes */
  direct: FileHandle | null;
  users: number;
  lastUse: number;
}

export class FileStore {
  readonly torrent: Torrent;
  readonly root: string;
  /** absolute path of each file of the torrent */
  readonly paths: readonly string[];
  /** each file's path components under `root` */
  private readonly components: ReadonlyArray<readonly string[]>;
  private readonly onNotice: ((message: string) => void) | undefined;
  /** opens every file under `root` without following a symlink on the way */
  private readonly confined: ConfinedRoot;
  private readonly mode: 'read' | 'write';
  private readonly select: ReadonlySet<number> | undefined;
  private readonly maxOpen: number;
  private readonly blockingReads: boolean;
  /** direct writes are on until the file system refuses one */
  private direct: boolean;
  private bounce: BufferPool | null = null;
  /** bytes written around the page cache so far */
  directBytes = 0;
  private readonly slots = new Map<number, Slot>();
  private readonly opening = new Map<number, Promise<Slot | null>>();
  private readonly sized = new Set<number>();
  private closed = false;
  /** the shared limit, and what it may close of ours to make room (null without one) */
  private readonly openFiles: OpenFiles | null;
  private readonly holder: Holder;

  private constructor(torrent: Torrent, root: string, paths: string[], components: string[][], options: StoreOptions) {
    this.torrent = torrent;
    this.root = root;
    this.paths = paths;
    this.components = components;
    this.onNotice = options.onNotice;
    this.openFiles = options.openFiles ?? null;
    this.confined = new ConfinedRoot(root, { openFiles: this.openFiles ?? undefined });
    this.mode = options.mode;
    this.select = options.select;
    this.maxOpen = Math.max(1, options.maxOpen ?? 128);
    this.blockingReads = options.blockingReads === true;
    this.direct = options.mode === 'write' && options.osCache !== true;
    this.holder = {
      oldestIdle: () => oldestIdleUse(this.slots),
      closeOldestIdle: async () => {
        const s = this.takeOldestIdle();
        if (s !== null) await this.closeSlot(s).catch(() => {}); // its owner is not the one waiting: nobody to tell
      },
    };
    this.openFiles?.register(this.holder);
  }

  /**
   * Checks every path of the torrent under `root` before anything is created: a torrent that
   * would write outside `root`, or through a symlink, is refused whole (UnsafePathError).
   */
  static async open(torrent: Torrent, root: string, options: StoreOptions): Promise<FileStore> {
    // a real path: every descriptor opened under it is checked to resolve there (confined.ts)
    const base = options.mode === 'write' ? await prepareRoot(root) : await realpath(root).catch(() => resolve(root));
    const paths: string[] = [];
    const components: string[][] = [];
    for (const f of torrent.files) {
      const c = torrent.multiFile ? [torrent.name, ...f.path] : [torrent.name];
      paths.push(safeJoin(base, c));
      components.push(c);
      // refuses a torrent whole before anything is written; each open checks again (confined.ts)
      if (!f.pad) await checkNoSymlinks(base, c);
    }
    const store = new FileStore(torrent, base, paths, components, options);
    if (options.mode === 'write') {
      try {
        await store.createEmptyFiles();
      } catch (e) {
        await store.close(); // its handles and its place in a shared limit
        throw e;
      }
    }
    return store;
  }

  /** True when file `i` is one this store writes. */
  wants(file: number): boolean {
    const f = this.torrent.files[file]!;
    return !f.pad && (this.select === undefined || this.select.has(file));
  }

  /** Writes a verified piece into every (selected, non-pad) file it spans. */
  async writePiece(index: number, data: Buffer): Promise<void> {
    if (data.length !== pieceSize(this.torrent, index)) throw new RangeError(`piece ${index}: ${data.length} bytes, expected ${pieceSize(this.torrent, index)}`);
    for (const s of pieceSpans(this.torrent, index)) {
      if (!this.wants(s.file)) continue;
      const slot = await this.acquire(s.file);
      try {
        await this.writeSpan(slot!, data, s.pieceOffset, s.length, s.fileOffset);
      } finally {
        this.release(slot!);
      }
    }
  }

  /** Writes data[at, at + n) at `pos`: the block-aligned middle directly if it can, the edges through the cache. */
  private async writeSpan(slot: Slot, data: Buffer, at: number, n: number, pos: number): Promise<void> {
    const a = alignUp(pos);
    const b = alignDown(pos + n);
    if (slot.direct === null || b - a < DIRECT_ALIGN) {
      await writeAll(slot.handle, data, at, n, pos);
      return;
    }
    await writeAll(slot.handle, data, at, a - pos, pos);
    const direct = await this.writeDirect(slot, data, at + (a - pos), b - a, a);
    await writeAll(slot.handle, data, at + (a - pos) + direct, pos + n - (a + direct), a + direct);
  }

  /**
   * Writes aligned bytes through the O_DIRECT handle; returns how many it wrote (the caller
   * writes the rest). Memory that is aligned already goes as it is, other bytes through a bounce
   * buffer a megabyte at a time.
   */
  private async writeDirect(slot: Slot, data: Buffer, at: number, n: number, pos: number): Promise<number> {
    const src = data.subarray(at, at + n);
    const bounce = isAligned(src) ? null : (this.bounce ??= bouncePool()).take();
    let done = 0;
    try {
      // null once a write (maybe another piece's, running beside this one) found direct I/O refused
      while (done < n && slot.direct !== null) {
        const len = bounce === null ? n - done : Math.min(BOUNCE_SIZE, n - done);
        if (bounce !== null) src.copy(bounce, 0, done, done + len);
        const { bytesWritten } = await (bounce === null ? slot.direct.write(src, done, len, pos + done) : slot.direct.write(bounce, 0, len, pos + done));
        done += bytesWritten;
        this.directBytes += bytesWritten;
        if (bytesWritten < len) break; // a short direct write: the rest, maybe unaligned now, goes through the cache
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw e;
      this.refuseDirect();
    } finally {
      if (bounce !== null) this.bounce!.give(bounce);
    }
    return done;
  }

  /**
   * Reads `length` bytes at `begin` of piece `index` into a new buffer, or null when a file it
   * needs is missing or too short (pad files read as zeros).
   */
  async read(index: number, begin: number, length: number, into?: Buffer): Promise<Buffer | null> {
    const out = into !== undefined && into.length >= length ? into.subarray(0, length) : allocReadBuffer(length);
    const end = begin + length;
    for (const s of pieceSpans(this.torrent, index)) {
      const a = Math.max(begin, s.pieceOffset);
      const b = Math.min(end, s.pieceOffset + s.length);
      if (a >= b) continue;
      if (this.torrent.files[s.file]!.pad) {
        out.fill(0, a - begin, b - begin);
        continue;
      }
      const slot = await this.acquire(s.file);
      if (slot === null) return null;
      try {
        let done = 0;
        while (a + done < b) {
          const at = a - begin + done;
          const n = b - a - done;
          const pos = s.fileOffset + (a - s.pieceOffset) + done;
          const bytesRead = this.blockingReads ? readSync(slot.handle.fd, out, at, n, pos) : (await slot.handle.read(out, at, n, pos)).bytesRead;
          if (bytesRead === 0) return null; // short file
          done += bytesRead;
        }
      } finally {
        this.release(slot);
      }
    }
    return out;
  }

  /** The whole piece, or null when it is not (all) on disk. */
  readPiece(index: number, into?: Buffer): Promise<Buffer | null> {
    return this.read(index, 0, pieceSize(this.torrent, index), into);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.openFiles?.unregister(this.holder);
    await Promise.allSettled([...this.opening.values()]);
    const slots = [...this.slots.values()];
    this.slots.clear();
    await Promise.allSettled(slots.map((s) => this.closeSlot(s)));
    await this.confined.close();
  }

  private async createEmptyFiles(): Promise<void> {
    for (let i = 0; i < this.torrent.files.length; i++) {
      if (this.torrent.files[i]!.length === 0 && this.wants(i)) {
        const slot = await this.acquire(i);
        this.release(slot!);
      }
    }
  }

  private async acquire(file: number): Promise<Slot | null> {
    if (this.closed) throw new Error('the file store is closed');
    const have = this.slots.get(file);
    if (have !== undefined) {
      have.users++;
      have.lastUse = nextUse();
      return have;
    }
    let pending = this.opening.get(file);
    if (pending === undefined) {
      pending = this.openFile(file).finally(() => this.opening.delete(file));
      this.opening.set(file, pending);
    }
    const slot = await pending;
    if (slot === null) return null;
    slot.users++;
    slot.lastUse = nextUse();
    return slot;
  }

  private release(slot: Slot): void {
    slot.users--;
  }

  private async openFile(file: number): Promise<Slot | null> {
    await this.evict();
    // a shared limit counts before the open; what does not open (a missing file, a refused O_DIRECT twin) is given back
    let counted = 0;
    if (this.openFiles !== null) {
      counted = this.direct && constants.O_DIRECT !== undefined ? 2 : 1;
      await this.openFiles.reserve(counted);
    }
    const write = this.mode === 'write';
    let handle: FileHandle | null = null;
    try {
      try {
        handle = await this.confined.open(this.components[file]!, { create: write, write, onNotice: this.onNotice });
      } catch (e) {
        // reading, a file that is not there as a plain file under root is a missing file: its pieces are not on disk
        if (!write && e instanceof UnsafePathError) return null;
        throw e;
      }
      if (handle === null) return null;
      if (write && !this.sized.has(file)) {
        const want = this.torrent.files[file]!.length;
        const st = await handle.stat();
        if (st.size < want) await handle.truncate(want); // grow, sparse; never shrink
        this.sized.add(file);
      }
      const slot: Slot = { handle, direct: await this.openDirect(handle, this.paths[file]!), users: 0, lastUse: nextUse() };
      this.slots.set(file, slot);
      // from here the slot's descriptors are given back by its close (closeSlot, refuseDirect)
      counted -= descriptors(slot);
      handle = null;
      return slot;
    } catch (e) {
      await handle?.close().catch(() => {}); // a failed stat or truncate: not kept, so not left open
      throw e;
    } finally {
      if (counted > 0) this.openFiles!.release(counted);
    }
  }

  /**
   * The device wants more alignment than we give, or the file system no direct writes after
   * all: everything goes through the cache from now on (close waits for writes in flight).
   */
  private refuseDirect(): void {
    this.direct = false;
    for (const s of this.slots.values()) {
      if (s.direct === null) continue;
      const closing = s.direct.close().then(() => 1, () => 1);
      s.direct = null;
      void this.openFiles?.releaseAfter(closing);
    }
  }

  /** The O_DIRECT handle for a file opened for writing, or null where the file system has none. */
  private async openDirect(file: FileHandle, path: string): Promise<FileHandle | null> {
    if (!this.direct || constants.O_DIRECT === undefined) return null;
    try {
      return await reopen(file, path, constants.O_WRONLY | constants.O_DIRECT);
    } catch {
      this.direct = false;
      return null;
    }
  }

  /** Closes the least recently used idle handles until there is room for one more under `maxOpen`. */
  private async evict(): Promise<void> {
    while (this.slots.size + this.opening.size >= this.maxOpen) {
      const s = this.takeOldestIdle();
      if (s === null) return; // all in use: go over the limit rather than deadlock
      await this.closeSlot(s);
    }
  }

  /** The least recently used slot nobody holds, taken out of `slots` (so nobody else picks or uses it), or null. */
  private takeOldestIdle(): Slot | null {
    const victim = leastRecentlyUsedIdle(this.slots);
    if (victim === null) return null;
    const s = this.slots.get(victim)!;
    this.slots.delete(victim);
    return s;
  }

  /** Closes a slot taken out of `slots`, then gives its descriptors back to a shared limit; rejects as its close did. */
  private async closeSlot(s: Slot): Promise<void> {
    const n = descriptors(s);
    const closing = Promise.allSettled([s.handle.close(), s.direct?.close()]);
    if (this.openFiles !== null) await this.openFiles.releaseAfter(closing.then(() => n));
    const [a, b] = await closing;
    if (a.status === 'rejected') throw a.reason;
    if (b.status === 'rejected') throw b.reason;
  }
}

function descriptors(s: Slot): number {
  return s.direct === null ? 1 : 2;
}

/** Writes all `n` bytes (a write may be short). */
async function writeAll(handle: FileHandle, data: Buffer, at: number, n: number, pos: number): Promise<void> {
  let done = 0;
  while (done < n) done += (await handle.write(data, at + done, n - done, pos + done)).bytesWritten;
}
