/**
 * The peer wire protocol's vocabulary (BEP 3, 5, 6, 10, 52): message ids, the handshake, and the
 * encoders for every message. Decoding lives in frame-decoder.ts.
 */

export const PROTOCOL = Buffer.from('\x13BitTorrent protocol', 'latin1');
export const HANDSHAKE_LENGTH = 68;
/** The block size everyone uses; BEP 3 practice is to refuse larger requests. */
export const MAX_BLOCK = 16 * 1024;

export const ID = {
  choke: 0,
  unchoke: 1,
  interested: 2,
  notInterested: 3,
  have: 4,
  bitfield: 5,
  request: 6,
  piece: 7,
  cancel: 8,
  port: 9,
  suggest: 13,
  haveAll: 14,
  haveNone: 15,
  reject: 16,
  allowedFast: 17,
  extended: 20,
  hashRequest: 21,
  hashes: 22,
  hashReject: 23,
} as const;

/**
 * A BEP 52 hash request's fields (also those of `hashes` and `hash reject`): `length` nodes of
 * the layer `base` above the leaves of the file tree whose root is `root`, from node `index`,
 * with the uncle hashes of `proofLayers` layers above them (see merkle.ts `unclesFor`).
 */
export interface HashRange {
  root: Buffer;
  base: number;
  index: number;
  length: number;
  proofLayers: number;
}

export type WireMessage =
  | { type: 'keep-alive' }
  | { type: 'choke' }
  | { type: 'unchoke' }
  | { type: 'interested' }
  | { type: 'not-interested' }
  | { type: 'have'; index: number }
  | { type: 'bitfield'; bits: Buffer }
  | { type: 'request'; index: number; begin: number; length: number }
  /** received: `block` is valid only while the message is being handled (copy it to keep it) */
  | { type: 'piece'; index: number; begin: number; block: Buffer }
  | { type: 'cancel'; index: number; begin: number; length: number }
  | { type: 'port'; port: number }
  | { type: 'suggest'; index: number }
  | { type: 'have-all' }
  | { type: 'have-none' }
  | { type: 'reject'; index: number; begin: number; length: number }
  | { type: 'allowed-fast'; index: number }
  | { type: 'extended'; id: number; payload: Buffer }
  | ({ type: 'hash-request' } & HashRange)
  /**
   * `hashes`: the `length` base nodes, then the uncles from the lowest up, 32 bytes each.
   * Received, `root` and `hashes` (of all three messages) are views valid only during the call.
   */
  | ({ type: 'hashes'; hashes: Buffer } & HashRange)
  | ({ type: 'hash-reject' } & HashRange);

export type MessageType = WireMessage['type'];

export interface Handshake {
  reserved: Buffer;
  infoHash: Buffer;
  peerId: Buffer;
}

/** Reserved-bit capabilities. */
export const EXTENSION_BIT = { byte: 5, mask: 0x10 } as const; // BEP 10
export const FAST_BIT = { byte: 7, mask: 0x04 } as const; // BEP 6
export const DHT_BIT = { byte: 7, mask: 0x01 } as const; // BEP 5
/** BEP 52 "Upgrade Path": the sender of a hybrid's SHA-1 hash also knows it by its v2 hash */
export const V2_BIT = { byte: 7, mask: 0x10 } as const;

export function reservedBits(caps: { extended?: boolean; fast?: boolean; dht?: boolean; v2?: boolean }): Buffer {
  const r = Buffer.alloc(8);
  if (caps.extended) r[EXTENSION_BIT.byte]! |= EXTENSION_BIT.mask;
  if (caps.fast) r[FAST_BIT.byte]! |= FAST_BIT.mask;
  if (caps.dht) r[DHT_BIT.byte]! |= DHT_BIT.mask;
  if (caps.v2) r[V2_BIT.byte]! |= V2_BIT.mask;
  return r;
}

export function hasBit(reserved: Buffer, bit: { byte: number; mask: number }): boolean {
  return (reserved[bit.byte]! & bit.mask) !== 0;
}

export function encodeHandshake(h: Handshake): Buffer {
  const b = Buffer.allocUnsafe(HANDSHAKE_LENGTH);
  PROTOCOL.copy(b, 0);
  h.reserved.copy(b, 20, 0, 8);
  h.infoHash.copy(b, 28, 0, 20);
  h.peerId.copy(b, 48, 0, 20);
  return b;
}

function header(length: number, id: number, extra: number): Buffer {
  const b = Buffer.allocUnsafe(5 + extra);
  b.writeUInt32BE(length, 0);
  b[4] = id;
  return b;
}

const bare = (id: number): Buffer => {
  const b = header(1, id, 0);
  return b;
};

