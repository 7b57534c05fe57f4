import { parseArgs } from '../cli/args.js';
import { human } from '../cli/units.js';
import { UsageError } from '../cli/errors.js';
import type { Command } from '../cli/io.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import type { Torrent, TorrentFile } from '../metainfo/torrent.js';
import { pieceHash, v2PieceHash } from '../metainfo/pieces.js';

/** The `info` record (design.md §2), keys in the documented order. */
export function torrentSummary(t: Torrent, withPieces = false): Record<string, unknown> {
  const o: Record<string, unknown> = { infoHash: t.infoHashHex };
  if (t.infoHashV2) o['infoHashV2'] = t.infoHashV2.toString('hex');
  o['metaVersion'] = t.version;
  o['name'] = t.name;
  if (t.rawName !== undefined) o['rawName'] = t.rawName;
  Object.assign(o, {
    length: t.length,
    pieceLength: t.pieceLength,
    pieceCount: t.pieceCount,
    files: t.files.map(fileRecord),
    private: t.private,
    announce: t.announce,
    urlList: t.urlList,
  });
  if (t.comment !== undefined) o['comment'] = t.comment;
  if (t.createdBy !== undefined) o['createdBy'] = t.createdBy;
  if (t.creationDate !== undefined) o['creationDate'] = t.creationDate;
  if (t.source !== undefined) o['source'] = t.source;
  if (t.pieceLayers) o['pieceLayers'] = t.pieceLayers.size;
  if (withPieces) {
    const v2 = (): Array<string | null> => Array.from({ length: t.pieceCount }, (_, i) => v2PieceHash(t, i)?.toString('hex') ?? null);
    // a v2-only torrent has no SHA-1s: its pieces are the merkle digests
    if (t.version === 2) o['pieces'] = v2();
    else o['pieces'] = Array.from({ length: t.pieceCount }, (_, i) => pieceHash(t, i).toString('hex'));
    if (t.version === 'hybrid') o['piecesV2'] = v2();
  }
  return o;
}

function fileRecord(f: TorrentFile): Record<string, unknown> {
  const o: Record<string, unknown> = { path: f.path };
  if (f.rawPath) o['rawPath'] = f.rawPath;
  Object.assign(o, { length: f.length, offset: f.offset });
  if (f.pad) o['pad'] = true;
  if (f.piecesRoot) o['piecesRoot'] = f.piecesRoot.toString('hex');
  return o;
}

const VERSION_TEXT = { 1: '1 (BEP 3)', 2: '2 (BEP 52, v2 only)', hybrid: 'hybrid (v1 and v2 views of the same files)' } as const;

function readable(t: Torrent): string {
  const lines = [
    `name          ${t.name}`,
    `info hash     ${t.infoHashHex}${t.infoHashV2 ? `\nv2 info hash  ${t.infoHashV2.toString('hex')}` : ''}`,
    `version       ${VERSION_TEXT[t.version]}`,
    `size          ${human(t.length)} (${t.length} bytes) in ${t.pieceCount} pieces of ${human(t.pieceLength)}`,
    `private       ${t.private ? 'yes' : 'no'}`,
  ];
  t.announce.forEach((tier, i) => lines.push(`${i === 0 ? 'trackers' : '        '}      ${tier.join(', ')}`));
  if (t.urlList.length) lines.push(`web seeds     ${t.urlList.join(', ')}`);
  if (t.comment !== undefined) lines.push(`comment       ${t.comment}`);
  if (t.createdBy !== undefined) lines.push(`created by    ${t.createdBy}`);
  if (t.creationDate !== undefined) lines.push(`created       ${new Date(t.creationDate * 1000).toISOString()}`);
  if (t.source !== undefined) lines.push(`source        ${t.source}`);
  const real = t.files.filter((f) => !f.pad);
  lines.push(`files         ${real.length}`);
  for (const f of real.slice(0, 50)) lines.push(`  ${human(f.length).padStart(10)}  ${f.path.join('/')}`);
  if (real.length > 50) lines.push(`  … ${real.length - 50} more (torrent-tools info x.torrent | jq '.files[]')`);
  return lines.join('\n') + '\n';
}

export const info: Command = {
  name: 'info',
  synopsis: '[FILE|-] [--pieces] [--json] [--strict]',
  help: `usage: torrent-tools info [FILE|-] [options]

Reads a .torrent file (or stdin) and prints one compact JSON object: infoHash (the SHA-1 of
the raw bytes of the info dict, as they stand in the file; for a v2-only torrent the SHA-256
truncated to 20 bytes, the hash the wire uses), infoHashV2 (v2 and hybrid torrents: the
SHA-256), metaVersion (1, 2 or "hybrid"), name, rawName?, length, pieceLength, pieceCount,
files [{path, rawPath?, length, offset, pad?, piecesRoot?}], private, announce (tiers),
urlList, comment, createdBy, creationDate (seconds), source, pieceLayers (v2 and hybrid: how
many files have a piece layer). A v2-only torrent's files are listed with the pad files that
put each file on a piece boundary. On a terminal it prints a readable summary instead (safe
paths).

Names that are unsafe or impossible on disk ("..", "/" or "\\" inside a name, empty
components, control characters, over 240 bytes, duplicates, Windows device names) are mapped
to safe ones as libtorrent maps them (man 7 torrent-tools-formats): "name" and "path" are the
safe names every command writes and reads, "rawName" and "rawPath" the torrent's own, given
only when they differ; one warning per kind of mapping on stderr.

v2 and hybrid torrents are checked as strictly as v1 ones: every non-empty file has a pieces
root, every file longer than a piece has a piece layer that hashes to it, and a hybrid's v1
file list (with its pad files) describes the same files as its file tree.

Torrents with unsorted dict keys or bytes after the dict are read with one warning (the info
hash still comes from the raw bytes); duplicate keys and broken structure are errors that
say what and where, exit 1, nothing on stdout.

options:
  --pieces    add the piece hashes (hex) as "pieces" (v2-only: the SHA-256 piece-layer
              digests; hybrid: the SHA-1s, and the v2 digests as "piecesV2")
  --json      JSON even on a terminal
  --strict    refuse non-canonical bencode, names that need mapping and pieces over 128 MiB
  -h, --help  show this help

examples:
  torrent-tools info x.torrent | jq -r .infoHash
  torrent-tools info x.torrent | jq -r '.files[] | select(.pad | not) | .path | join("/")'
`,
  async run(argv, io) {
    const a = parseArgs(argv, { boolean: ['pieces', 'json', 'strict'] });
    if (a.positional.length > 1) throw new UsageError('expected at most one FILE');
    const src = await loadTorrentArg(a.positional[0] ?? '-', io, 'info', { strict: a.bool('strict') });
    const t = src.torrent!;
    if (io.stdout.isTTY && !a.bool('json')) io.stdout.write(readable(t));
    else io.stdout.write(JSON.stringify(torrentSummary(t, a.bool('pieces'))) + '\n');
    return 0;
  },
};
