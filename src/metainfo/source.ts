/**
 * What a download starts from: a torrent, or just an info hash (a magnet, a bare hash) whose
 * metadata the peers will give. The CLI's TORRENT argument and the library's `download()` both
 * come down to this.
 */
import { readFile } from 'node:fs/promises';
import { parseInfoHash, parseMagnet, type Magnet } from './magnet.js';
import { parseTorrent, type Torrent } from './torrent.js';

export interface TorrentSource {
  torrent?: Torrent;
  magnet?: Magnet;
  infoHash: Buffer;
  /** how messages name it: the file, the magnet's dn, or the hex hash */
  name: string;
  trackers: string[][];
}

/** A parsed torrent as a source. */
export function sourceOfTorrent(torrent: Torrent, name = torrent.name): TorrentSource {
  return { torrent, infoHash: torrent.infoHash, name, trackers: torrent.announce };
}

/**
 * A magnet URI as a source (MagnetError when malformed). A magnet with only a v2 (btmh) hash
 * is named on the wire, to trackers and in the DHT by that SHA-256 truncated to 20 bytes, as
 * libtorrent names a v2 torrent; its metadata is checked against the whole SHA-256.
 */
export function sourceOfMagnet(uri: string): TorrentSource {
  const m = parseMagnet(uri);
  const infoHash = m.infoHash ?? m.infoHashV2!.subarray(0, 20);
  return { magnet: m, infoHash, name: m.name ?? infoHash.toString('hex'), trackers: m.trackers.map((u) => [u]) };
}

/**
 * A source from what a program has: a parsed Torrent, a magnet URI, a bare info hash (40 hex
 * digits or 32 base32), or the path of a .torrent file (read and parsed, leniently as torrent
 * files in the wild require; `onWarning` hears what was odd about it).
 */
export async function loadSource(input: Torrent | string, onWarning: (message: string) => void = () => {}): Promise<TorrentSource> {
  if (typeof input !== 'string') return sourceOfTorrent(input);
  if (/^magnet:/i.test(input)) return sourceOfMagnet(input);
  const hash = parseInfoHash(input);
  if (hash !== null) return { infoHash: hash, name: hash.toString('hex'), trackers: [] };
  return sourceOfTorrent(parseTorrent(await readFile(input), { onWarning }), input);
}
