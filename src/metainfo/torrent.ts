/**
 * The .torrent model (BEP 3, 12, 27, 47, 52) with validation. The info hash is the SHA-1 of the
 * raw bytes of the `info` value as they stand in the file, never of a re-encoding: a file with
 * unsorted keys must keep the hash every other client computes for it.
 */
import { createHash } from 'node:crypto';
import { decodeFirst } from '../bencode/decoder.js';
import { BencodeError } from '../bencode/errors.js';
import type { BDict, BValue, Span } from '../bencode/types.js';
import { PathMappings, resolveDuplicates, safeName, safePath, WINDOWS_RESERVED } from './sanitize.js';
import { checkHybrid, checkV2PieceLength, parseFileTree, parsePieceLayers, v2Layout, type V2File } from './v2.js';

export interface TorrentFile {
  /** path components inside the torrent (single-file: [name]), safe to write (sanitize.ts) */
  path: string[];
  /** the components as the torrent gives them, only when they differ from `path` */
  rawPath?: string[];
  length: number;
  /** byte offset of the file in the torrent's concatenated content */
  offset: number;
  /** BEP 47 pad file: never written, reads as zeros (v2-only torrents get one after each file that does not end on a piece boundary) */
  pad: boolean;
  /** BEP 52: the root of the file's merkle tree (v2 and hybrid torrents; absent for empty files and pads) */
  piecesRoot?: Buffer;
}

/** 1: BEP 3 only; 2: BEP 52 only; 'hybrid': both views of the same files. */
export type MetaVersion = 1 | 2 | 'hybrid';

export interface Torrent {
  version: MetaVersion;
  /**
   * The 20-byte hash that names the torrent on the wire, to trackers and in the DHT: the SHA-1
   * of the info bytes (v1, hybrid), or for a v2-only torrent the SHA-256 truncated to 20 bytes
   * (BEP 52, as libtorrent does).
   */
  infoHash: Buffer;
  infoHashHex: string;
  /** SHA-256 of the raw info bytes (v2 and hybrid torrents) */
  infoHashV2?: Buffer;
  infoRaw: Buffer;
  /** safe to use as a file or folder name (sanitize.ts) */
  name: string;
  /** the name as the torrent gives it, only when it differs from `name` */
  rawName?: string;
  length: number;
  pieceLength: number;
  pieceCount: number;
  /** pieceCount × 20 bytes of SHA-1 (v1, hybrid); empty for a v2-only torrent */
  pieceHashes: Buffer;
  /**
   * BEP 52 `piece layers` (outside the info dict): pieces root in hex → the file's piece-layer
   * hashes, 32 bytes each. Files of one piece or less have none (their root is their piece
   * hash). Empty for a torrent made from a magnet's metadata until the layers are fetched.
   */
  pieceLayers?: Map<string, Buffer>;
  files: TorrentFile[];
  multiFile: boolean;
  private: boolean;
  /** BEP 12 tiers */
  announce: string[][];
  urlList: string[];
  comment?: string;
  createdBy?: string;
  creationDate?: number;
  source?: string;
}

export class MetainfoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetainfoError';
  }
}

export const LIMITS = {
  torrentBytes: 10 * 1024 * 1024,
  /** libtorrent's limit (INT_MAX / 2): what it loads, we load */
  pieceLength: 2 ** 30 - 1,
  /** larger pieces are loaded with a warning, and refused with strict */
  commonPieceLength: 128 * 1024 * 1024,
  pieces: 1 << 20,
  files: 1 << 20,
  pathDepth: 64,
  componentBytes: 255,
};

export interface ParseOptions {
  /**
   * refuse non-canonical bencode (unsorted keys, bytes after the dict), paths that need mapping
   * to safe names (sanitize.ts) and pieces over LIMITS.commonPieceLength, instead of warning
   */
  strict?: boolean;
  /** one call per kind of problem tolerated */
  onWarning?: (message: string) => void;
  /**
   * BEP 52: accept files longer than a piece without their `piece layers` (a torrent made from
   * a magnet's metadata: the layers come from peers); `pieceLayers` then lacks them
   */
  allowMissingLayers?: boolean;
}

/** Why a path component from a torrent is unsafe, or null. */
export function componentProblem(c: string): string | null {
  if (c === '') return 'is empty';
  if (c === '.' || c === '..') return `is "${c}"`;
  if (c.includes('/') || c.includes('\\')) return 'contains a path separator';
  if (c.includes('\0')) return 'contains a NUL byte';
  if (Buffer.byteLength(c) > LIMITS.componentBytes) return `is longer than ${LIMITS.componentBytes} bytes`;
  if (WINDOWS_RESERVED.test(c)) return 'is a reserved device name';
  return null;
}

