/**
 * Safe local names for the paths a torrent gives. Other clients load torrents with odd names and
 * map them rather than refuse the download; these are libtorrent 2.0's rules on Linux
 * (`sanitize_append_path_element`, `resolve_duplicate_filenames` in torrent_info.cpp), byte for
 * byte, so a download lands where qBittorrent or Deluge would put it, plus one rule of our own
 * (Windows device names get a "_" in front). man 7 torrent-tools-formats lists the rules; with
 * `strict` the first thing that would be mapped is an error instead.
 */
// a cycle with torrent.ts, harmless: the class is only used once both have loaded
import { MetainfoError } from './torrent.js';

export type RawComponent = Buffer | string;

/** What a mapping did; one warning per kind names how many paths it touched. */
export type MappingKind =
  | 'empty'
  | 'dot'
  | 'separator'
  | 'nul'
  | 'long'
  | 'reserved'
  | 'control'
  | 'encoding'
  | 'format'
  | 'vanished'
  | 'duplicate'
  | 'pad-path';

/** The order a strict parse reports problems in (the first one met is the error). */
const ORDER: readonly MappingKind[] = ['empty', 'dot', 'separator', 'nul', 'long', 'reserved', 'control', 'encoding', 'format'];

/** How a strict parse says each kind of component, after `path component "…"`. */
const PROBLEM: Record<MappingKind, string> = {
  empty: 'is empty',
  dot: 'is "." or ".." (or nothing but that once "/" and "\\" are removed)',
  separator: 'contains a path separator',
  nul: 'contains a NUL byte',
  long: `is longer than 240 bytes`,
  reserved: 'is a reserved device name',
  control: 'contains a control character',
  encoding: 'is not valid UTF-8',
  format: 'contains an invisible direction mark',
  vanished: 'has no component left',
  duplicate: 'is a duplicate path',
  'pad-path': 'is missing (a pad file)',
};

/** What the one warning per kind says, before the count. */
const WARNING: Record<MappingKind, string> = {
  empty: 'an empty path component was named "_"',
  dot: 'a path component "." or ".." was dropped',
  separator: 'a "/" or "\\" inside a path component was removed',
  nul: 'a NUL byte in a path component was removed',
  long: 'a path component longer than 240 bytes was shortened (its extension kept)',
  reserved: 'a Windows device name (CON, NUL, COM1, …) got a "_" in front',
  control: 'a control character in a path component was replaced by "_"',
  encoding: 'bytes in a path component that are not UTF-8 were replaced by "_"',
  format: 'an invisible direction mark (U+200E, U+202E, …) in a path component was removed',
  vanished: 'a path with no component left was named "_"',
  duplicate: 'a path used twice (ignoring ASCII case, or also as a directory) got a ".N" before its extension',
  'pad-path': 'a pad file without a path was named ".pad/LENGTH"',
};

export const WINDOWS_RESERVED = /^(?:con|prn|aux|nul|com[0-9]|lpt[0-9])(?:\..*)?$/i;

/** libtorrent's limit: a component is cut at 240 bytes, keeping an extension of up to 9 bytes. */
const CUT_AT = 240;
const MAX_COMPONENT = 255;

/** Code points removed outright: they turn text around ("x\u202Egpj.exe" shows as "xexe.jpg"). */
const FORMAT_MARKS = new Set([0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e]);

/**
 * One UTF-8 sequence at `i`, as libtorrent reads it: [code point or -1, bytes taken]. An invalid
 * lead byte takes 1 byte, a 5-byte lead takes 5, a bad or short sequence all it claimed.
 */
function codePoint(b: Buffer, i: number): [number, number] {
  const c = b[i]!;
  if (c < 0x80) return [c, 1];
  const n = c >> 5 === 0b110 ? 2 : c >> 4 === 0b1110 ? 3 : c >> 3 === 0b11110 ? 4 : c >> 2 === 0b111110 ? 5 : 0;
  if (n === 0) return [-1, 1];
  if (n > 4) return [-1, n];
  if (n > b.length - i) return [-1, b.length - i];
  let ch = c & (n === 2 ? 0x1f : n === 3 ? 0x0f : 0x07);
  for (let k = 1; k < n; k++) {
    const d = b[i + k]!;
    if ((d & 0xc0) !== 0x80) return [-1, n];
    ch = (ch << 6) | (d & 0x3f);
  }
  const overlong = (n === 2 && ch < 0x80) || (n === 3 && ch < 0x800) || (n === 4 && ch < 0x10000);
  if (overlong || ch > 0x10ffff || (ch >= 0xd800 && ch <= 0xdfff)) return [-1, n];
  return [ch, n];
}

