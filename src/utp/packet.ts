/**
 * The uTP packet (BEP 29): a 20-byte header, a chain of extensions, the payload. Decoding
 * fills one reused header object and says in one line why a datagram is refused: a datagram
 * is outside input, so nothing here throws.
 */

export const ST_DATA = 0;
export const ST_FIN = 1;
export const ST_STATE = 2;
export const ST_RESET = 3;
export const ST_SYN = 4;
export const HEADER_SIZE = 20;
export const VERSION = 1;
export const EXT_SACK = 1;
/** extensions one packet may chain before it is refused (libtorrent knows two) */
const MAX_EXTENSIONS = 8;
/** SACK bytes we send at most: 1024 packets past ack_nr + 1, the whole receive ring (an extension length is one byte) */
export const MAX_SACK_BYTES = 128;

export const TYPE_NAMES = ['ST_DATA', 'ST_FIN', 'ST_STATE', 'ST_RESET', 'ST_SYN'] as const;

/** A decoded header; `sack` and `payload` are views into the datagram (valid while it is). */
export interface PacketHeader {
  type: number;
  connId: number;
  timestamp: number;
  timestampDiff: number;
  wndSize: number;
  seqNr: number;
  ackNr: number;
  /** the selective-ack bitmask, or null when the packet has none */
  sack: Uint8Array | null;
  payload: Buffer;
}

export function emptyHeader(): PacketHeader {
  return { type: 0, connId: 0, timestamp: 0, timestampDiff: 0, wndSize: 0, seqNr: 0, ackNr: 0, sack: null, payload: Buffer.alloc(0) };
}

/** The shape test the shared UDP socket demultiplexes by: version 1, a known type, a whole header. */
export function looksLikeUtp(buf: Uint8Array): boolean {
  return buf.length >= HEADER_SIZE && (buf[0]! & 0x0f) === VERSION && buf[0]! >> 4 <= ST_SYN;
}

/**
 * Decodes `buf` into `out`. Returns null when the packet is sound, else the reason it is
 * refused (one line). `out` is half-filled on refusal.
 */
export function decodePacket(buf: Buffer, out: PacketHeader): string | null {
  if (buf.length < HEADER_SIZE) return `uTP packet of ${buf.length} bytes is shorter than the 20-byte header`;
  const b0 = buf[0]!;
  if ((b0 & 0x0f) !== VERSION) return `uTP version ${b0 & 0x0f} (only 1 exists)`;
  const type = b0 >> 4;
  if (type > ST_SYN) return `uTP packet type ${type} is unknown`;
  out.type = type;
  out.connId = buf.readUInt16BE(2);
  out.timestamp = buf.readUInt32BE(4);
  out.timestampDiff = buf.readUInt32BE(8);
  out.wndSize = buf.readUInt32BE(12);
  out.seqNr = buf.readUInt16BE(16);
  out.ackNr = buf.readUInt16BE(18);
  out.sack = null;
  let ext = buf[1]!;
  let at = HEADER_SIZE;
  for (let n = 0; ext !== 0; n++) {
    if (n === MAX_EXTENSIONS) return `uTP packet chains more than ${MAX_EXTENSIONS} extensions`;
    if (at + 2 > buf.length) return `uTP extension ${ext} at byte ${at} is cut off`;
    const next = buf[at]!;
    const len = buf[at + 1]!;
    if (at + 2 + len > buf.length) return `uTP extension ${ext} at byte ${at} claims ${len} bytes, past the end`;
    // BEP 29 asks for a multiple of 4 bytes; libtorrent sends any number (23 seen), and a mask
    // is read byte by byte anyway, so any length is taken (0: no packet acked)
    if (ext === EXT_SACK && len > 0) out.sack = buf.subarray(at + 2, at + 2 + len);
    // unknown extensions are skipped, as the BEP says
    ext = next;
    at += 2 + len;
  }
  out.payload = buf.subarray(at);
  if (type === ST_DATA && out.payload.length === 0) return 'uTP ST_DATA packet without a payload';
  return null;
}

/** Writes a header (no extension) at the start of `buf`; the caller sets byte 1 for a chain. */
export function writeHeader(
  buf: Uint8Array, type: number, connId: number, timestamp: number, timestampDiff: number,
  wndSize: number, seqNr: number, ackNr: number,
): void {
  buf[0] = (type << 4) | VERSION;
  buf[1] = 0;
  buf[2] = connId >> 8;
  buf[3] = connId & 0xff;
  writeU32(buf, 4, timestamp);
  writeU32(buf, 8, timestampDiff);
  writeU32(buf, 12, wndSize);
  buf[16] = seqNr >> 8;
  buf[17] = seqNr & 0xff;
  buf[18] = ackNr >> 8;
  buf[19] = ackNr & 0xff;
}

/** The fields a retransmission refreshes, in place. */
export function rewriteTimes(buf: Uint8Array, timestamp: number, timestampDiff: number, wndSize: number, ackNr: number): void {
  writeU32(buf, 4, timestamp);
  writeU32(buf, 8, timestampDiff);
  writeU32(buf, 12, wndSize);
  buf[18] = ackNr >> 8;
  buf[19] = ackNr & 0xff;
}

function writeU32(buf: Uint8Array, at: number, v: number): void {
  buf[at] = v >>> 24;
  buf[at + 1] = (v >>> 16) & 0xff;
  buf[at + 2] = (v >>> 8) & 0xff;
  buf[at + 3] = v & 0xff;
}

/**
 * Bit i of a selective-ack mask is packet ack_nr + 2 + i: byte i >> 3, bit i & 7, least
 * significant first (BEP 29: "reverse byte order").
 */
export function sackHas(mask: Uint8Array, i: number): boolean {
  const byte = i >> 3;
  return byte < mask.length && (mask[byte]! & (1 << (i & 7))) !== 0;
}

export function sackSet(mask: Uint8Array, i: number): void {
  mask[i >> 3] = mask[i >> 3]! | (1 << (i & 7));
}