function fail(where: string, what: string): never {
  throw new MetainfoError(where ? `${where}: ${what}` : what);
}

function optText(d: BDict, key: string): string | undefined {
  const v = d.get(key);
  return Buffer.isBuffer(v) ? v.toString('utf8') : undefined;
}

function int(v: BValue | undefined, where: string, min: number, max: number): number {
  if (typeof v === 'bigint' || (typeof v === 'number' && (v < min || v > max))) fail(where, `${String(v)} is out of range [${min}, ${max}]`);
  if (typeof v !== 'number') fail(where, 'expected an integer');
  return v;
}

function dict(v: BValue | undefined, where: string): BDict {
  if (!(v instanceof Map)) fail(where, 'expected a dict');
  return v;
}

/** The raw components of a path list; `where` is a function: the loop would build its strings for every file. */
function pathList(v: BValue | undefined, where: () => string): Buffer[] {
  if (!Array.isArray(v)) fail(where(), 'expected a list of path components');
  if (v.length === 0) fail(where(), 'empty path');
  if (v.length > LIMITS.pathDepth) fail(where(), `path deeper than ${LIMITS.pathDepth} components`);
  for (let i = 0; i < v.length; i++) if (!Buffer.isBuffer(v[i])) fail(`${where()}[${i}]`, 'expected a byte string');
  return v as Buffer[];
}

function tiers(top: BDict, warn: (m: string) => void): string[][] {
  const list = top.get('announce-list');
  if (Array.isArray(list)) {
    const out: string[][] = [];
    for (const tier of list) {
      if (!Array.isArray(tier)) {
        warn('announce-list: a tier that is not a list was ignored');
        continue;
      }
      const urls = tier.filter((u): u is Buffer => Buffer.isBuffer(u)).map((u) => u.toString('utf8')).filter((u) => u.length > 0);
      if (urls.length > 0) out.push(urls);
    }
    // BEP 12: with announce-list present, announce is ignored
    if (out.length > 0) return out;
  }
  const a = top.get('announce');
  return Buffer.isBuffer(a) && a.length > 0 ? [[a.toString('utf8')]] : [];
}

/** Gives files whose safe paths collide distinct ones (sanitize.ts), keeping the first as rawPath. */
function renameDuplicates(files: TorrentFile[], where: (i: number) => string, mappings: PathMappings): void {
  for (const [i, path] of resolveDuplicates(files, where, mappings)) {
    const f = files[i]!;
    f.rawPath ??= f.path;
    f.path = path;
  }
}

