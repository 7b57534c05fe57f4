/**
 * Magnet URIs (BEP 9, 53): `magnet:?xt=urn:btih:<hash>&dn=…&tr=…&ws=…&x.pe=…&so=…`.
 * Parsing is strict about what it understands and bounded in what it accepts.
 */
import type { Torrent } from './torrent.js';

export interface Magnet {
  infoHash?: Buffer;
  infoHashHex?: string;
  /** BEP 52 v2 info hash from xt=urn:btmh:1220… */
  infoHashV2?: Buffer;
  name?: string;
  trackers: string[];
  webSeeds: string[];
  peers: Array<{ host: string; port: number }>;
  /** BEP 53 file indexes */
  select?: number[];
}

export class MagnetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MagnetError';
  }
}

const MAX_URI = 64 * 1024;
const MAX_LIST = 500;
/** file indexes `so=` may select in all: a torrent has at most 2^20 files (torrent.ts LIMITS) */
const MAX_SELECT = 1 << 20;
const TRACKER_URL = /^(?:https?|udp|wss?):\/\//i;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 without padding (the 32-character info hash form). */
export function base32Decode(s: string): Buffer | null {
  const up = s.toUpperCase();
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const c of up) {
    const v = BASE32.indexOf(c);
    if (v < 0) return null;
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** A 40-hex or 32-base32 info hash, or null. */
export function parseInfoHash(s: string): Buffer | null {
  if (/^[0-9a-fA-F]{40}$/.test(s)) return Buffer.from(s, 'hex');
  if (/^[A-Za-z2-7]{32}$/.test(s)) return base32Decode(s);
  return null;
}

function parsePeer(v: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):([1-9]\d{0,4})$/.exec(v);
  if (!m || Number(m[3]) > 65535) return null;
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

/**
 * BEP 53 file indexes and ranges, sorted and each once; null when malformed. Bounded in the
 * work it takes, whatever the URI holds: `budget` is what the whole magnet may still select
 * (20 ranges of a million indexes took 2 s, thousands of them in a 64 KiB URI minutes, and so
 * did many `so=` parameters). Ranges are merged before they are expanded: no per-index set.
 */
function parseSelect(v: string, where: string, budget: { left: number }): number[] | null {
  const ranges: Array<[number, number]> = [];
  for (const part of v.split(',')) {
    const m = /^(\d{1,7})(?:-(\d{1,7}))?$/.exec(part);
    if (!m) return null;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) return null;
    budget.left -= b - a + 1;
    if (budget.left < 0) throw new MagnetError(`${where}: selects more than ${MAX_SELECT} file indexes in all`);
    ranges.push([a, b]);
  }
  ranges.sort((x, y) => x[0] - y[0]);
  const out: number[] = [];
  let next = 0; // the lowest index not yet in out
  for (const [a, b] of ranges) {
    for (let i = Math.max(a, next); i <= b; i++) out.push(i);
    next = Math.max(next, b + 1);
  }
  return out;
}

export function parseMagnet(uri: string): Magnet {
  if (uri.length > MAX_URI) throw new MagnetError(`magnet URI longer than ${MAX_URI} characters`);
  if (!/^magnet:\?/i.test(uri)) throw new MagnetError("not a magnet URI: it must start with 'magnet:?'");
  const m: Magnet = { trackers: [], webSeeds: [], peers: [] };
  const selectBudget = { left: MAX_SELECT };
  const query = uri.slice(uri.indexOf('?') + 1);
  let position = 0;
  for (const pair of query.split('&')) {
    position++;
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new MagnetError(`parameter ${position}: expected key=value, got ${JSON.stringify(pair.slice(0, 60))}`);
    const key = pair.slice(0, eq).toLowerCase().replace(/\.\d+$/, ''); // tr.1, xt.2, …
    let value: string;
    try {
      value = decodeURIComponent(pair.slice(eq + 1));
    } catch {
      throw new MagnetError(`parameter ${position} (${key}): bad percent-encoding`);
    }
    const where = `parameter ${position} (${key})`;
    switch (key) {
      case 'xt': {
        const bt = /^urn:btih:(.*)$/i.exec(value);
        const mh = /^urn:btmh:(.*)$/i.exec(value);
        if (bt) {
          const h = parseInfoHash(bt[1]!);
          if (!h) throw new MagnetError(`${where}: the btih info hash must be 40 hex or 32 base32 characters`);
          if (m.infoHash && !m.infoHash.equals(h)) throw new MagnetError(`${where}: a second, different btih info hash`);
          m.infoHash = h;
        } else if (mh) {
          if (!/^1220[0-9a-fA-F]{64}$/.test(mh[1]!)) throw new MagnetError(`${where}: the btmh hash must be a SHA-256 multihash (1220 + 64 hex)`);
          m.infoHashV2 = Buffer.from(mh[1]!.slice(4), 'hex');
        }
        // other xt kinds (ed2k, sha1…) are not BitTorrent: ignored
        break;
      }
      case 'dn':
        m.name = value;
        break;
      case 'tr':
        if (m.trackers.length >= MAX_LIST) throw new MagnetError(`more than ${MAX_LIST} trackers`);
        if (!TRACKER_URL.test(value)) throw new MagnetError(`${where}: not a tracker URL: ${JSON.stringify(value.slice(0, 80))}`);
        if (!m.trackers.includes(value)) m.trackers.push(value);
        break;
      case 'ws':
        if (m.webSeeds.length >= MAX_LIST) throw new MagnetError(`more than ${MAX_LIST} web seeds`);
        m.webSeeds.push(value);
        break;
      case 'x.pe': {
        if (m.peers.length >= MAX_LIST) throw new MagnetError(`more than ${MAX_LIST} peers`);
        const p = parsePeer(value);
        if (!p) throw new MagnetError(`${where}: expected HOST:PORT, got ${JSON.stringify(value.slice(0, 80))}`);
        m.peers.push(p);
        break;
      }
      case 'so': {
        const s = parseSelect(value, where, selectBudget);
        if (!s) throw new MagnetError(`${where}: expected file indexes and ranges like 0,2,4-6`);
        m.select = s;
        break;
      }
      default:
        break; // xl, kt, as, … : not needed
    }
  }
  if (!m.infoHash && !m.infoHashV2) throw new MagnetError('no info hash: expected xt=urn:btih:… or xt=urn:btmh:…');
  if (m.infoHash) m.infoHashHex = m.infoHash.toString('hex');
  return m;
}

const enc = (s: string): string => encodeURIComponent(s).replace(/%3A/gi, ':').replace(/%2F/gi, '/');

/**
 * The magnet of a torrent, one that parseMagnet reads back: its trackers that are tracker URLs
 * (a torrent may list anything in announce; a magnet with it would be refused), each once, and
 * at most as many trackers and web seeds as a magnet may carry.
 */
export function magnetFromTorrent(t: Torrent): string {
  const parts = [`xt=urn:btih:${t.infoHashHex}`];
  if (t.infoHashV2) parts.push(`xt=urn:btmh:1220${t.infoHashV2.toString('hex')}`);
  parts.push(`dn=${enc(t.name)}`);
  const trackers = [...new Set(t.announce.flat())].filter((u) => TRACKER_URL.test(u));
  for (const u of trackers.slice(0, MAX_LIST)) parts.push(`tr=${enc(u)}`);
  for (const u of t.urlList.slice(0, MAX_LIST)) parts.push(`ws=${enc(u)}`);
  return `magnet:?${parts.join('&')}`;
}
