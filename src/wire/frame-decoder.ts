/**
 * Where a peer message is parsed: the handshake, then length-prefixed frames, from bytes in any
 * chunking. Two states per frame (length, body) as in length-prefixed-stream; a body that lies
 * inside one chunk is sliced, not copied, so piece blocks reach the picker with one copy in all.
 * A piece frame split across chunks is gathered in one scratch buffer reused for every such
 * frame: a fresh 16 KiB buffer for each was half a GiB of garbage per GiB downloaded, which
 * the collector let pile up to ~100 MiB of heap. So a piece message's block is a view that is
 * valid only during the onMessage call (as a slice of a reused socket read buffer is anyway).
 *
 * Every frame is checked against the torrent before it is buffered (its declared length) and
 * after (exact sizes, indexes, bounds, spare bits). A violation is thrown as WireViolation; the
 * connection closes on it. Nothing here trusts the peer.
 */
import { HASH_BYTES, unclesFor } from '../metainfo/merkle.js';
import { HANDSHAKE_LENGTH, HASH_RANGE_FRAME, ID, MAX_BLOCK, PROTOCOL, type Handshake, type HashRange, type WireMessage } from './protocol.js';

export class WireViolation extends Error {
  /** how the connection ends for it (our own handshake coming back is no fault of a peer) */
  readonly kind: 'violation' | 'ourselves';
  constructor(reason: string, kind: 'violation' | 'ourselves' = 'violation') {
    super(reason);
    this.name = 'WireViolation';
    this.kind = kind;
  }
}

export interface WireLimits {
  /** pieces in the torrent; undefined while the metadata is unknown (magnet) */
  pieceCount?: number;
  /** size of piece i (needed with pieceCount) */
  pieceSize?: (index: number) => number;
  /** largest block accepted in piece, request, cancel, reject (default 16 KiB) */
  maxBlock?: number;
  /** largest extended message payload (default 1 MiB) */
  maxExtended?: number;
}

/**
 * BEP 52 hash ranges. A request may name up to 8192 nodes (libtorrent's own limit, a 128 MiB
 * piece's leaves); larger ones, like lengths under 2 (which libtorrent asks for single-block
 * pieces although the BEP says at least 2), are answered with a hash reject rather than a closed
 * connection. A `hashes` message answers one of our requests, which never ask for more than
 * 512, so that bounds it (with 64 proof layers: 18 KiB). 64 layers is past any file's tree
 * (2^64 bytes are 50 layers of 16 KiB leaves).
 */
export const MAX_HASH_REQUEST = 8192;
export const MAX_HASHES = 512;
export const MAX_PROOF_LAYERS = 64;
const MAX_HASHES_FRAME = HASH_RANGE_FRAME + HASH_BYTES * (MAX_HASHES + MAX_PROOF_LAYERS);

/** a piece message's id, index and begin */
const PIECE_HEAD = 9;

const S_HANDSHAKE = 0;
const S_LENGTH = 1;
const S_BODY = 2;

/** bitfield size limit while the piece count is unknown: 2^20 pieces */
const UNKNOWN_BITFIELD_MAX = (1 << 20) / 8;

export class FrameDecoder {
  limits: WireLimits;
  private st: number;
  private readonly lenBuf = Buffer.alloc(4);
  private lenFill = 0;
  private body: Buffer | null = null;
  /** where split piece frames are gathered (allocated at the first one) */
  private scratch: Buffer | null = null;
  private bodyFill = 0;
  private bodyLen = 0;
  private readonly hs = Buffer.alloc(HANDSHAKE_LENGTH);
  private hsFill = 0;

  constructor(limits: WireLimits, expectHandshake = true) {
    this.limits = limits;
    this.st = expectHandshake ? S_HANDSHAKE : S_LENGTH;
  }

