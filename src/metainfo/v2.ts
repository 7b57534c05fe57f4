/**
 * BEP 52 metainfo: the `file tree`, the top-level `piece layers`, and the v1/v2 agreement of a
 * hybrid. parseTorrent calls these after reading the common fields; what they find goes into
 * the same model as v1 (files with offsets in one piece index space), so storage, picker and
 * wire code need no second layout.
 */
import type { BDict, BValue } from '../bencode/types.js';
import { keyBytes } from '../bencode/types.js';
import { HASH_BYTES, MERKLE_BLOCK, rootOfPieceLayer } from './merkle.js';
import type { PathMappings } from './sanitize.js';
import { safePath } from './sanitize.js';
import { LIMITS, MetainfoError, type TorrentFile } from './torrent.js';

/** One entry of the file tree, in tree order. */
export interface V2File {
  /** safe to write (sanitize.ts) */
  path: string[];
  /** the tree's own components, only when they differ from `path` */
  rawPath?: string[];
  length: number;
  /** absent for empty files */
  piecesRoot?: Buffer;
}

/** `info.file tree/a/b`, for messages: built only for one, not for each of a million files. */
function whereOf(f: V2File): string {
  return `info.file tree/${(f.rawPath ?? f.path).join('/')}`;
}

function fail(where: string, what: string): never {
  throw new MetainfoError(`${where}: ${what}`);
}

/** The key as the user reads it: UTF-8 where it is, the raw bytes otherwise. */
function shown(key: string): string {
  return keyBytes(key).toString('utf8');
}

/**
 * The files of a `file tree`, depth first in the dict's key order (byte order in a canonical
 * file; the file's own order otherwise, as libtorrent keeps it), each path checked by the same
 * function as a v1 path.
 */
export function parseFileTree(tree: BValue | undefined, mappings: PathMappings): V2File[] {
  const top = 'info.file tree';
  if (!(tree instanceof Map)) fail(top, 'expected a dict');
  if (tree.has('')) fail(top, 'the root of the tree is a file entry (a torrent needs a name for each file)');
  const out: V2File[] = [];
  // an explicit stack: a deep tree must not overflow the JS stack
  const stack: { node: BDict; keys: string[]; at: number; path: string[] }[] = [{ node: tree, keys: [...tree.keys()], at: 0, path: [] }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.at === frame.keys.length) {
      stack.pop();
      continue;
    }
    const key = frame.keys[frame.at++]!;
    const path = [...frame.path, key];
    const where = (): string => `${top}/${path.map(shown).join('/')}`;
    if (path.length > LIMITS.pathDepth) fail(where(), `path deeper than ${LIMITS.pathDepth} components`);
    const node = frame.node.get(key);
    if (!(node instanceof Map)) fail(where(), 'expected a dict');
    if (!node.has('')) {
      stack.push({ node, keys: [...node.keys()], at: 0, path });
      continue;
    }
    if (node.size !== 1) fail(where(), 'a file entry (key "") has other keys beside it');
    const entry = node.get('');
    if (!(entry instanceof Map)) fail(`${where()}/`, 'expected a dict');
    const l = entry.get('length');
    if (typeof l !== 'number' || !Number.isSafeInteger(l) || l < 0) fail(where(), `length ${typeof l === 'number' || typeof l === 'bigint' ? `${String(l)} is out of range` : 'is missing or not an integer'}`);
    const safe = safePath(path.map(keyBytes), where(), mappings);
    const f: V2File = { path: safe.path, length: l };
    if (safe.rawPath !== undefined) f.rawPath = safe.rawPath;
    if (l > 0) {
      const root = entry.get('pieces root');
      if (!Buffer.isBuffer(root)) fail(where(), 'pieces root is missing');
      if (root.length !== HASH_BYTES) fail(where(), `pieces root is ${root.length} bytes, not ${HASH_BYTES}`);
      f.piecesRoot = root;
    }
    out.push(f);
    if (out.length > LIMITS.files) fail(top, `more than ${LIMITS.files} files`);
  }
  if (out.length === 0) fail(top, 'the tree has no files');
  return out;
}

/** BEP 52: a power of two of at least one 16 KiB block. */
export function checkV2PieceLength(pieceLength: number): void {
  if (pieceLength < MERKLE_BLOCK || (pieceLength & (pieceLength - 1)) !== 0) {
    fail('info.piece length', `${pieceLength} is not a power of two of at least ${MERKLE_BLOCK} (BEP 52)`);
  }
}

/**
 * The v2-only layout: the tree's files, each followed by an implicit pad file up to the next
 * piece boundary, so that every file starts on one; empty files take no space. The last file is
 * padded too, as libtorrent does: its v2 torrents' last piece is a whole piece on the wire (it
 * asks for 16 KiB blocks of it), so ours must be as well.
 */
