/**
 * Making a .torrent from files on disk (BEP 3, 12, 19, 27, 47). Deterministic: files in byte
 * order of their paths, canonical bencode, so the same input (with no date) gives the same
 * bytes. Symlinks are not followed and special files (FIFOs, sockets, devices) are skipped,
 * each with a warning: following them could leave the tree or read for ever.
 */
import { lstat, readdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { encode } from '../bencode/encoder.js';
import type { BValue } from '../bencode/types.js';
import { hashPieces } from '../storage/verify.js';
import { componentProblem, LIMITS, MetainfoError, type TorrentFile } from './torrent.js';

export interface ScannedFile {
  path: string[];
  length: number;
}

export interface Scan {
  /** the directory that holds the torrent's top entry */
  root: string;
  /** the file or directory name on disk */
  base: string;
  multiFile: boolean;
  files: ScannedFile[];
}

export async function scanPath(path: string, warn: (m: string) => void = () => {}): Promise<Scan> {
  const abs = resolve(path);
  const st = await lstat(abs);
  const base = basename(abs);
  if (st.isSymbolicLink()) throw new MetainfoError(`${path}: is a symlink; give the file or directory it points to`);
  if (st.isFile()) return { root: dirname(abs), base, multiFile: false, files: [{ path: [base], length: st.size }] };
  if (!st.isDirectory()) throw new MetainfoError(`${path}: not a regular file or directory`);
  const files: ScannedFile[] = [];
  const walk = async (dir: string, rel: string[]): Promise<void> => {
    if (rel.length > LIMITS.pathDepth) throw new MetainfoError(`${join(dir)}: deeper than ${LIMITS.pathDepth} levels`);
    const names = (await readdir(dir)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const p = join(dir, name);
      const s = await lstat(p);
      const problem = componentProblem(name);
      if (problem !== null) {
        warn(`${p}: skipped: the name ${problem}`);
        continue;
      }
      if (s.isSymbolicLink()) warn(`${p}: skipped: symlinks are not followed`);
      else if (s.isDirectory()) await walk(p, [...rel, name]);
      else if (s.isFile()) files.push({ path: [...rel, name], length: s.size });
      else warn(`${p}: skipped: not a regular file`);
      if (files.length > LIMITS.files) throw new MetainfoError(`${path}: more than ${LIMITS.files} files`);
    }
  };
  await walk(abs, []);
  if (files.length === 0) throw new MetainfoError(`${path}: no files to put in a torrent`);
  return { root: dirname(abs), base, multiFile: true, files };
}

/** About 1,500 pieces, a power of two between 16 KiB and 16 MiB (as mainstream clients pick). */
export function defaultPieceLength(total: number): number {
  let p = 16 * 1024;
  while (p < 16 * 1024 * 1024 && total / p > 1500) p *= 2;
  return p;
}

/** The files with offsets; with `pad`, BEP 47 pad files so each file starts on a piece boundary. */
export function layoutFiles(files: readonly ScannedFile[], pieceLength: number, pad: boolean): TorrentFile[] {
  const out: TorrentFile[] = [];
  let offset = 0;
  files.forEach((f, i) => {
    out.push({ path: f.path, length: f.length, offset, pad: false });
    offset += f.length;
    const rem = offset % pieceLength;
    if (pad && rem !== 0 && i < files.length - 1) {
      const n = pieceLength - rem;
      out.push({ path: ['.pad', String(n)], length: n, offset, pad: true });
      offset += n;
    }
  });
  return out;
}

export interface CreateOptions {
  announce?: string[][];
  pieceLength?: number;
  private?: boolean;
  comment?: string;
  webSeeds?: string[];
  source?: string;
  pad?: boolean;
  /** seconds since the epoch; null for none */
  date?: number | null;
  name?: string;
  createdBy?: string;
  workers?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export async function createTorrent(scan: Scan, options: CreateOptions = {}): Promise<Buffer> {
  const total = scan.files.reduce((n, f) => n + f.length, 0);
  if (total === 0) throw new MetainfoError(`${scan.base}: every file is empty: a torrent needs data`);
  const pieceLength = options.pieceLength ?? defaultPieceLength(total);
  const files = layoutFiles(scan.files, pieceLength, options.pad === true && scan.multiFile);
  const length = files.reduce((n, f) => n + f.length, 0);
  const pieceCount = Math.ceil(length / pieceLength);
  const name = options.name ?? scan.base;
  const np = componentProblem(name);
  if (np !== null) throw new MetainfoError(`name ${JSON.stringify(name)} ${np}`);
  const hashes = Buffer.alloc(pieceCount * 20);
  const layout = { name: scan.base, multiFile: scan.multiFile, files, length, pieceLength, pieceCount };
  let done = 0;
  for await (const [i, digest] of hashPieces(layout, scan.root, { workers: options.workers, signal: options.signal })) {
    if (digest === null) throw new MetainfoError(`piece ${i}: a file changed or vanished while it was being read`);
    digest.copy(hashes, i * 20);
    options.onProgress?.(++done, pieceCount);
  }
  const info = new Map<string, BValue>();
  if (scan.multiFile) {
    info.set('files', files.map((f) => {
      const d = new Map<string, BValue>();
      if (f.pad) d.set('attr', Buffer.from('p'));
      d.set('length', f.length);
      d.set('path', f.path.map((c) => Buffer.from(c)));
      return d;
    }));
  } else {
    info.set('length', length);
  }
  info.set('name', Buffer.from(name));
  info.set('piece length', pieceLength);
  info.set('pieces', hashes);
  if (options.private) info.set('private', 1);
  if (options.source !== undefined) info.set('source', Buffer.from(options.source));
  const top = new Map<string, BValue>();
  const tiers = (options.announce ?? []).filter((t) => t.length > 0);
  if (tiers.length > 0) {
    top.set('announce', Buffer.from(tiers[0]![0]!));
    if (tiers.length > 1 || tiers[0]!.length > 1) top.set('announce-list', tiers.map((t) => t.map((u) => Buffer.from(u))));
  }
  if (options.comment !== undefined) top.set('comment', Buffer.from(options.comment));
  top.set('created by', Buffer.from(options.createdBy ?? 'torrent-tools 0.1.0'));
  if (options.date !== null && options.date !== undefined) top.set('creation date', options.date);
  top.set('info', info);
  if (options.webSeeds && options.webSeeds.length > 0) top.set('url-list', options.webSeeds.map((u) => Buffer.from(u)));
  return encode(top);
}
