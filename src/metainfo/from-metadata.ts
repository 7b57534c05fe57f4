/**
 * A .torrent file from metadata fetched by BEP 9: the info dict exactly as its raw bytes came
 * (so the file hashes to the magnet's info hash whatever the encoding), with the magnet's
 * trackers as `announce`/`announce-list` and its web seeds as `url-list`; a v2 torrent's
 * `piece layers` once they are fetched from peers (BEP 52: they are not part of the metadata).
 */
import { encode } from '../bencode/encoder.js';
import type { Magnet } from './magnet.js';

export function torrentFileFromMetadata(info: Buffer, magnet: Pick<Magnet, 'trackers' | 'webSeeds'>, pieceLayers?: ReadonlyMap<string, Buffer>): Buffer {
  // keys in byte order: announce, announce-list, info, piece layers, url-list
  const parts: Buffer[] = [Buffer.from('d')];
  const put = (key: string, value: Buffer): void => void parts.push(encode(Buffer.from(key)), value);
  if (magnet.trackers.length > 0) {
    put('announce', encode(magnet.trackers[0]!));
    // one tracker per tier: a magnet says nothing about tiers (BEP 12)
    if (magnet.trackers.length > 1) put('announce-list', encode(magnet.trackers.map((u) => [u])));
  }
  put('info', info);
  if (pieceLayers !== undefined && pieceLayers.size > 0) {
    // keyed by the pieces root's bytes, in byte order as canonical bencode wants
    const keys = [...pieceLayers.keys()].sort();
    put('piece layers', encode(new Map(keys.map((hex) => [Buffer.from(hex, 'hex').toString('latin1'), pieceLayers.get(hex)!]))));
  }
  if (magnet.webSeeds.length > 0) put('url-list', encode(magnet.webSeeds));
  parts.push(Buffer.from('e'));
  return Buffer.concat(parts);
}