/** Parses and validates a .torrent file. Throws MetainfoError saying what is wrong and where. */
export function parseTorrent(buf: Buffer, options: ParseOptions = {}): Torrent {
  if (buf.length > LIMITS.torrentBytes) fail('', `torrent file is larger than ${LIMITS.torrentBytes} bytes`);
  const warned = new Set<string>();
  const warn = (m: string): void => {
    if (!warned.has(m)) {
      warned.add(m);
      options.onWarning?.(m);
    }
  };
  const strict = options.strict ?? false;
  const spans = new WeakMap<object, Span>();
  let top: BValue;
  let end: number;
  try {
    ({ value: top, end } = decodeFirst(buf, {
      spans,
      spanDepth: 1, // only the top-level dict's values: the info dict's raw bytes
      allowUnsorted: !strict,
      allowDuplicates: false, // two readers could disagree on which value counts
      onLenient: (_kind, at) => warn(`byte ${at}: dict keys out of order (non-canonical bencode; the info hash is kept from the raw bytes)`),
      maxDepth: LIMITS.pathDepth + 8, // a v2 file tree nests one dict per path component
    }));
  } catch (e) {
    if (e instanceof BencodeError) fail('', `not valid bencode: ${e.message}`);
    throw e;
  }
  if (end !== buf.length) {
    if (strict) fail('', `byte ${end}: ${buf.length - end} bytes after the torrent's dict`);
    warn(`byte ${end}: ${buf.length - end} bytes after the torrent's dict were ignored`);
  }
  const t = dict(top, 'torrent');
  const info = dict(t.get('info'), 'info');
  const span = spans.get(info)!;
  const infoRaw = buf.subarray(span.start, span.end);

  // first: a newer version may change what every other field means
  const metaVersion = info.get('meta version');
  if (typeof metaVersion === 'number' && metaVersion > 2) fail('info.meta version', `version ${metaVersion} is newer than this program reads (2, BEP 52)`);
  if (metaVersion !== undefined && metaVersion !== 1 && metaVersion !== 2) fail('info.meta version', `unknown version ${String(metaVersion)}`);
  const hasV1 = info.has('pieces');

  const mappings = new PathMappings(strict);
  const nameValue = info.get('name.utf-8') ?? info.get('name');
  if (!Buffer.isBuffer(nameValue)) fail('info.name', 'expected a byte string');
  const rawName = nameValue.toString('utf8');
  const name = safeName(nameValue, () => createHash('sha1').update(infoRaw).digest('hex'), mappings);
  const pieceLength = int(info.get('piece length'), 'info.piece length', 1, strict ? LIMITS.commonPieceLength : LIMITS.pieceLength);
  if (pieceLength > LIMITS.commonPieceLength) warn(`info.piece length: ${pieceLength} bytes (over ${LIMITS.commonPieceLength}): each piece in flight or being checked is held in memory whole`);
  let v2Files: V2File[] | undefined;
  if (metaVersion === 2) {
    checkV2PieceLength(pieceLength);
    v2Files = parseFileTree(info.get('file tree'), mappings);
  }
  const pieceLayers = v2Files ? parsePieceLayers(t.get('piece layers'), v2Files, pieceLength, warn, options.allowMissingLayers) : undefined;
  if (v2Files && !hasV1) return v2Only(t, info, infoRaw, name, rawName, pieceLength, v2Files, pieceLayers!, mappings, warn);

  const piecesRaw = info.get('pieces');
  if (!Buffer.isBuffer(piecesRaw)) fail('info.pieces', 'expected a byte string');
  if (piecesRaw.length % 20 !== 0) fail('info.pieces', `length ${piecesRaw.length} is not a multiple of 20`);

  const files: TorrentFile[] = [];
  let length = 0;
  const multiFile = info.has('files');
  if (multiFile) {
    if (info.has('length')) fail('info', 'has both "length" and "files"');
    const list = info.get('files');
    if (!Array.isArray(list)) fail('info.files', 'expected a list');
    if (list.length === 0) fail('info.files', 'the file list is empty');
    if (list.length > LIMITS.files) fail('info.files', `more than ${LIMITS.files} files`);
    for (let i = 0; i < list.length; i++) {
      const where = (): string => `info.files[${i}]`;
      const f = list[i];
      if (!(f instanceof Map)) fail(where(), 'expected a dict');
      const l = f.get('length');
      const len = typeof l === 'number' && l >= 0 ? l : int(l, `${where()}.length`, 0, Number.MAX_SAFE_INTEGER);
      const attr = f.get('attr');
      const pad = Buffer.isBuffer(attr) && attr.includes(0x70); // 'p'
      const rawList = f.get('path.utf-8') ?? f.get('path');
      let file: TorrentFile;
      if (pad && (rawList === undefined || (Array.isArray(rawList) && rawList.length === 0))) {
        // BEP 47 gives pad files a path, libtorrent needs none: it never reaches the disk
        mappings.path('pad-path', `${where()}.path`, rawList === undefined ? 'expected a list of path components' : 'empty path');
        file = { path: ['.pad', String(len)], length: len, offset: length, pad };
      } else {
        const safe = safePath(pathList(rawList, () => `${where()}.path`), `${where()}.path`, mappings);
        file = { path: safe.path, length: len, offset: length, pad };
        if (safe.rawPath !== undefined) file.rawPath = safe.rawPath;
      }
      files.push(file);
      length += len;
      if (length > Number.MAX_SAFE_INTEGER) fail('info.files', 'total length is too large');
    }
    renameDuplicates(files, (i) => `info.files[${i}].path`, mappings);
  } else {
    length = int(info.get('length'), 'info.length', 0, Number.MAX_SAFE_INTEGER);
    files.push(name === rawName ? { path: [name], length, offset: 0, pad: false } : { path: [name], rawPath: [rawName], length, offset: 0, pad: false });
  }
  for (const w of mappings.warnings()) warn(w);
  if (length === 0) fail('info', 'the torrent has no data (total length 0)');
  const pieceCount = Math.ceil(length / pieceLength);
  if (pieceCount > LIMITS.pieces) fail('info.pieces', `more than ${LIMITS.pieces} pieces`);
  if (piecesRaw.length / 20 !== pieceCount) {
    fail('info.pieces', `${piecesRaw.length / 20} hashes for ${pieceCount} pieces (${length} bytes in pieces of ${pieceLength})`);
  }
  if (v2Files) checkHybrid(files, v2Files, pieceLength, length);

  const out = common(t, info, warn, {
    version: v2Files ? 'hybrid' : 1,
    infoHash: createHash('sha1').update(infoRaw).digest(),
    infoRaw,
    name,
    length,
    pieceLength,
    pieceCount,
    pieceHashes: piecesRaw,
    files,
    multiFile,
  });
  if (name !== rawName) out.rawName = rawName;
  if (v2Files) {
    out.infoHashV2 = createHash('sha256').update(infoRaw).digest();
    out.pieceLayers = pieceLayers!;
  }
  return out;
}