export interface ComponentMapping {
  /** the safe component, or null when the component is dropped */
  text: string | null;
  kinds: Set<MappingKind>;
}

const bytesOf = (c: RawComponent): Buffer => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c);

/** The safe form of one path component (a pure function of its bytes). */
export function mapComponent(raw: RawComponent): ComponentMapping {
  const b = bytesOf(raw);
  const kinds = new Set<MappingKind>();
  if (b.length === 1 && b[0] === 0x2e) return { text: null, kinds: new Set(['dot']) };
  if (b.length === 0) return { text: '_', kinds: new Set(['empty']) };
  const plain = plainAscii(b);
  if (plain !== null) return reserved(plain, kinds);
  const out = Buffer.allocUnsafe(b.length + 16);
  let added = 0;
  let dots = 0;
  let extension = false;
  for (let i = 0, n = 0; i < b.length; i += n) {
    let cp: number;
    [cp, n] = codePoint(b, i);
    // NUL is dropped, not replaced: libtorrent's strchr("/\\", c) also matches the terminator
    if (cp === 0x2f || cp === 0x5c || cp === 0 || FORMAT_MARKS.has(cp)) {
      kinds.add(cp === 0 ? 'nul' : cp < 0x80 ? 'separator' : 'format');
      continue;
    }
    if (cp < 0x20) {
      out[added++] = 0x5f; // '_'
      kinds.add(cp < 0 ? 'encoding' : 'control');
      continue;
    }
    b.copy(out, added, i, i + n);
    added += n;
    if (cp === 0x2e) dots++;
    if (added >= CUT_AT && !extension) {
      let dot = -1;
      for (let j = b.length - 1; j > Math.max(b.length - 10, i); j--) {
        if (b[j] === 0x2e) {
          dot = j;
          break;
        }
      }
      if (dot === -1) {
        if (i + n < b.length) kinds.add('long');
        break;
      }
      extension = true;
      if (dot > i + n) kinds.add('long');
      n = dot - i; // the loop goes on at the extension's dot
    }
  }
  if (added === dots && added <= 2) {
    kinds.add('dot');
    return { text: null, kinds };
  }
  return reserved(out.toString('utf8', 0, added), kinds);
}

/** Ours, not libtorrent's on Linux: these names cannot be made on Windows (or a share it mounts). */
function reserved(text: string, kinds: Set<MappingKind>): ComponentMapping {
  if (!WINDOWS_RESERVED.test(text)) return { text, kinds };
  kinds.add('reserved');
  return { text: `_${text}`, kinds };
}

/**
 * The text of a component no rule but the device names touches (printable ASCII without "/"
 * or "\\", short, not all dots), or null: most names are, and skip the byte-by-byte copy.
 */
function plainAscii(b: Buffer): string | null {
  if (b.length >= CUT_AT) return null;
  let dots = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c < 0x20 || c > 0x7e || c === 0x2f || c === 0x5c) return null;
    if (c === 0x2e) dots++;
  }
  return dots === b.length && dots <= 2 ? null : b.toString('latin1');
}

/** Counts the mappings of one torrent, or refuses the first one when strict. */
export class PathMappings {
  private readonly counts = new Map<MappingKind, number>();
  private readonly names: string[] = [];

  constructor(readonly strict: boolean) {}

  /** `where` names the place (info.files[3].path[1]); `raw` is the component as text. */
  component(kinds: ReadonlySet<MappingKind>, where: string, raw: string): void {
    if (this.strict) {
      const first = ORDER.find((k) => kinds.has(k));
      if (first !== undefined) throw new MetainfoError(`${where}: path component ${JSON.stringify(raw)} ${problemOf(first, raw)}`);
    }
  }

