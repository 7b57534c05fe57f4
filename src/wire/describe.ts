/** One JSON-able summary per wire message, for `peer` traces: payloads summarised, never dumped. */
import { decode } from '../bencode/decoder.js';
import { toJson } from '../bencode/json.js';
import { decodeMetadataMessage } from './ut-metadata.js';
import { decodePex } from './ut-pex.js';
import { DHT_BIT, EXTENSION_BIT, FAST_BIT, V2_BIT, hasBit, type Handshake, type WireMessage } from './protocol.js';

export function describeHandshake(h: Handshake): Record<string, unknown> {
  const ext: string[] = [];
  if (hasBit(h.reserved, FAST_BIT)) ext.push('fast');
  if (hasBit(h.reserved, EXTENSION_BIT)) ext.push('extended');
  if (hasBit(h.reserved, DHT_BIT)) ext.push('dht');
  if (hasBit(h.reserved, V2_BIT)) ext.push('v2');
  return {
    type: 'handshake',
    infoHash: h.infoHash.toString('hex'),
    peerId: h.peerId.toString('hex'),
    client: h.peerId.subarray(0, 8).toString('latin1').replace(/[^\x20-\x7e]/g, '.'),
    reserved: h.reserved.toString('hex'),
    extensions: ext,
  };
}

function countBits(b: Buffer): number {
  let n = 0;
  for (const x of b) for (let v = x; v; v &= v - 1) n++;
  return n;
}

/** What an extension message says, for the extensions we know; null when it cannot be read. */
function describeExtension(name: string, payload: Buffer): Record<string, unknown> | null {
  try {
    if (name === 'ut_metadata') {
      const m = decodeMetadataMessage(payload, Number.MAX_SAFE_INTEGER);
      return m.type === 'data' ? { msg: 'data', piece: m.piece, totalSize: m.totalSize, length: m.data.length } : { msg: m.type, ...('piece' in m ? { piece: m.piece } : {}) };
    }
    if (name === 'ut_pex') {
      const m = decodePex(payload);
      return { added: m.added.map((p) => ({ ip: p.ip, port: p.port, flags: p.flags })), dropped: m.dropped.map((p) => ({ ip: p.ip, port: p.port })) };
    }
  } catch {
    return { malformed: true };
  }
  return null;
}

/** `extension` names the BEP 10 extension of an extended message, when known. */
export function describeMessage(m: WireMessage, extension?: string): Record<string, unknown> {
  switch (m.type) {
    case 'bitfield':
      return { type: m.type, pieces: countBits(m.bits), bytes: m.bits.length, ...(m.bits.length <= 32 ? { hex: m.bits.toString('hex') } : {}) };
    case 'piece':
      return { type: m.type, index: m.index, begin: m.begin, length: m.block.length };
    case 'extended': {
      if (m.id === 0) {
        try {
          // the tagged mapping of bdecode (man 7 torrent-tools-formats), as a value in the record
          return { type: m.type, id: 0, handshake: JSON.parse(toJson(decode(m.payload, { maxDepth: 16, allowUnsorted: true }))) as unknown };
        } catch {
          return { type: m.type, id: 0, bytes: m.payload.length, malformed: true };
        }
      }
      const detail = extension !== undefined ? describeExtension(extension, m.payload) : null;
      return { type: m.type, id: m.id, ...(extension !== undefined ? { extension } : {}), bytes: m.payload.length, ...detail };
    }
    case 'hash-request':
    case 'hash-reject':
    case 'hashes':
      return { type: m.type, root: m.root.toString('hex'), base: m.base, index: m.index, length: m.length, proofLayers: m.proofLayers, ...(m.type === 'hashes' ? { hashes: m.hashes.length / 32 } : {}) };
    default:
      return { ...m };
  }
}
