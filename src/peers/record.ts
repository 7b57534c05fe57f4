/**
 * The peer record every discovery stage prints and fetch-pieces reads (design.md §2):
 * `{"ip":"203.0.113.5","port":6881,"source":"tracker"}`, optional `peerId` (hex) and `tracker`.
 * Any NDJSON line with `ip` and `port` is a peer, so jq filters compose.
 */
import { isIP } from 'node:net';

export type PeerSource = 'tracker' | 'dht' | 'pex' | 'magnet' | 'cli' | 'incoming' | 'webseed' | (string & {});

export interface PeerRecord {
  ip: string;
  port: number;
  source: PeerSource;
  peerId?: string;
  tracker?: string;
  /**
   * a web seed (source 'webseed'): the URL behind this in-process peer (webseed/web-seed-peer.ts;
   * it has no address of its own: ip 127.0.0.1, port 0), its key and the name logs and stats
   * show for it; never printed in the NDJSON line
   */
  url?: string;
}

/**
 * host:port text of a peer ([v6]:port for IPv6): how it is named to people, and the key for
 * de-duplication, bans and stats. A web seed's is its URL (it is reached in-process, not at an
 * address).
 */
export function peerKey(p: { ip: string; port: number; url?: string }): string {
  if (p.url !== undefined) return p.url;
  return isIP(p.ip) === 6 ? `[${p.ip}]:${p.port}` : `${p.ip}:${p.port}`;
}

/**
 * Canonical text form of an IP: IPv4-mapped IPv6 becomes IPv4, IPv6 lower-case and compressed.
 * Null for anything else, including an IPv6 address with a zone (`fe80::1%eth0`): isIP() takes
 * it, but the zone names an interface of the machine that wrote it, and URL refuses it.
 */
export function normalizeIp(ip: string): string | null {
  const kind = isIP(ip);
  if (kind === 4) return ip;
  if (kind !== 6 || ip.includes('%')) return null;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  // URL does the RFC 5952 compression for us
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
}

/** A peer record from one parsed NDJSON value, or an error message saying what is wrong. */
export function peerFromJson(v: unknown): PeerRecord | string {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'expected a JSON object with "ip" and "port"';
  const o = v as Record<string, unknown>;
  if (typeof o['ip'] !== 'string') return 'expected "ip" as a string';
  const ip = normalizeIp(o['ip']);
  if (ip === null) return `"ip" is not an IP address: ${JSON.stringify(o['ip']).slice(0, 80)}`;
  const port = o['port'];
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return '"port" must be an integer 1..65535';
  const rec: PeerRecord = { ip, port, source: typeof o['source'] === 'string' ? o['source'] : 'cli' };
  if (typeof o['peerId'] === 'string' && /^[0-9a-f]{40}$/i.test(o['peerId'])) rec.peerId = o['peerId'].toLowerCase();
  if (typeof o['tracker'] === 'string') rec.tracker = o['tracker'];
  return rec;
}

/** Parses HOST:PORT or [V6]:PORT as given to --peer; returns null when malformed. */
export function parseHostPort(s: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535 || !/^(?:0|[1-9]\d*)$/.test(m[3]!)) return null;
  const host = m[1] ?? m[2]!;
  if (m[1] !== undefined && isIP(host) !== 6) return null;
  return { host, port };
}

/** The NDJSON line for a peer (keys in a fixed order). */
export function peerLine(p: PeerRecord): string {
  const o: Record<string, unknown> = { ip: p.ip, port: p.port, source: p.source };
  if (p.peerId !== undefined) o['peerId'] = p.peerId;
  if (p.tracker !== undefined) o['tracker'] = p.tracker;
  return JSON.stringify(o) + '\n';
}
