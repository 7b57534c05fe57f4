/**
 * BEP 9 `ut_metadata`: the info dict in 16 KiB pieces over the extension protocol, both ways.
 *
 * The extension object only speaks the protocol on one connection. Serving is local to the
 * connection (answer from the raw info bytes, with a request budget); fetching is coordinated
 * across connections by whoever passes `onData`/`onReject` (the MetadataFetcher), because which
 * piece to ask of which peer is a swarm decision.
 */
import { decodeFirst } from '../bencode/decoder.js';
import { encode } from '../bencode/encoder.js';
import type { BValue } from '../bencode/types.js';
import { WireViolation } from './frame-decoder.js';
import type { PeerConnection, WireExtension } from './peer-connection.js';

export const METADATA_PIECE = 16 * 1024;
/** the metadata_size we believe by default; an option where it matters (fetch-metadata) */
export const DEFAULT_MAX_METADATA = 8 * 1024 * 1024;

export type MetadataMessage =
  | { type: 'request'; piece: number }
  | { type: 'data'; piece: number; totalSize: number; data: Buffer }
  | { type: 'reject'; piece: number }
  | { type: 'unknown'; msgType: number };

export function encodeMetadataMessage(m: Exclude<MetadataMessage, { type: 'unknown' }>): Buffer {
  switch (m.type) {
    case 'request':
      return encode({ msg_type: 0, piece: m.piece });
    case 'reject':
      return encode({ msg_type: 2, piece: m.piece });
    case 'data':
      return Buffer.concat([encode({ msg_type: 1, piece: m.piece, total_size: m.totalSize }), m.data]);
  }
}

function intField(d: Map<string, BValue>, key: string, max: number): number {
  const v = d.get(key);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new WireViolation(`ut_metadata: "${key}" must be an integer 0..${max}`);
  }
  return v;
}

/** Parses one ut_metadata payload; throws WireViolation saying what is wrong. */
export function decodeMetadataMessage(payload: Buffer, maxSize: number): MetadataMessage {
  let head: { value: BValue; end: number };
  try {
    head = decodeFirst(payload, { maxDepth: 4, maxValueSize: 1024, allowUnsorted: true });
  } catch (e) {
    throw new WireViolation(`ut_metadata: malformed message: ${(e as Error).message}`);
  }
  const d = head.value;
  if (!(d instanceof Map)) throw new WireViolation('ut_metadata: message is not a dict');
  const msgType = intField(d, 'msg_type', 255);
  // BEP 9: an unrecognised msg_type MUST be ignored
  if (msgType > 2) return { type: 'unknown', msgType };
  const piece = intField(d, 'piece', Math.ceil(maxSize / METADATA_PIECE));
  const rest = payload.length - head.end;
  if (msgType !== 1) {
    if (rest !== 0) throw new WireViolation(`ut_metadata: ${rest} bytes after a ${msgType === 0 ? 'request' : 'reject'}`);
    return msgType === 0 ? { type: 'request', piece } : { type: 'reject', piece };
  }
  const totalSize = intField(d, 'total_size', Number.MAX_SAFE_INTEGER);
  return { type: 'data', piece, totalSize, data: payload.subarray(head.end) };
}

/** Bytes in metadata piece `piece` of metadata of `size` bytes (0 when out of range). */
export function metadataPieceLength(size: number, piece: number): number {
  const start = piece * METADATA_PIECE;
  return start >= size ? 0 : Math.min(METADATA_PIECE, size - start);
}

export interface UtMetadataOptions {
  /** the raw info dict we can serve, when we have it */
  info?: () => Buffer | null;
  /** the peer's extended handshake said metadata_size (absent: the peer has none to give) */
  onPeer?: (conn: PeerConnection, size: number | null) => void;
  onData?: (conn: PeerConnection, piece: number, totalSize: number, data: Buffer) => void;
  onReject?: (conn: PeerConnection, piece: number) => void;
  /** largest metadata_size we believe (default 8 MiB) */
  maxSize?: number;
  /** requests served per connection: pieces × this + 8 (BEP 9's flood protection; default 3) */
  requestFactor?: number;
}

/** Socket bytes queued above which requests are rejected rather than buffered. */
const MAX_QUEUED = 1024 * 1024;

export class UtMetadata implements WireExtension {
  readonly name = 'ut_metadata';
  private readonly o: UtMetadataOptions;
  private served = 0;

  constructor(options: UtMetadataOptions) {
    this.o = options;
  }

  handshakeFields(): Record<string, BValue> {
    const info = this.o.info?.();
    return info ? { metadata_size: info.length } : {};
  }

  onHandshake(conn: PeerConnection, remote: Map<string, BValue>): void {
    if (conn.remoteExtensionId(this.name) === undefined) return this.o.onPeer?.(conn, null);
    const size = remote.get('metadata_size');
    if (size === undefined) return this.o.onPeer?.(conn, null);
    const max = this.o.maxSize ?? DEFAULT_MAX_METADATA;
    if (typeof size !== 'number' || !Number.isInteger(size) || size <= 0) {
      throw new WireViolation(`ut_metadata: metadata_size is not a positive integer`);
    }
    if (size > max) throw new WireViolation(`ut_metadata: metadata_size ${size} is over the limit of ${max} bytes`);
    this.o.onPeer?.(conn, size);
  }

  /** Asks the peer for one piece; false when it does not speak ut_metadata. */
  request(conn: PeerConnection, piece: number): boolean {
    return conn.sendExtended(this.name, encodeMetadataMessage({ type: 'request', piece }));
  }

  onMessage(conn: PeerConnection, payload: Buffer): void {
    const m = decodeMetadataMessage(payload, this.o.maxSize ?? DEFAULT_MAX_METADATA);
    switch (m.type) {
      case 'request':
        return this.serve(conn, m.piece);
      case 'data':
        if (!this.o.onData) throw new WireViolation(`ut_metadata: sent metadata piece ${m.piece}, which was never requested`);
        return this.o.onData(conn, m.piece, m.totalSize, m.data);
      case 'reject':
        if (!this.o.onReject) throw new WireViolation(`ut_metadata: rejected piece ${m.piece}, which was never requested`);
        return this.o.onReject(conn, m.piece);
      case 'unknown':
        return;
    }
  }

  private serve(conn: PeerConnection, piece: number): void {
    const info = this.o.info?.() ?? null;
    const pieces = info ? Math.ceil(info.length / METADATA_PIECE) : 0;
    const budget = pieces * (this.o.requestFactor ?? 3) + 8;
    const len = info ? metadataPieceLength(info.length, piece) : 0;
    if (info === null || len === 0 || this.served >= budget || conn.writableLength > MAX_QUEUED) {
      conn.sendExtended(this.name, encodeMetadataMessage({ type: 'reject', piece }));
      return;
    }
    this.served++;
    const start = piece * METADATA_PIECE;
    conn.sendExtended(this.name, encodeMetadataMessage({ type: 'data', piece, totalSize: info.length, data: info.subarray(start, start + len) }));
  }
}