export function v2Layout(files: readonly V2File[], pieceLength: number): TorrentFile[] {
  const out: TorrentFile[] = [];
  let offset = 0;
  for (const f of files) {
    const tf: TorrentFile = { path: f.path, length: f.length, offset, pad: false };
    if (f.rawPath) tf.rawPath = f.rawPath;
    if (f.piecesRoot) tf.piecesRoot = f.piecesRoot;
    out.push(tf);
    offset += f.length;
    const rem = offset % pieceLength;
    if (rem !== 0) {
      const n = pieceLength - rem;
      out.push({ path: ['.pad', String(n)], length: n, offset, pad: true });
      offset += n;
    }
  }
  return out;
}

/**
 * The top-level `piece layers`, checked against the tree: every file longer than a piece has a
 * layer of one hash per piece that hashes up to its pieces root. Keys no file names are
 * ignored with a warning (libtorrent ignores them). With `allowMissing` (metadata from a
 * magnet: the layers come from peers later) a file may have none.
 */
export function parsePieceLayers(
  value: BValue | undefined,
  files: readonly V2File[],
  pieceLength: number,
  warn: (m: string) => void,
  allowMissing = false,
): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const big = files.filter((f) => f.length > pieceLength);
  if (value === undefined && (big.length === 0 || allowMissing)) return out;
  // absent: each file says its layer is missing
  const layers = value ?? new Map<string, BValue>();
  if (!(layers instanceof Map)) fail('piece layers', 'expected a dict');
  const used = new Set<string>();
  for (const f of big) {
    const key = f.piecesRoot!.toString('latin1');
    const hex = f.piecesRoot!.toString('hex');
    used.add(key);
    if (out.has(hex)) continue; // two files of the same content share a layer
    const layer = layers.get(key);
    if (layer === undefined) {
      if (allowMissing) continue;
      fail(whereOf(f), `no entry in piece layers for its pieces root ${hex}`);
    }
    if (!Buffer.isBuffer(layer)) fail(whereOf(f), 'its piece layer is not a byte string');
    const pieces = Math.ceil(f.length / pieceLength);
    if (layer.length !== pieces * HASH_BYTES) fail(whereOf(f), `piece layer is ${layer.length} bytes, not ${pieces * HASH_BYTES} (${pieces} pieces of ${pieceLength})`);
    if (!rootOfPieceLayer(layer, pieceLength).equals(f.piecesRoot!)) fail(whereOf(f), 'piece layer does not hash to the pieces root');
    out.set(hex, layer);
  }
  let extra = 0;
  for (const k of layers.keys()) if (!used.has(k)) extra++;
  if (extra > 0) warn(`piece layers: ${extra} entries that no file longer than a piece uses were ignored`);
  return out;
}

/**
 * A hybrid's two views must be the same files in the same order with the same lengths, and the
 * v1 pad files must put each file where the v2 layout puts it (on a piece boundary), so one
 * piece index means the same bytes to a v1 and a v2 peer. Sets each v1 file's pieces root.
 */
export function checkHybrid(v1: TorrentFile[], v2: readonly V2File[], pieceLength: number, length: number): void {
  const layout = v2Layout(v2, pieceLength).filter((f) => !f.pad);
  let k = 0;
  for (let i = 0; i < v1.length; i++) {
    const f = v1[i]!;
    if (f.pad) continue;
    const where = `info.files[${i}]`;
    // the names as the torrent gives them: mapping could make two different names equal
    const name = JSON.stringify((f.rawPath ?? f.path).join('/'));
    const w = layout[k];
    if (w === undefined) fail(where, `${name} is not in the file tree (v1 and v2 views differ)`);
    const wName = JSON.stringify((w.rawPath ?? w.path).join('/'));
    if (wName !== name) fail(where, `${name} where the file tree has ${wName} (v1 and v2 views differ)`);
    if (w.length !== f.length) fail(where, `${name} is ${f.length} bytes in the v1 view, ${w.length} in the file tree`);
    if (f.length > 0 && f.offset !== w.offset) fail(where, `${name} starts at byte ${f.offset}, not on the piece boundary ${w.offset} (v1 pad files wrong or missing)`);
    if (w.piecesRoot) f.piecesRoot = w.piecesRoot;
    k++;
  }
  if (k < layout.length) fail('info.files', `the file tree has ${JSON.stringify(layout[k]!.path.join('/'))}, which the v1 view lacks`);
  const v2Pieces = Math.ceil(layout.reduce((end, f) => Math.max(end, f.offset + f.length), 0) / pieceLength);
  if (Math.ceil(length / pieceLength) !== v2Pieces) fail('info.files', `${Math.ceil(length / pieceLength)} pieces in the v1 view, ${v2Pieces} in the v2 view (trailing pad files)`);
}
