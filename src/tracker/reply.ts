/**
 * Announce parameters and replies shared by the HTTP and UDP trackers, and the parsing of the
 * peer lists a tracker returns (BEP 3 dictionary form, BEP 23 compact, BEP 7 peers6).
 */
import { decodeCompactPeers } from '../peers/compact.js';
import { decode } from '../bencode/decoder.js';
import type { BDict, BValue } from '../bencode/types.js';
import { normalizeIp, type PeerRecord } from '../peers/record.js';

export type AnnounceEvent = 'started' | 'completed' | 'stopped' | 'none';

export interface AnnounceParams {
  infoHash: Buffer;
  peerId: Buffer;
  port: number;
  uploaded: number;
  downloaded: number;
  left: number;
  event: AnnounceEvent;
  numwant: number;
  /** 4 random bytes, constant for a run (lets a tracker recognise us across IP changes) */
  key: number;
}

export interface AnnounceReply {
  tracker: string;
  interval: number;
  minInterval?: number;
  complete?: number;
  incomplete?: number;
  trackerId?: string;
  warning?: string;
  /** what of the reply was not used, in a phrase (peers given by name) */
  skipped?: string;
  peers: PeerRecord[];
  /** the decoded reply (HTTP), or its fields as one (UDP: peers as the compact bytes), for --raw */
  raw: BValue;
}

export interface ScrapeReply {
  tracker: string;
  seeders: number;
  leechers: number;
  downloaded: number;
}

export class TrackerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrackerError';
  }
}

/**
 * A tracker's interval below this is raised to it: an interval of 0 must not make us spin. Low
 * otherwise: a tracker that asks for short intervals (a small or private swarm where seeders
 * come and go) is obeyed, as libtorrent obeys it when its minimum is lowered.
 */
export const MIN_INTERVAL = 5;

export function compactPeers(buf: Buffer, v6: boolean, tracker: string): PeerRecord[] {
  const peers = decodeCompactPeers(buf, v6 ? 6 : 4);
  if (peers === null) throw new TrackerError(`${v6 ? 'peers6' : 'peers'} is ${buf.length} bytes, not a multiple of ${v6 ? 18 : 6}`);
  return peers.map((p) => ({ ip: p.ip, port: p.port, source: 'tracker', tracker }));
}

function num(v: BValue | undefined): number | undefined {
  return typeof v === 'number' && v >= 0 ? v : undefined;
}

/**
 * A tracker's text (failure reason, warning) bounded in length; control characters are escaped
 * where it is printed, as every line from the network is.
 */
function trackerText(b: Buffer): string {
  const t = b.toString('utf8');
  return t.length > 300 ? t.slice(0, 300) + '…' : t;
}

/** Parses an HTTP tracker's bencoded announce reply. */
export function parseAnnounceBody(body: Buffer, tracker: string): AnnounceReply {
  let d: BValue;
  try {
    d = decode(body, { maxDepth: 8, allowUnsorted: true }); // the body is already capped
  } catch (e) {
    throw new TrackerError(`reply is not bencode: ${(e as Error).message}`);
  }
  if (!(d instanceof Map)) throw new TrackerError('reply is not a dict');
  const dict = d as BDict;
  const failure = dict.get('failure reason');
  if (Buffer.isBuffer(failure)) throw new TrackerError(`failure: ${trackerText(failure)}`);
  const peers: PeerRecord[] = [];
  let named = 0;
  const p = dict.get('peers');
  if (Buffer.isBuffer(p)) peers.push(...compactPeers(p, false, tracker));
  else if (Array.isArray(p)) {
    for (const e of p) {
      if (!(e instanceof Map)) continue;
      const ipText = e.get('ip');
      const port = e.get('port');
      if (!Buffer.isBuffer(ipText) || typeof port !== 'number' || port < 1 || port > 65535) continue;
      // BEP 3 lets a tracker name a peer by DNS name: skipped, so that no tracker can make us
      // query DNS (peers/resolve.ts: a peer record's ip is always an address)
      const ip = normalizeIp(ipText.toString('latin1'));
      if (ip === null) {
        named++;
        continue;
      }
      const rec: PeerRecord = { ip, port, source: 'tracker', tracker };
      const id = e.get('peer id');
      if (Buffer.isBuffer(id) && id.length === 20) rec.peerId = id.toString('hex');
      peers.push(rec);
    }
  } else if (p !== undefined) throw new TrackerError('"peers" is neither a string nor a list');
  const p6 = dict.get('peers6');
  if (Buffer.isBuffer(p6)) peers.push(...compactPeers(p6, true, tracker));
  const interval = num(dict.get('interval'));
  const reply: AnnounceReply = { tracker, interval: Math.max(MIN_INTERVAL, interval ?? 1800), peers, raw: dict };
  const mi = num(dict.get('min interval'));
  if (mi !== undefined) reply.minInterval = Math.max(MIN_INTERVAL, mi);
  const c = num(dict.get('complete'));
  if (c !== undefined) reply.complete = c;
  const ic = num(dict.get('incomplete'));
  if (ic !== undefined) reply.incomplete = ic;
  const tid = dict.get('tracker id');
  if (Buffer.isBuffer(tid)) reply.trackerId = tid.toString('latin1');
  const w = dict.get('warning message');
  if (Buffer.isBuffer(w)) reply.warning = trackerText(w);
  if (named > 0) reply.skipped = `${named} peer${named === 1 ? '' : 's'} named by host name, not address, skipped`;
  return reply;
}
