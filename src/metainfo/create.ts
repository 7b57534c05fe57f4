/**
 * Making a .torrent from files on disk (BEP 3, 12, 19, 27, 47, 52). Deterministic: files in
 * byte order of their paths (depth first, as a v2 file tree orders them), canonical bencode, so
 * the same input (with no date) gives the same bytes, and a v2 or hybrid torrent has the info
 * hash libtorrent 2 gives the same files and options. Symlinks are not followed and special files (FIFOs, sockets, devices) are skipped,
 * each with a warning: following them could leave the tree or read for ever.
 */
import { lstat, readdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { encode } from '../bencode/encoder.js';
import { keyOf, type BDict, type BValue } from '../bencode/types.js';
import { hashPieces } from '../storage/verify.js';
import { HASH_BYTES, rootOfPieceLayer } from './merkle.js';
import { v2PieceShape } from './pieces.js';
import { componentProblem, LIMITS, MetainfoError, type MetaVersion, type TorrentFile } from './torrent.js';

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

/**
 * The files with offsets; with `pad`, BEP 47 pad files so each file starts on a piece boundary;
 * with `tail` also one after the last file (libtorrent pads a hybrid's last file).
 */
export function layoutFiles(files: readonly ScannedFile[], pieceLength: number, pad: boolean, tail = false): TorrentFile[] {
  const out: TorrentFile[] = [];
  let offset = 0;
  files.forEach((f, i) => {
    out.push({ path: f.path, length: f.length, offset, pad: false });
    offset += f.length;
    const rem = offset % pieceLength;
    if (pad && rem !== 0 && (tail || i < files.length - 1)) {
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
  /** BEP 52: 1 (default), 2 (v2 only: file tree and piece layers) or both views of the files */
  version?: MetaVersion;
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
  const version = options.version ?? 1;
  const pieceLength = options.pieceLength ?? defaultPieceLength(total);
  // v2 needs every file on a piece boundary: implicit pads (v2) or real ones (hybrid, as libtorrent)
  const pad = (options.pad === true || version !== 1) && scan.multiFile;
  const files = layoutFiles(scan.files, pieceLength, pad, version === 'hybrid');
  const length = files.reduce((n, f) => n + f.length, 0);
  const pieceCount = Math.ceil(length / pieceLength);
  const name = options.name ?? scan.base;
  const np = componentProblem(name);
  if (np !== null) throw new MetainfoError(`name ${JSON.stringify(name)} ${np}`);
  const hashes = Buffer.alloc(version === 2 ? 0 : pieceCount * 20);
  const layout = { name: scan.base, multiFile: scan.multiFile, files, length, pieceLength, pieceCount };
  // per file, its pieces' v2 digests in order: the piece layer, or the root for a one-piece file
  const nodes = new Map<number, Buffer[]>();
  const digests = version === 1 ? 'sha1' : version === 2 ? 'v2' : 'both';
  let done = 0;
  for await (const [i, digest] of hashPieces(layout, scan.root, { workers: options.workers, signal: options.signal, digests })) {
    if (digest === null) throw new MetainfoError(`piece ${i}: a file changed or vanished while it was being read`);
    if (version !== 2) digest.copy(hashes, i * 20, 0, 20);
    if (version !== 1) {
      const shape = v2PieceShape(layout, i);
      if (shape !== null) {
        let list = nodes.get(shape.file);
        if (list === undefined) nodes.set(shape.file, (list = []));
        list.push(digest.subarray(digest.length - HASH_BYTES));
      }
    }
    options.onProgress?.(++done, pieceCount);
  }
  const info = new Map<string, BValue>();
  const top = new Map<string, BValue>();
  if (version !== 1) {
    const { tree, layers } = fileTree(files, nodes, pieceLength, scan.multiFile ? null : name);
    info.set('file tree', tree);
    info.set('meta version', 2);
    top.set('piece layers', layers); // libtorrent writes it empty too
  }
  if (version !== 2) {
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
  }
  info.set('name', Buffer.from(name));
  info.set('piece length', pieceLength);
  if (version !== 2) info.set('pieces', hashes);
  if (options.private) info.set('private', 1);
  if (options.source !== undefined) info.set('source', Buffer.from(options.source));
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

/**
 * The BEP 52 `file tree` (a single file sits under `single`, the torrent's name) and the
 * `piece layers` of files longer than a piece, from each file's piece digests.
 */
function fileTree(files: readonly TorrentFile[], nodes: Map<number, Buffer[]>, pieceLength: number, single: string | null): { tree: BDict; layers: BDict } {
  const tree: BDict = new Map();
  const layers: BDict = new Map();
  files.forEach((f, i) => {
    if (f.pad) return;
    let dir = tree;
    const path = single === null ? f.path : [single];
    for (const c of path) {
      const k = keyOf(c);
      let next = dir.get(k) as BDict | undefined;
      if (next === undefined) dir.set(k, (next = new Map()));
      dir = next;
    }
    const entry = new Map<string, BValue>([['length', f.length]]);
    if (f.length > 0) {
      const digests = nodes.get(i)!;
      let root = digests[0]!;
      if (f.length > pieceLength) {
        const layer = Buffer.concat(digests);
        root = rootOfPieceLayer(layer, pieceLength);
        layers.set(root.toString('latin1'), layer);
      }
      entry.set('pieces root', root);
    }
    dir.set('', entry);
  });
  return { tree, layers };
}
