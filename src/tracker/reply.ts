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
  /** seconds until the next regular announce, clamped to [MIN_INTERVAL, MAX_INTERVAL] */
  interval: number;
  /** the least spacing of announces made ahead of schedule, clamped alike */
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

/**
 * A tracker's interval above this (one day) is lowered to it: no reply can silence us for good,
 * and every wait stays far below setTimeout's limit (2^31−1 ms, about 24.8 days; past it Node
 * warns and fires after 1 ms, which made a huge interval a spin).
 */
export const MAX_INTERVAL = 86_400;

/** The interval when a tracker gives none, or something that is not an integer. */
export const DEFAULT_INTERVAL = 1800;

/**
 * A tracker's interval or min interval, in seconds, made safe to wait on: an integer (a bencode
 * bigint too) is clamped to [MIN_INTERVAL, MAX_INTERVAL], so a negative one is the floor and a
 * huge one the ceiling; anything else (absent, NaN, a string) is `fallback`.
 */
export function clampInterval(v: unknown, fallback = DEFAULT_INTERVAL): number {
  if (typeof v === 'bigint') return v < BigInt(MIN_INTERVAL) ? MIN_INTERVAL : v > BigInt(MAX_INTERVAL) ? MAX_INTERVAL : Number(v);
  if (typeof v !== 'number' || Number.isNaN(v)) return fallback;
  return Math.min(MAX_INTERVAL, Math.max(MIN_INTERVAL, Math.floor(v)));
}

/**
 * Seconds until the next regular announce after these replies: the shortest of their intervals.
 * `min interval` plays no part: it only spaces out announces made ahead of the schedule (a
 * tracker saying `interval 1, min interval 1000000` gets the floor, not eleven days of silence).
 * With no reply at all, `retry`.
 */
export function nextAnnounceIn(replies: readonly AnnounceReply[], retry = 60): number {
  if (replies.length === 0) return retry;
  return Math.min(...replies.map((r) => clampInterval(r.interval)));
}

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
  const reply: AnnounceReply = { tracker, interval: clampInterval(dict.get('interval')), peers, raw: dict };
  const mi = dict.get('min interval');
  if (typeof mi === 'number' || typeof mi === 'bigint') reply.minInterval = clampInterval(mi);
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
