import { parseArgs } from '../cli/args.js';
import { human } from '../cli/units.js';
import { UsageError } from '../cli/errors.js';
import type { Command } from '../cli/io.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import type { Torrent } from '../metainfo/torrent.js';
import { pieceHash } from '../metainfo/pieces.js';

/** The `info` record (design.md §2), keys in the documented order. */
export function torrentSummary(t: Torrent, withPieces = false): Record<string, unknown> {
  const o: Record<string, unknown> = { infoHash: t.infoHashHex };
  if (t.infoHashV2) o['infoHashV2'] = t.infoHashV2.toString('hex');
  o['name'] = t.name;
  if (t.rawName !== undefined) o['rawName'] = t.rawName;
  Object.assign(o, {
    length: t.length,
    pieceLength: t.pieceLength,
    pieceCount: t.pieceCount,
    files: t.files.map((f) => ({ path: f.path, ...(f.rawPath && { rawPath: f.rawPath }), length: f.length, offset: f.offset, ...(f.pad && { pad: true }) })),
    private: t.private,
    announce: t.announce,
    urlList: t.urlList,
  });
  if (t.comment !== undefined) o['comment'] = t.comment;
  if (t.createdBy !== undefined) o['createdBy'] = t.createdBy;
  if (t.creationDate !== undefined) o['creationDate'] = t.creationDate;
  if (t.source !== undefined) o['source'] = t.source;
  if (withPieces) o['pieces'] = Array.from({ length: t.pieceCount }, (_, i) => pieceHash(t, i).toString('hex'));
  return o;
}


function readable(t: Torrent): string {
  const lines = [
    `name          ${t.name}`,
    `info hash     ${t.infoHashHex}${t.infoHashV2 ? `\nv2 info hash  ${t.infoHashV2.toString('hex')}` : ''}`,
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
the raw bytes of the info dict, as they stand in the file), infoHashV2 (hybrid torrents),
name, rawName?, length, pieceLength, pieceCount, files [{path, rawPath?, length, offset,
pad?}], private, announce (tiers), urlList, comment, createdBy, creationDate (seconds), source.
On a terminal it prints a readable summary instead (safe paths).

Names that are unsafe or impossible on disk ("..", "/" or "\\" inside a name, empty
components, control characters, over 240 bytes, duplicates, Windows device names) are mapped
to safe ones as libtorrent maps them (man 7 torrent-tools-formats): "name" and "path" are the
safe names every command writes and reads, "rawName" and "rawPath" the torrent's own, given
only when they differ; one warning per kind of mapping on stderr.

Torrents with unsorted dict keys or bytes after the dict are read with one warning (the info
hash still comes from the raw bytes); duplicate keys and broken structure are errors that
say what and where, exit 1, nothing on stdout.

options:
  --pieces    add the piece hashes (hex) as "pieces"
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
