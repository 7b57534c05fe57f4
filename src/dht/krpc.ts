/**
 * Where a DHT packet is parsed: KRPC (BEP 5) queries, responses and errors, bencoded over UDP.
 * Strict about what the DHT needs (transaction ids, 20-byte ids, compact node lists of 26-byte
 * entries), so a malformed packet is answered with error 203 or dropped, never trusted.
 */
import { decode } from '../bencode/decoder.js';
import { encode } from '../bencode/encoder.js';
import type { BDict, BValue } from '../bencode/types.js';
import { decodeCompactPeers, encodeCompactPeer } from '../peers/compact.js';
import { ID_BYTES } from './node-id.js';

/** Largest datagram we parse: a KRPC message fits in one unfragmented UDP packet. */
export const MAX_PACKET = 2048;
export const CLIENT = Buffer.from('TT01');

export const KRPC_ERROR = { generic: 201, server: 202, protocol: 203, method: 204 } as const;

export interface NodeInfo {
  id: Buffer;
  ip: string;
  port: number;
}

export type KrpcMessage =
  | { y: 'q'; t: Buffer; q: string; a: BDict; id: Buffer; ro: boolean }
  | { y: 'r'; t: Buffer; r: BDict; id: Buffer }
  | { y: 'e'; t: Buffer; code: number; message: string };

/** A packet that is not valid KRPC; `t` when known, so a query can get error 203 back. */
export class KrpcError extends Error {
  readonly t: Buffer | null;
  readonly isQuery: boolean;
  constructor(message: string, t: Buffer | null = null, isQuery = false) {
    super(message);
    this.name = 'KrpcError';
    this.t = t;
    this.isQuery = isQuery;
  }
}

function id(d: BDict, where: string, t: Buffer, isQuery: boolean): Buffer {
  const v = d.get('id');
  if (!Buffer.isBuffer(v) || v.length !== ID_BYTES) throw new KrpcError(`${where}: "id" must be ${ID_BYTES} bytes`, t, isQuery);
  return v;
}

export function parseKrpc(buf: Buffer): KrpcMessage {
  if (buf.length > MAX_PACKET) throw new KrpcError(`packet of ${buf.length} bytes (limit ${MAX_PACKET})`);
  let v: BValue;
  try {
    v = decode(buf, { maxDepth: 8, maxValueSize: MAX_PACKET, allowUnsorted: true });
  } catch (e) {
    throw new KrpcError(`not bencode: ${(e as Error).message}`);
  }
  if (!(v instanceof Map)) throw new KrpcError('not a dict');
  const t = v.get('t');
  if (!Buffer.isBuffer(t) || t.length === 0 || t.length > 16) throw new KrpcError('"t" must be a string of 1..16 bytes');
  const y = v.get('y');
  const kind = Buffer.isBuffer(y) ? y.toString('latin1') : '';
  if (kind === 'q') {
    const q = v.get('q');
    const a = v.get('a');
    if (!Buffer.isBuffer(q) || q.length > 64) throw new KrpcError('query without a method name "q"', t, true);
    if (!(a instanceof Map)) throw new KrpcError('query without an argument dict "a"', t, true);
    const ro = v.get('ro');
    return { y: 'q', t, q: q.toString('latin1'), a, id: id(a, 'query', t, true), ro: ro === 1 };
  }
  if (kind === 'r') {
    const r = v.get('r');
    if (!(r instanceof Map)) throw new KrpcError('response without a dict "r"', t);
    return { y: 'r', t, r, id: id(r, 'response', t, false) };
  }
  if (kind === 'e') {
    const e = v.get('e');
    const code = Array.isArray(e) && typeof e[0] === 'number' ? e[0] : 0;
    const message = Array.isArray(e) && Buffer.isBuffer(e[1]) ? e[1].toString('utf8').slice(0, 200) : '';
    return { y: 'e', t, code, message };
  }
  throw new KrpcError('"y" must be q, r or e', t);
}

export function encodeQuery(t: Buffer, q: string, a: Record<string, BValue>, ro = false): Buffer {
  return encode({ t, y: 'q', q, a: new Map(Object.entries(a)), v: CLIENT, ...(ro ? { ro: 1 } : {}) });
}

export function encodeResponse(t: Buffer, r: Record<string, BValue>, ip?: Buffer): Buffer {
  // BEP 42 `ip`: the requester's address as we see it
  return encode({ t, y: 'r', r: new Map(Object.entries(r)), v: CLIENT, ...(ip ? { ip } : {}) });
}

export function encodeError(t: Buffer, code: number, message: string): Buffer {
  return encode({ t, y: 'e', e: [code, message], v: CLIENT });
}

/** Compact node info: 26 bytes per IPv4 node. Null when the length is not a multiple of 26. */
export function decodeNodes(buf: Buffer): NodeInfo[] | null {
  if (buf.length % 26 !== 0) return null;
  const out: NodeInfo[] = [];
  for (let o = 0; o < buf.length; o += 26) {
    const [p] = decodeCompactPeers(buf.subarray(o + 20, o + 26), 4) ?? [];
    if (p) out.push({ id: Buffer.from(buf.subarray(o, o + 20)), ip: p.ip, port: p.port });
  }
  return out;
}

export function encodeNodes(nodes: readonly NodeInfo[]): Buffer {
  return Buffer.concat(nodes.map((n) => Buffer.concat([n.id, encodeCompactPeer(n)])));
}

/** The byte-string argument `key` of 20 bytes, or a KrpcError for the query. */
export function hashArg(a: BDict, key: string, t: Buffer): Buffer {
  const v = a.get(key);
  if (!Buffer.isBuffer(v) || v.length !== ID_BYTES) throw new KrpcError(`"${key}" must be ${ID_BYTES} bytes`, t, true);
  return v;
}
