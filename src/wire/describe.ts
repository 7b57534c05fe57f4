/** One JSON-able summary per wire message, for `peer` traces: payloads summarised, never dumped. */
import { decode } from '../bencode/decoder.js';
import { rawJson } from '../tracker/reply.js';
import { DHT_BIT, EXTENSION_BIT, FAST_BIT, hasBit, type Handshake, type WireMessage } from './protocol.js';

export function describeHandshake(h: Handshake): Record<string, unknown> {
  const ext: string[] = [];
  if (hasBit(h.reserved, FAST_BIT)) ext.push('fast');
  if (hasBit(h.reserved, EXTENSION_BIT)) ext.push('extended');
  if (hasBit(h.reserved, DHT_BIT)) ext.push('dht');
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

export function describeMessage(m: WireMessage): Record<string, unknown> {
  switch (m.type) {
    case 'bitfield':
      return { type: m.type, pieces: countBits(m.bits), bytes: m.bits.length, ...(m.bits.length <= 32 ? { hex: m.bits.toString('hex') } : {}) };
    case 'piece':
      return { type: m.type, index: m.index, begin: m.begin, length: m.block.length };
    case 'extended': {
      if (m.id === 0) {
        try {
          return { type: m.type, id: 0, handshake: rawJson(decode(m.payload, { maxDepth: 16, allowUnsorted: true })) };
        } catch {
          return { type: m.type, id: 0, bytes: m.payload.length, malformed: true };
        }
      }
      return { type: m.type, id: m.id, bytes: m.payload.length };
    }
    default:
      return { ...m };
  }
}
