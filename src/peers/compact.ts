/**
 * The compact peer format shared by trackers (BEP 23, BEP 7), PEX (BEP 11) and the DHT (BEP 5):
 * 4 or 16 address bytes then a big-endian port. Also the address scope rules that decide which
 * addresses learnt from a remote party are worth a connection attempt.
 */
import { isIP } from 'node:net';

export interface CompactPeer {
  ip: string;
  port: number;
  family: 4 | 6;
}

/** Decodes a compact list; null when its length is not a multiple of the entry size. Port 0 entries are skipped. */
export function decodeCompactPeers(buf: Buffer, family: 4 | 6): CompactPeer[] | null {
  const size = family === 6 ? 18 : 6;
  if (buf.length % size !== 0) return null;
  const out: CompactPeer[] = [];
  for (let o = 0; o < buf.length; o += size) {
    const port = buf.readUInt16BE(o + size - 2);
    if (port === 0) continue;
    out.push({ ip: compactIp(buf, o, family), port, family });
  }
  return out;
}

function compactIp(buf: Buffer, o: number, family: 4 | 6): string {
  if (family === 4) return `${buf[o]}.${buf[o + 1]}.${buf[o + 2]}.${buf[o + 3]}`;
  const parts: string[] = [];
  for (let k = 0; k < 16; k += 2) parts.push(buf.readUInt16BE(o + k).toString(16));
  // URL gives the RFC 5952 text form
  return new URL(`http://[${parts.join(':')}]/`).hostname.slice(1, -1);
}

/** The 4 or 16 bytes of an IP address. */
export function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head, tail] = ip.includes('::') ? ip.split('::') as [string, string] : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  // an embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups
  const expand = (groups: string[]): number[] => groups.flatMap((g) => {
    if (g.includes('.')) {
      const b = g.split('.').map(Number);
      return [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    }
    return [parseInt(g, 16)];
  });
  const hv = expand(h);
  const tv = expand(t);
  const groups = tail === undefined ? hv : [...hv, ...new Array<number>(8 - hv.length - tv.length).fill(0), ...tv];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(g, i * 2));
  return b;
}

export function encodeCompactPeer(p: { ip: string; port: number }): Buffer {
  const ip = ipBytes(p.ip);
  const b = Buffer.alloc(ip.length + 2);
  ip.copy(b, 0);
  b.writeUInt16BE(p.port, ip.length);
  return b;
}

/**
 * How far an address reaches: 0 never a peer (unspecified, multicast, reserved, broadcast),
 * 1 loopback, 2 private or link-local, 3 public.
 */
export function addressScope(ip: string): 0 | 1 | 2 | 3 {
  const kind = isIP(ip);
  if (kind === 4) {
    const [a, b] = ip.split('.').map(Number) as [number, number];
    if (a === 0 || a >= 224) return 0;
    if (a === 127) return 1;
    if (a === 10 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168) || (a === 169 && b === 254) || (a === 100 && b >= 64 && b < 128)) return 2;
    return 3;
  }
  if (kind !== 6) return 0;
  const bytes = ipBytes(ip);
  if (bytes.every((x) => x === 0)) return 0; // ::
  if (bytes.subarray(0, 15).every((x) => x === 0) && bytes[15] === 1) return 1; // ::1
  if (bytes.subarray(0, 10).every((x) => x === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return addressScope(`${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`);
  }
  if (bytes[0] === 0xff) return 0; // multicast
  if ((bytes[0]! & 0xfe) === 0xfc || (bytes[0] === 0xfe && (bytes[1]! & 0xc0) === 0x80)) return 2; // ULA, link-local
  return 3;
}

/**
 * Whether an address a remote party told us about deserves a connection attempt: never a
 * reserved one, and a loopback or private one only from a party that is itself that close
 * (a public peer naming 10.0.0.1 or 127.0.0.1 is pointing us at someone else's network).
 */
export function acceptableFrom(ip: string, port: number, sourceIp: string): boolean {
  if (port === 0) return false;
  const scope = addressScope(ip);
  if (scope === 0) return false;
  return scope >= 3 || addressScope(sourceIp) <= scope;
}
