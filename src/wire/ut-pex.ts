/**
 * BEP 11 `ut_pex`: the peers each side is connected to, as added/dropped lists, both ways.
 *
 * Receiving is strict: compact lists of exact lengths, flags matching their list, at most 50
 * added and 50 dropped entries (more in the first message is tolerated and cut), one message a
 * minute, duplicates and addresses from the wrong scope dropped. Sending is driven from outside
 * (PexExchange knows the swarm's connections and calls send() once a minute).
 */
import { decode } from '../bencode/decoder.js';
import { encode } from '../bencode/encoder.js';
import type { BValue } from '../bencode/types.js';
import { WireViolation } from './frame-decoder.js';
import type { PeerConnection, WireExtension } from './peer-connection.js';
import { addressScope, decodeCompactPeers, encodeCompactPeer, type CompactPeer } from '../peers/compact.js';

export const PEX_FLAG = {
  encryption: 0x01,
  seed: 0x02,
  utp: 0x04,
  holepunch: 0x08,
  reachable: 0x10,
} as const;

export interface PexPeer extends CompactPeer {
  flags: number;
}

export interface PexMessage {
  added: PexPeer[];
  dropped: CompactPeer[];
}

/** BEP 11: "the combined amount of added v4/v6 contacts should not exceed 50"; same for dropped. */
export const PEX_MAX_ENTRIES = 50;
const MAX_PAYLOAD = 8 * 1024;

export function encodePex(m: PexMessage): Buffer {
  const d: Record<string, Buffer> = {};
  for (const [family, key] of [[4, ''], [6, '6']] as const) {
    const added = m.added.filter((p) => p.family === family);
    const dropped = m.dropped.filter((p) => p.family === family);
    if (added.length > 0) {
      d[`added${key}`] = Buffer.concat(added.map(encodeCompactPeer));
      d[`added${key}.f`] = Buffer.from(added.map((p) => p.flags & 0xff));
    }
    if (dropped.length > 0) d[`dropped${key}`] = Buffer.concat(dropped.map(encodeCompactPeer));
  }
  return encode(d);
}

function bytesField(d: Map<string, BValue>, key: string): Buffer | null {
  const v = d.get(key);
  if (v === undefined) return null;
  if (!Buffer.isBuffer(v)) throw new WireViolation(`ut_pex: "${key}" is not a byte string`);
  return v;
}

function compactList(d: Map<string, BValue>, key: string, family: 4 | 6): CompactPeer[] {
  const b = bytesField(d, key);
  if (b === null) return [];
  const peers = decodeCompactPeers(b, family);
  if (peers === null) throw new WireViolation(`ut_pex: "${key}" is ${b.length} bytes, not a multiple of ${family === 4 ? 6 : 18}`);
  return peers;
}

/** Parses a ut_pex payload (strict lengths; no entry limits, see UtPex for those). */
export function decodePex(payload: Buffer): PexMessage {
  if (payload.length > MAX_PAYLOAD) throw new WireViolation(`ut_pex: message of ${payload.length} bytes (limit ${MAX_PAYLOAD})`);
  let d: BValue;
  try {
    d = decode(payload, { maxDepth: 4, maxValueSize: MAX_PAYLOAD, allowUnsorted: true });
  } catch (e) {
    throw new WireViolation(`ut_pex: malformed message: ${(e as Error).message}`);
  }
  if (!(d instanceof Map)) throw new WireViolation('ut_pex: message is not a dict');
  const added: PexPeer[] = [];
  for (const [family, key] of [[4, 'added'], [6, 'added6']] as const) {
    const list = compactList(d, key, family);
    const flags = bytesField(d, `${key}.f`);
    if (flags !== null && flags.length !== list.length) {
      throw new WireViolation(`ut_pex: "${key}.f" has ${flags.length} flags for ${list.length} peers`);
    }
    list.forEach((p, i) => added.push({ ...p, flags: flags?.[i] ?? 0 }));
  }
  const dropped = [...compactList(d, 'dropped', 4), ...compactList(d, 'dropped6', 6)];
  return { added, dropped };
}

export interface UtPexOptions {
  /** peers learnt from this connection's PEX message, already limited and de-duplicated */
  onPeers(conn: PeerConnection, msg: PexMessage): void;
  /** shortest gap between two messages from the peer (default 45 s; BEP 11 says one a minute) */
  minIntervalMs?: number;
}

export class UtPex implements WireExtension {
  readonly name = 'ut_pex';
  private readonly o: UtPexOptions;
  private lastReceived = 0;
  private received = 0;
  /** what we told this peer: key → peer (so the next message holds only the changes) */
  readonly advertised = new Map<string, CompactPeer>();
  lastSent = 0;

  constructor(options: UtPexOptions) {
    this.o = options;
  }

  onMessage(conn: PeerConnection, payload: Buffer): void {
    const now = Date.now();
    const min = this.o.minIntervalMs ?? 45_000;
    if (this.received > 0 && now - this.lastReceived < min) {
      throw new WireViolation(`ut_pex: a second message after ${Math.round((now - this.lastReceived) / 1000)} s (at most one a minute)`);
    }
    const m = decodePex(payload);
    const first = this.received === 0;
    this.received++;
    this.lastReceived = now;
    // BEP 11 wants at least one list, but libtorrent sends empty ones: nothing to do, no harm
    if (m.added.length === 0 && m.dropped.length === 0) return;
    if (!first && (m.added.length > PEX_MAX_ENTRIES || m.dropped.length > PEX_MAX_ENTRIES)) {
      throw new WireViolation(`ut_pex: ${m.added.length} added and ${m.dropped.length} dropped peers in one message (at most ${PEX_MAX_ENTRIES} each)`);
    }
    // BEP 11: duplicate IPs (e.g. with other ports) are ignored, so one message cannot aim us
    // at many ports of one host; loopback is exempt (local swarms run many clients on one IP,
    // and a host can only aim us at itself there). The first message may be long: cut it.
    const seen = new Set<string>();
    const added = m.added.filter((p) => addressScope(p.ip) === 1 || (!seen.has(p.ip) && seen.add(p.ip))).slice(0, PEX_MAX_ENTRIES);
    this.o.onPeers(conn, { added, dropped: m.dropped.slice(0, PEX_MAX_ENTRIES) });
  }

  /** Sends a message; false when the peer has no ut_pex or there is nothing to say. */
  send(conn: PeerConnection, msg: PexMessage): boolean {
    if (msg.added.length === 0 && msg.dropped.length === 0) return false;
    if (!conn.sendExtended(this.name, encodePex(msg))) return false;
    this.lastSent = Date.now();
    return true;
  }
}