const KEEP_ALIVE = Buffer.alloc(4);
const CHOKE = bare(ID.choke);
const UNCHOKE = bare(ID.unchoke);
const INTERESTED = bare(ID.interested);
const NOT_INTERESTED = bare(ID.notInterested);
const HAVE_ALL = bare(ID.haveAll);
const HAVE_NONE = bare(ID.haveNone);

/** Request messages for `blocks`, back to back in one buffer. */
export function encodeRequests(blocks: ReadonlyArray<{ index: number; begin: number; length: number }>): Buffer {
  const b = Buffer.allocUnsafe(17 * blocks.length);
  let at = 0;
  for (const r of blocks) {
    b.writeUInt32BE(13, at);
    b[at + 4] = ID.request;
    b.writeUInt32BE(r.index, at + 5);
    b.writeUInt32BE(r.begin, at + 9);
    b.writeUInt32BE(r.length, at + 13);
    at += 17;
  }
  return b;
}

function triple(id: number, index: number, begin: number, length: number): Buffer {
  const b = header(13, id, 12);
  b.writeUInt32BE(index, 5);
  b.writeUInt32BE(begin, 9);
  b.writeUInt32BE(length, 13);
  return b;
}

/** Bytes of a hash request/hashes/reject frame before its hashes. */
export const HASH_RANGE_FRAME = 1 + 32 + 16;

function hashRange(id: number, r: HashRange, hashes?: Buffer): Buffer {
  const extra = hashes?.length ?? 0;
  const b = header(HASH_RANGE_FRAME + extra, id, HASH_RANGE_FRAME - 1 + extra);
  r.root.copy(b, 5, 0, 32);
  b.writeUInt32BE(r.base, 37);
  b.writeUInt32BE(r.index, 41);
  b.writeUInt32BE(r.length, 45);
  b.writeUInt32BE(r.proofLayers, 49);
  hashes?.copy(b, 53);
  return b;
}

function single(id: number, index: number): Buffer {
  const b = header(5, id, 4);
  b.writeUInt32BE(index, 5);
  return b;
}

/**
 * The bytes of a message. A piece message comes back as [header, block] so the block is never
 * copied: write both (the connection corks the socket around them).
 */
export function encodeMessage(m: WireMessage): Buffer | [Buffer, Buffer] {
  switch (m.type) {
    case 'keep-alive':
      return KEEP_ALIVE;
    case 'choke':
      return CHOKE;
    case 'unchoke':
      return UNCHOKE;
    case 'interested':
      return INTERESTED;
    case 'not-interested':
      return NOT_INTERESTED;
    case 'have-all':
      return HAVE_ALL;
    case 'have-none':
      return HAVE_NONE;
    case 'have':
      return single(ID.have, m.index);
    case 'suggest':
      return single(ID.suggest, m.index);
    case 'allowed-fast':
      return single(ID.allowedFast, m.index);
    case 'bitfield': {
      const b = header(1 + m.bits.length, ID.bitfield, m.bits.length);
      m.bits.copy(b, 5);
      return b;
    }
    case 'request':
      return triple(ID.request, m.index, m.begin, m.length);
    case 'cancel':
      return triple(ID.cancel, m.index, m.begin, m.length);
    case 'reject':
      return triple(ID.reject, m.index, m.begin, m.length);
    case 'piece': {
      const h = header(9 + m.block.length, ID.piece, 8);
      h.writeUInt32BE(m.index, 5);
      h.writeUInt32BE(m.begin, 9);
      return [h, m.block];
    }
    case 'port': {
      const b = header(3, ID.port, 2);
      b.writeUInt16BE(m.port, 5);
      return b;
    }
    case 'extended': {
      const b = header(2 + m.payload.length, ID.extended, 1 + m.payload.length);
      b[5] = m.id;
      m.payload.copy(b, 6);
      return b;
    }
    case 'hash-request':
      return hashRange(ID.hashRequest, m);
    case 'hashes':
      return hashRange(ID.hashes, m, m.hashes);
    case 'hash-reject':
      return hashRange(ID.hashReject, m);
  }
}

/** `v` in our BEP 10 handshake */
export const CLIENT_VERSION = 'torrent-tools 0.1.0';

/**
 * Our BEP 20 client code and version (0.1.0.0): `TK`, which neither BEP 20's list, libtorrent's
 * identify_client table nor the bittorrent-peerid package gives to another client (`TT`,
 * used before, is TuoTu's: peers showed us as TuoTu).
 */
export const PEER_ID_PREFIX = '-TK0100-';

/** A BEP 20 style peer id: PEER_ID_PREFIX and 12 random bytes. */
export function makePeerId(random: (n: number) => Buffer, prefix = PEER_ID_PREFIX): Buffer {
  return Buffer.concat([Buffer.from(prefix, 'latin1'), random(20 - prefix.length)]);
}