  /**
   * Feeds bytes. Calls onHandshake once, then onMessage per complete message. Throws
   * WireViolation on the first byte that breaks the protocol.
   */
  write(chunk: Buffer, onHandshake: (h: Handshake) => void, onMessage: (m: WireMessage) => void): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.st === S_HANDSHAKE) {
        const take = Math.min(n - i, HANDSHAKE_LENGTH - this.hsFill);
        chunk.copy(this.hs, this.hsFill, i, i + take);
        // check the protocol string as soon as its bytes arrive: garbage is refused at once
        const upto = Math.min(this.hsFill + take, 20);
        for (let k = this.hsFill; k < upto; k++) {
          if (this.hs[k] !== PROTOCOL[k]) throw new WireViolation('not a BitTorrent handshake');
        }
        this.hsFill += take;
        i += take;
        if (this.hsFill === HANDSHAKE_LENGTH) {
          this.st = S_LENGTH;
          onHandshake({
            reserved: Buffer.from(this.hs.subarray(20, 28)),
            infoHash: Buffer.from(this.hs.subarray(28, 48)),
            peerId: Buffer.from(this.hs.subarray(48, 68)),
          });
        }
        continue;
      }
      if (this.st === S_LENGTH) {
        // fast path: a whole frame inside this chunk
        if (this.lenFill === 0 && n - i >= 4) {
          const len = chunk.readUInt32BE(i);
          if (len === 0) {
            i += 4;
            onMessage({ type: 'keep-alive' });
            continue;
          }
          this.checkLength(len, chunk[i + 4]);
          if (n - i - 4 >= len) {
            const frame = chunk.subarray(i + 4, i + 4 + len);
            i += 4 + len;
            onMessage(this.parse(frame));
            continue;
          }
        }
        const take = Math.min(n - i, 4 - this.lenFill);
        chunk.copy(this.lenBuf, this.lenFill, i, i + take);
        this.lenFill += take;
        i += take;
        if (this.lenFill < 4) continue;
        this.lenFill = 0;
        const len = this.lenBuf.readUInt32BE(0);
        if (len === 0) {
          onMessage({ type: 'keep-alive' });
          continue;
        }
        this.checkLength(len, i < n ? chunk[i] : undefined);
        this.bodyLen = len;
        this.bodyFill = 0;
        this.body = null;
        this.st = S_BODY;
        continue;
      }
      // S_BODY
      const need = this.bodyLen - this.bodyFill;
      if (this.body === null && n - i >= need) {
        const frame = chunk.subarray(i, i + need);
        i += need;
        this.st = S_LENGTH;
        onMessage(this.parse(frame));
        continue;
      }
      if (this.body === null) {
        this.checkLength(this.bodyLen, chunk[i]);
        if (chunk[i] === ID.piece) {
          if (this.scratch === null || this.scratch.length < this.bodyLen) this.scratch = Buffer.allocUnsafe(Math.max(this.bodyLen, 9 + MAX_BLOCK));
          this.body = this.scratch.subarray(0, this.bodyLen);
        } else {
          this.body = Buffer.allocUnsafe(this.bodyLen);
        }
      }
      if (this.bodyFill === PIECE_HEAD && this.body.buffer === this.scratch?.buffer && n - i >= need) {
        // a piece frame whose head came alone and whose block is whole here (how an in-process
        // peer's writes come, wire/memory-pipe.ts: head and block are two buffers): the block
        // is a view of the chunk, not copied into the scratch buffer first
        const block = chunk.subarray(i, i + need);
        const head = this.body;
        this.body = null;
        this.st = S_LENGTH;
        i += need;
        onMessage(this.parsePiece(head, block));
        continue;
      }
      const take = Math.min(n - i, need);
      chunk.copy(this.body, this.bodyFill, i, i + take);
      this.bodyFill += take;
      i += take;
      if (this.bodyFill === this.bodyLen) {
        const frame = this.body;
        this.body = null;
        this.st = S_LENGTH;
        onMessage(this.parse(frame));
      }
    }
  }

  /** The largest frame a message with this id may have; checked before anything is buffered. */
  private checkLength(len: number, id: number | undefined): void {
    const maxBlock = this.limits.maxBlock ?? MAX_BLOCK;
    const count = this.limits.pieceCount;
    const bitfield = 1 + (count === undefined ? UNKNOWN_BITFIELD_MAX : Math.ceil(count / 8));
    let max = Math.max(9 + maxBlock, bitfield, 2 + (this.limits.maxExtended ?? 1024 * 1024), MAX_HASHES_FRAME);
    if (id !== undefined) {
      if (id === ID.piece) max = 9 + maxBlock;
      else if (id === ID.bitfield) max = bitfield;
      else if (id === ID.extended) max = 2 + (this.limits.maxExtended ?? 1024 * 1024);
      else if (id === ID.hashes) max = MAX_HASHES_FRAME;
      else if (id === ID.hashRequest || id === ID.hashReject) max = HASH_RANGE_FRAME;
      else max = 13;
    }
    if (len > max) throw new WireViolation(`frame of ${len} bytes is larger than the ${max} allowed${id === undefined ? '' : ` for message id ${id}`}`);
  }

  private index(i: number, what: string): number {
    const count = this.limits.pieceCount;
    if (count !== undefined && i >= count) throw new WireViolation(`${what} for piece ${i}, beyond the torrent's ${count} pieces`);
    return i;
  }

  private range(type: 'request' | 'cancel' | 'reject', f: Buffer): WireMessage {
    if (f.length !== 13) throw new WireViolation(`${type} of ${f.length - 1} bytes, expected 12`);
    const index = this.index(f.readUInt32BE(1), type);
    const begin = f.readUInt32BE(5);
    const length = f.readUInt32BE(9);
    const maxBlock = this.limits.maxBlock ?? MAX_BLOCK;
    if (length === 0 || length > maxBlock) throw new WireViolation(`${type} for ${length} bytes (allowed: 1..${maxBlock})`);
    if (this.limits.pieceSize && this.limits.pieceCount !== undefined && begin + length > this.limits.pieceSize(index)) {
      throw new WireViolation(`${type} for bytes ${begin}..${begin + length} of piece ${index}, which has ${this.limits.pieceSize(index)}`);
    }
    return { type, index, begin, length };
  }

  /** The fields of a hash request, hashes or hash reject (BEP 52), checked. */
  private hashRange(name: string, f: Buffer, maxLength: number): HashRange {
    if (f.length < HASH_RANGE_FRAME) throw new WireViolation(`${name} of ${f.length - 1} bytes, expected at least ${HASH_RANGE_FRAME - 1}`);
    const base = f.readUInt32BE(33);
    const index = f.readUInt32BE(37);
    const length = f.readUInt32BE(41);
    const proofLayers = f.readUInt32BE(45);
    if (length === 0 || length > maxLength || (length & (length - 1)) !== 0) throw new WireViolation(`${name} for ${length} hashes (allowed: a power of two up to ${maxLength})`);
    if (index % length !== 0) throw new WireViolation(`${name} from index ${index}, not a multiple of its length ${length}`);
    if (base >= MAX_PROOF_LAYERS || proofLayers >= MAX_PROOF_LAYERS) throw new WireViolation(`${name} with base layer ${base} and ${proofLayers} proof layers (allowed: under ${MAX_PROOF_LAYERS} each)`);
    return { root: f.subarray(1, 33), base, index, length, proofLayers };
  }

  /** A piece message from its head (id, index, begin) and its block, wherever each lies. */
  private parsePiece(head: Buffer, block: Buffer): WireMessage {
    const index = this.index(head.readUInt32BE(1), 'piece');
    const begin = head.readUInt32BE(5);
    if (this.limits.pieceSize && this.limits.pieceCount !== undefined && begin + block.length > this.limits.pieceSize(index)) {
      throw new WireViolation(`piece block ${begin}..${begin + block.length} beyond piece ${index} (${this.limits.pieceSize(index)} bytes)`);
    }
    return { type: 'piece', index, begin, block };
  }

  private parse(f: Buffer): WireMessage {
    const id = f[0]!;
    const fixed = (len: number, name: string): void => {
      if (f.length !== len) throw new WireViolation(`${name} of ${f.length - 1} payload bytes, expected ${len - 1}`);
    };
    switch (id) {
      case ID.choke:
        fixed(1, 'choke');
        return { type: 'choke' };
      case ID.unchoke:
        fixed(1, 'unchoke');
        return { type: 'unchoke' };
      case ID.interested:
        fixed(1, 'interested');
        return { type: 'interested' };
      case ID.notInterested:
        fixed(1, 'not interested');
        return { type: 'not-interested' };
      case ID.haveAll:
        fixed(1, 'have all');
        return { type: 'have-all' };
      case ID.haveNone:
        fixed(1, 'have none');
        return { type: 'have-none' };
      case ID.have:
        fixed(5, 'have');
        return { type: 'have', index: this.index(f.readUInt32BE(1), 'have') };
      case ID.suggest:
        fixed(5, 'suggest');
        return { type: 'suggest', index: this.index(f.readUInt32BE(1), 'suggest') };
      case ID.allowedFast:
        fixed(5, 'allowed fast');
        return { type: 'allowed-fast', index: this.index(f.readUInt32BE(1), 'allowed fast') };
      case ID.bitfield: {
        const bits = f.subarray(1);
        const count = this.limits.pieceCount;
        const bad = count === undefined ? null : bitfieldProblem(bits, count);
        if (bad !== null) throw new WireViolation(bad);
        return { type: 'bitfield', bits };
      }
      case ID.request:
        return this.range('request', f);
      case ID.cancel:
        return this.range('cancel', f);
      case ID.reject:
        return this.range('reject', f);
      case ID.piece:
        if (f.length < PIECE_HEAD + 1) throw new WireViolation(`piece message of ${f.length - 1} bytes carries no block`);
        return this.parsePiece(f, f.subarray(PIECE_HEAD));
      case ID.port:
        fixed(3, 'port');
        return { type: 'port', port: f.readUInt16BE(1) };
      case ID.extended:
        if (f.length < 2) throw new WireViolation('extended message without an extension id');
        return { type: 'extended', id: f[1]!, payload: f.subarray(2) };
      case ID.hashRequest:
      case ID.hashReject: {
        const name = id === ID.hashRequest ? 'hash request' : 'hash reject';
        fixed(HASH_RANGE_FRAME, name);
        return { type: id === ID.hashRequest ? 'hash-request' : 'hash-reject', ...this.hashRange(name, f, MAX_HASH_REQUEST) };
      }
      case ID.hashes: {
        const r = this.hashRange('hashes', f, MAX_HASHES);
        const want = HASH_BYTES * (r.length + unclesFor(r.length, r.proofLayers));
        if (f.length - HASH_RANGE_FRAME !== want) throw new WireViolation(`hashes message with ${f.length - HASH_RANGE_FRAME} bytes of hashes, expected ${want} for ${r.length} nodes and ${r.proofLayers} proof layers`);
        return { type: 'hashes', ...r, hashes: f.subarray(HASH_RANGE_FRAME) };
      }
      default:
        throw new WireViolation(`unknown message id ${id}`);
    }
  }
}

/** Why `bits` cannot be a bitfield of `count` pieces (BEP 3: exactly its length, spare bits clear), or null. */
export function bitfieldProblem(bits: Uint8Array, count: number): string | null {
  const want = Math.ceil(count / 8);
  if (bits.length !== want) return `bitfield of ${bits.length} bytes, expected ${want}`;
  const spare = want * 8 - count;
  return spare > 0 && (bits[want - 1]! & ((1 << spare) - 1)) !== 0 ? 'bitfield has spare bits set' : null;
}
