import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodePacket, emptyHeader, EXT_SACK, HEADER_SIZE, looksLikeUtp, sackHas, sackSet, ST_DATA, ST_FIN, ST_RESET, ST_STATE, ST_SYN, writeHeader,
} from '../src/utp/packet.js';
import { seqAdd, seqDiff, seqLess } from '../src/utp/seq.js';
import { bytes, int, rng, seedFromEnv } from './helpers/random.js';

/** A packet: `ext` is the first extension's type followed by the chain's bytes (empty: none). */
function packet(type: number, fields: { conn?: number; ts?: number; diff?: number; wnd?: number; seq?: number; ack?: number }, ext: Buffer = Buffer.alloc(0), payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(HEADER_SIZE);
  writeHeader(head, type, fields.conn ?? 0, fields.ts ?? 0, fields.diff ?? 0, fields.wnd ?? 0, fields.seq ?? 0, fields.ack ?? 0);
  if (ext.length === 0) return Buffer.concat([head, payload]);
  head[1] = ext[0]!;
  return Buffer.concat([head, ext.subarray(1), payload]);
}

describe('uTP packet codec', () => {
  it('round-trips every header field, big-endian, at their extremes', () => {
    const seed = seedFromEnv();
    const r = rng(seed);
    const h = emptyHeader();
    for (let n = 0; n < 500; n++) {
      const type = int(r, 0, 4);
      const f = { conn: int(r, 0, 0xffff), ts: int(r, 0, 0xffffffff), diff: int(r, 0, 0xffffffff), wnd: int(r, 0, 0xffffffff), seq: int(r, 0, 0xffff), ack: int(r, 0, 0xffff) };
      const payload = type === ST_DATA ? bytes(r, int(r, 1, 1400)) : Buffer.alloc(0);
      const b = packet(type, f, Buffer.alloc(0), payload);
      assert.equal(decodePacket(b, h), null, `seed ${seed}`);
      assert.deepEqual([h.type, h.connId, h.timestamp, h.timestampDiff, h.wndSize, h.seqNr, h.ackNr], [type, f.conn, f.ts, f.diff, f.wnd, f.seq, f.ack], `seed ${seed}`);
      assert.ok(h.payload.equals(payload));
      assert.equal(h.sack, null);
      assert.ok(looksLikeUtp(b));
    }
  });

  it('reads a selective ack and skips an unknown extension after it', () => {
    // SACK (next = 77, 4 bytes), then extension 77 of 3 bytes (next = 0), then the payload
    const ext = Buffer.from([EXT_SACK, 77, 4, 0b0000_0101, 0, 0, 0x80, 0, 3, 9, 9, 9]);
    const b = packet(ST_DATA, { seq: 5, ack: 10 }, ext, Buffer.from('hi'));
    const h = emptyHeader();
    assert.equal(decodePacket(b, h), null);
    assert.ok(h.sack);
    assert.equal(h.payload.toString(), 'hi');
    // bit i is ack_nr + 2 + i: 12 and 14 received, 13 not, the last bit (31) is ack_nr + 33
    assert.deepEqual([0, 1, 2, 31].map((i) => sackHas(h.sack!, i)), [true, false, true, true]);
  });

  it('takes a selective ack of any length, as libtorrent sends them (23 bytes seen)', () => {
    const ext = Buffer.from([EXT_SACK, 0, 3, 0, 0, 0x01]);
    const h = emptyHeader();
    assert.equal(decodePacket(packet(ST_STATE, { ack: 7 }, ext), h), null);
    assert.equal(h.sack?.length, 3);
    assert.ok(sackHas(h.sack!, 16) && !sackHas(h.sack!, 24));
  });

  it('sets SACK bits least significant first, byte by byte (BEP 29 "reverse byte order")', () => {
    const m = new Uint8Array(4);
    for (const i of [0, 7, 8, 31]) sackSet(m, i);
    assert.deepEqual([...m], [0x81, 0x01, 0x00, 0x80]);
    assert.equal(sackHas(m, 32), false, 'past the mask: not received');
  });

  it('refuses malformed packets with a one-line reason, never a throw', () => {
    const h = emptyHeader();
    const hdr = (type: number) => packet(type, {});
    const cases: Array<[string, Buffer, RegExp]> = [
      ['short', Buffer.alloc(19, 0x01), /shorter than the 20-byte header/],
      ['version 2', Buffer.concat([Buffer.from([0x02]), hdr(ST_STATE).subarray(1)]), /version 2/],
      ['type 5', Buffer.concat([Buffer.from([0x51]), hdr(ST_STATE).subarray(1)]), /type 5 is unknown/],
      ['extension cut', Buffer.concat([hdr(ST_STATE).subarray(0, 1), Buffer.from([1]), hdr(ST_STATE).subarray(2), Buffer.from([0])]), /cut off/],
      ['extension past end', Buffer.concat([hdr(ST_STATE).subarray(0, 1), Buffer.from([1]), hdr(ST_STATE).subarray(2), Buffer.from([0, 8, 0, 0])]), /past the end/],
      ['data without payload', hdr(ST_DATA), /without a payload/],
    ];
    // a chain of nine extensions
    const chain = Buffer.concat([hdr(ST_STATE).subarray(0, 1), Buffer.from([9]), hdr(ST_STATE).subarray(2), ...Array.from({ length: 9 }, () => Buffer.from([9, 0]))]);
    cases.push(['nine extensions', chain, /more than 8 extensions/]);
    for (const [name, b, re] of cases) {
      const reason = decodePacket(b, h);
      assert.ok(reason !== null && re.test(reason), `${name}: ${reason}`);
      assert.ok(!reason!.includes('\n'));
    }
    for (const t of [ST_FIN, ST_STATE, ST_RESET, ST_SYN]) assert.equal(decodePacket(hdr(t), h), null, `type ${t} may be empty`);
  });

  it('never throws on random bytes, and refuses or accepts consistently with looksLikeUtp', () => {
    const seed = seedFromEnv();
    const r = rng(seed);
    const h = emptyHeader();
    for (let n = 0; n < 20_000; n++) {
      const b = bytes(r, int(r, 0, 80));
      if (b.length > 0 && r() < 0.5) b[0] = (int(r, 0, 4) << 4) | 1;
      const reason = decodePacket(b, h);
      if (reason === null) assert.ok(looksLikeUtp(b), `seed ${seed}: accepted what does not look like uTP`);
    }
  });

  it('looksLikeUtp: version 1, type 0..4, 20 bytes at least; not a DHT or tracker packet', () => {
    assert.equal(looksLikeUtp(Buffer.from('d1:ad2:id20:')), false);
    assert.equal(looksLikeUtp(Buffer.alloc(20)), false); // a UDP tracker reply begins 0x00
    assert.equal(looksLikeUtp(Buffer.concat([Buffer.from([0x21]), Buffer.alloc(19)])), true);
    assert.equal(looksLikeUtp(Buffer.concat([Buffer.from([0x41]), Buffer.alloc(18)])), false);
    assert.equal(looksLikeUtp(Buffer.concat([Buffer.from([0x51]), Buffer.alloc(19)])), false);
  });
});

describe('uTP sequence numbers', () => {
  it('compare and subtract across the 16-bit wrap', () => {
    assert.equal(seqAdd(65535, 1), 0);
    assert.equal(seqAdd(0, -1), 65535);
    assert.equal(seqDiff(65530, 3), 9);
    assert.equal(seqDiff(3, 65530), -9);
    assert.ok(seqLess(65535, 0));
    assert.ok(!seqLess(0, 65535));
    assert.ok(seqLess(100, 100 + 32767));
    assert.equal(seqDiff(0, 32768), -32768, 'half the circle counts as behind');
  });
});