  /** One path (a file, or the name) counted once per kind. */
  count(kinds: Iterable<MappingKind>): void {
    for (const k of new Set(kinds)) this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  /** A path-level mapping: refused when strict with `message`. */
  path(kind: MappingKind, where: string, message: string): void {
    if (this.strict) throw new MetainfoError(`${where}: ${message}`);
    this.count([kind]);
  }

  /** The torrent's name was mapped: one warning of its own. */
  name(raw: string, safe: string): void {
    this.names.push(`info.name ${JSON.stringify(raw)} is used as ${JSON.stringify(safe)}`);
  }

  warnings(): string[] {
    const out = [...this.names];
    for (const k of Object.keys(WARNING) as MappingKind[]) {
      const n = this.counts.get(k);
      if (n !== undefined) out.push(`${WARNING[k]} (${n} path${n === 1 ? '' : 's'}; torrent-tools info --json shows rawPath)`);
    }
    return out;
  }
}

function problemOf(kind: MappingKind, raw: string): string {
  return kind === 'dot' && (raw === '.' || raw === '..') ? `is "${raw}"` : PROBLEM[kind];
}

export interface SafePath {
  path: string[];
  /** the components as the torrent gives them, when they differ from `path` */
  rawPath?: string[];
}

const textOf = (c: RawComponent): string => (typeof c === 'string' ? c : c.toString('utf8'));

/**
 * The entry point for a file's path (v1 `path` list or v2 `file tree` keys, without the
 * torrent's name): each component mapped, dropped ones left out, and "_" when none is left.
 * Duplicates are a second pass over every file (`resolveDuplicates`).
 */
export function safePath(raw: readonly RawComponent[], where: string, mappings: PathMappings): SafePath {
  const path: string[] = [];
  const kinds: MappingKind[] = [];
  for (let i = 0; i < raw.length; i++) {
    const m = mapComponent(raw[i]!);
    if (m.kinds.size > 0) {
      mappings.component(m.kinds, `${where}[${i}]`, textOf(raw[i]!));
      kinds.push(...m.kinds);
    }
    if (m.text !== null) path.push(m.text);
  }
  if (path.length === 0) {
    path.push('_');
    kinds.push('vanished');
  }
  mappings.count(kinds);
  if (kinds.length === 0) return { path };
  return { path, rawPath: raw.map(textOf) };
}

/**
 * The torrent's name (the folder of a multi-file torrent, the file of a single-file one): a
 * name that maps to nothing becomes the info hash in hex, as libtorrent names such a folder
 * (libtorrent refuses such a single-file torrent; we name the file the same way).
 */
export function safeName(raw: RawComponent, infoHashHex: () => string, mappings: PathMappings): string {
  const m = mapComponent(raw);
  if (m.kinds.size === 0) return m.text!;
  const text = textOf(raw);
  if (mappings.strict) {
    const first = ORDER.find((k) => m.kinds.has(k))!;
    throw new MetainfoError(`info.name: ${JSON.stringify(text)} ${problemOf(first, text)}`);
  }
  const safe = m.text ?? infoHashHex();
  mappings.name(text, safe);
  return safe;
}

export interface LaidOutFile {
  path: string[];
  pad: boolean;
  length: number;
}

/** ASCII-only lower case, as libtorrent compares paths (its to_lower). */
const fold = (s: string): string => s.replace(/[A-Z]+/g, (m) => m.toLowerCase());

/**
 * Distinct names for files whose safe paths collide, libtorrent's way: every directory is
 * taken first, then each file in order keeps its path unless a directory or an earlier file
 * has it (ignoring ASCII case); pad files of the same length may share one. A colliding file
 * becomes "base.N.ext" with the smallest N free. Returns the new paths by file index.
 */
export function resolveDuplicates(files: readonly LaidOutFile[], where: (i: number) => string, mappings: PathMappings): Map<number, string[]> {
  const taken = new Map<string, number>(); // folded path → file index, or -1 for a directory
  for (const f of files) {
    let d = '';
    for (let k = 0; k < f.path.length - 1; k++) {
      d += (k === 0 ? '' : '/') + fold(f.path[k]!);
      if (!taken.has(d)) taken.set(d, -1);
    }
  }
  const renamed = new Map<number, string[]>();
  const next = new Map<string, number>(); // folded base + ext → last N used: a later probe starts there
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    const key = fold(f.path.join('/'));
    const other = taken.get(key);
    if (other === undefined) {
      taken.set(key, i);
      continue;
    }
    if (other >= 0 && f.pad && files[other]!.pad && files[other]!.length === f.length) continue;
    mappings.path('duplicate', where(i), other < 0 ? `${JSON.stringify(f.path.join('/'))} is also a directory of another file` : `duplicate path ${JSON.stringify(f.path.join('/'))}`);
    const dir = f.path.slice(0, -1);
    const last = f.path[f.path.length - 1]!;
    const dot = last.lastIndexOf('.');
    const ext = dot < 0 ? '' : last.slice(dot);
    let base = dot < 0 ? last : last.slice(0, dot);
    const memo = fold([...dir, base].join('/')) + '\0' + fold(ext);
    let n = next.get(memo) ?? 0;
    let name: string;
    let full: string;
    do {
      n++;
      const suffix = `.${n}${ext}`;
      // ours: keep the component within 255 bytes (libtorrent would let it grow past)
      while (Buffer.byteLength(base) + Buffer.byteLength(suffix) > MAX_COMPONENT) base = [...base].slice(0, -1).join('');
      name = base + suffix;
      full = fold([...dir, name].join('/'));
    } while (taken.has(full));
    next.set(memo, n);
    taken.set(full, i);
    renamed.set(i, [...dir, name]);
  }
  return renamed;
}