/**
 * A v2-only torrent in the common model: the tree's files with implicit pads, no SHA-1 piece
 * hashes, and as the wire's 20-byte name the SHA-256 of the info bytes truncated (BEP 52).
 */
function v2Only(
  t: BDict,
  info: BDict,
  infoRaw: Buffer,
  infoName: string,
  rawInfoName: string,
  pieceLength: number,
  v2Files: V2File[],
  pieceLayers: Map<string, Buffer>,
  mappings: PathMappings,
  warn: (m: string) => void,
): Torrent {
  // one file at the top of the tree is a single-file torrent, named by its key (as libtorrent)
  const multiFile = !(v2Files.length === 1 && v2Files[0]!.path.length === 1);
  const single = multiFile ? undefined : v2Files[0]!;
  const name = single ? single.path[0]! : infoName;
  const files = v2Layout(v2Files, pieceLength);
  renameDuplicates(files, (i) => `info.file tree/${(files[i]!.rawPath ?? files[i]!.path).join('/')}`, mappings);
  for (const w of mappings.warnings()) warn(w);
  const last = files[files.length - 1]!;
  const length = last.offset + last.length;
  if (length === 0) fail('info', 'the torrent has no data (total length 0)');
  if (length > Number.MAX_SAFE_INTEGER) fail('info.file tree', 'total length is too large');
  const pieceCount = Math.ceil(length / pieceLength);
  if (pieceCount > LIMITS.pieces) fail('info.file tree', `more than ${LIMITS.pieces} pieces`);
  const infoHashV2 = createHash('sha256').update(infoRaw).digest();
  const out = common(t, info, warn, {
    version: 2,
    infoHash: infoHashV2.subarray(0, 20),
    infoRaw,
    name,
    length,
    pieceLength,
    pieceCount,
    pieceHashes: Buffer.alloc(0),
    files,
    multiFile,
  });
  out.infoHashV2 = infoHashV2;
  out.pieceLayers = pieceLayers;
  if (single?.rawPath) out.rawName = single.rawPath[0]!;
  else if (multiFile && infoName !== rawInfoName) out.rawName = rawInfoName;
  return out;
}

type Core = Pick<Torrent, 'version' | 'infoHash' | 'infoRaw' | 'name' | 'length' | 'pieceLength' | 'pieceCount' | 'pieceHashes' | 'files' | 'multiFile'>;

/** The fields every version reads the same way. */
function common(t: BDict, info: BDict, warn: (m: string) => void, core: Core): Torrent {
  let creationDate: number | undefined;
  const cd = t.get('creation date');
  if (typeof cd === 'number' && cd > 0) creationDate = cd > 1e11 ? Math.floor(cd / 1000) : cd; // milliseconds seen in the wild
  const urlListRaw = t.get('url-list');
  const urlList = Buffer.isBuffer(urlListRaw)
    ? [urlListRaw.toString('utf8')].filter((u) => u.length > 0)
    : Array.isArray(urlListRaw)
      ? urlListRaw.filter((u): u is Buffer => Buffer.isBuffer(u)).map((u) => u.toString('utf8'))
      : [];

  const out: Torrent = {
    ...core,
    infoHashHex: core.infoHash.toString('hex'),
    private: info.get('private') === 1,
    announce: tiers(t, warn),
    urlList,
  };
  const comment = optText(t, 'comment');
  if (comment !== undefined) out.comment = comment;
  const createdBy = optText(t, 'created by');
  if (createdBy !== undefined) out.createdBy = createdBy;
  if (creationDate !== undefined) out.creationDate = creationDate;
  const source = optText(info, 'source');
  if (source !== undefined) out.source = source;
  return out;
}
