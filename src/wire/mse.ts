/**
 * Message Stream Encryption (MSE/PE, the Vuze/libtorrent "protocol encryption" handshake):
 * a 768-bit Diffie-Hellman exchange, then RC4-drop1024 keyed by the shared secret and the info
 * hash. libtorrent, qBittorrent and Transmission try it first on outgoing connections, so a
 * peer that only speaks plaintext costs them a failed connect and a retry (about a second with
 * libtorrent); some refuse plaintext altogether.
 *
 * Both roles are pure state machines over bytes: `push` takes what arrived, the `send` callback
 * gets what to write, and the result says which cipher (or plaintext) carries the rest of the
 * stream. Every length is bounded by the spec (pads ≤ 512 bytes, the sync search ≤ 532
 * bytes), so a hostile peer can make us buffer at most about 70 KB before a violation.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { WireViolation } from './frame-decoder.js';
import { Rc4 } from './rc4.js';

const PRIME = BigInt(
  '0xFFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563',
);
const KEY_LEN = 96;
const MAX_PAD = 512;
const VC = Buffer.alloc(8);
export const CRYPTO_PLAINTEXT = 1;
export const CRYPTO_RC4 = 2;
/** the plaintext BitTorrent handshake starts with these 20 bytes; an MSE public key does not */
export const PLAIN_PREFIX = Buffer.from('\x13BitTorrent protocol', 'latin1');

export interface MseResult {
  /** RC4 state for what we send / receive next; null when plaintext was selected */
  encrypt: Rc4 | null;
  decrypt: Rc4 | null;
  infoHash: Buffer;
  /** what the peer sent after the handshake, decrypted (its initial payload first) */
  rest: Buffer;
}

const sha1 = (...parts: (Buffer | string)[]): Buffer => {
  const h = createHash('sha1');
  for (const p of parts) h.update(p);
  return h.digest();
};

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

const toBig = (b: Buffer): bigint => BigInt(`0x${b.toString('hex') || '0'}`);
const toBytes = (n: bigint): Buffer => Buffer.from(n.toString(16).padStart(KEY_LEN * 2, '0'), 'hex');

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let r = 1n;
  let b = base % mod;
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) r = (r * b) % mod;
    b = (b * b) % mod;
  }
  return r;
}

/**
 * One side's Diffie-Hellman key pair. The spec's 160-bit private keys with BigInt take about
 * half a millisecond; node's DiffieHellman with this (non-standard) prime checks its primality
 * on every construction, about 30 ms of CPU per connection.
 */
export class KeyPair {
  private readonly x: bigint;
  readonly publicKey: Buffer;

  /** `random(20)` is the secret exponent (the fuzzer gives a known one, to play the other side) */
  constructor(random: (n: number) => Buffer) {
    this.x = toBig(random(20));
    this.publicKey = toBytes(modPow(2n, this.x, PRIME));
  }

  /** The shared secret; the peer's key must be in (1, p-1) or it would force a known secret. */
  secret(peerKey: Buffer): Buffer {
    const y = toBig(peerKey);
    if (y <= 1n || y >= PRIME - 1n) throw new WireViolation('encrypted handshake: invalid Diffie-Hellman key');
    return toBytes(modPow(y, this.x, PRIME));
  }
}

/** Where a handshake's secrets and pads come from: crypto's, unless a test or the fuzzer replays a session. */
export type MseRandom = (n: number) => Buffer;

/** A pad of 0..512 random bytes. */
function pad(random: MseRandom | undefined): Buffer {
  return random === undefined ? randomBytes(randomInt(MAX_PAD + 1)) : random(random(2).readUInt16BE(0) % (MAX_PAD + 1));
}

function ciphers(s: Buffer, skey: Buffer, initiator: boolean): { enc: Rc4; dec: Rc4 } {
  const a = new Rc4(sha1('keyA', s, skey));
  const b = new Rc4(sha1('keyB', s, skey));
  return initiator ? { enc: a, dec: b } : { enc: b, dec: a };
}

/** Bytes arrive in pieces; the handshake consumes them from the front. */
class Input {
  buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    // chunks may live in a reused read buffer: keep a copy
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
  }

  take(n: number): Buffer | null {
    if (this.buf.length < n) return null;
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
}

/**
 * The side that accepted the connection. `skeys` are the info hashes we serve: the initiator
 * names its torrent only as HASH('req2', SKEY) xor HASH('req3', S).
 */
export class MseResponder {
  private readonly input = new Input();
  private readonly keys: KeyPair;
  private readonly random: MseRandom | undefined;
  private readonly skeys: readonly Buffer[];
  private readonly send: (b: Buffer) => void;
  private readonly allowPlaintext: boolean;
  private state: 'key' | 'sync' | 'skey' | 'provide' | 'padc' | 'ia' = 'key';
  private s: Buffer = Buffer.alloc(0);
  private skey: Buffer | null = null;
  private c: { enc: Rc4; dec: Rc4 } | null = null;
  private provide = 0;
  private padLen = 0;

  constructor(opts: { skeys: readonly Buffer[]; send: (b: Buffer) => void; allowPlaintext?: boolean; random?: MseRandom }) {
    this.random = opts.random;
    this.keys = new KeyPair(opts.random ?? randomBytes);
    this.skeys = opts.skeys;
    this.send = opts.send;
    this.allowPlaintext = opts.allowPlaintext ?? true;
  }

  /** Feeds received bytes: the result once the handshake is done, null while more are needed. */
  push(chunk: Buffer): MseResult | null {
    this.input.push(chunk);
    for (;;) {
      switch (this.state) {
        case 'key': {
          const ya = this.input.take(KEY_LEN);
          if (ya === null) return null;
          this.s = this.keys.secret(ya);
          this.send(Buffer.concat([this.keys.publicKey, pad(this.random)]));
          this.state = 'sync';
          break;
        }
        case 'sync': {
          // PadA (≤ 512 bytes) hides where HASH('req1', S) starts
          const marker = sha1('req1', this.s);
          const at = this.input.buf.indexOf(marker);
          if (at < 0) {
            if (this.input.buf.length >= MAX_PAD + 20) throw new WireViolation('encrypted handshake: no synchronisation hash within 532 bytes');
            return null;
          }
          this.input.take(at + 20);
          this.state = 'skey';
          break;
        }
        case 'skey': {
          const x = this.input.take(20);
          if (x === null) return null;
          const want = xor(x, sha1('req3', this.s));
          this.skey = this.skeys.find((k) => sha1('req2', k).equals(want)) ?? null;
          if (this.skey === null) throw new WireViolation('encrypted handshake for a torrent we do not serve');
          this.c = ciphers(this.s, this.skey, false);
          this.state = 'provide';
          break;
        }
        case 'provide': {
          const raw = this.input.take(8 + 4 + 2);
          if (raw === null) return null;
          const m = this.c!.dec.update(raw);
          if (!m.subarray(0, 8).equals(VC)) throw new WireViolation('encrypted handshake: bad verification constant');
          this.provide = m.readUInt32BE(8);
          this.padLen = m.readUInt16BE(12);
          if (this.padLen > MAX_PAD) throw new WireViolation(`encrypted handshake: PadC of ${this.padLen} bytes (at most ${MAX_PAD})`);
          this.state = 'padc';
          break;
        }
        case 'padc': {
          const raw = this.input.take(this.padLen + 2);
          if (raw === null) return null;
          this.padLen = this.c!.dec.update(raw).readUInt16BE(this.padLen);
          this.state = 'ia';
          break;
        }
        case 'ia': {
          const raw = this.input.take(this.padLen);
          if (raw === null) return null;
          const ia = this.c!.dec.update(raw);
          const select = this.allowPlaintext && this.provide & CRYPTO_PLAINTEXT ? CRYPTO_PLAINTEXT : this.provide & CRYPTO_RC4 ? CRYPTO_RC4 : 0;
          if (select === 0) throw new WireViolation(`encrypted handshake: no method we accept offered (crypto_provide ${this.provide})`);
          const reply = Buffer.alloc(8 + 4 + 2);
          reply.writeUInt32BE(select, 8);
          this.send(this.c!.enc.update(reply));
          const rc4 = select === CRYPTO_RC4;
          const rest = rc4 ? this.c!.dec.update(this.input.buf) : this.input.buf;
          return { encrypt: rc4 ? this.c!.enc : null, decrypt: rc4 ? this.c!.dec : null, infoHash: this.skey!, rest: Buffer.concat([ia, rest]) };
        }
      }
    }
  }
}

/** The side that dialled: offers `provide` (CRYPTO_* bits) for the torrent `infoHash`. */
export class MseInitiator {
  private readonly input = new Input();
  private readonly keys: KeyPair;
  private readonly infoHash: Buffer;
  private readonly send: (b: Buffer) => void;
  private readonly provide: number;
  private state: 'key' | 'sync' | 'select' | 'padd' = 'key';
  private c: { enc: Rc4; dec: Rc4 } | null = null;
  private marker: Buffer = Buffer.alloc(0);
  private select = 0;
  private padLen = 0;

  constructor(opts: { infoHash: Buffer; send: (b: Buffer) => void; provide?: number; random?: MseRandom }) {
    this.keys = new KeyPair(opts.random ?? randomBytes);
    this.infoHash = opts.infoHash;
    this.send = opts.send;
    this.provide = opts.provide ?? CRYPTO_PLAINTEXT | CRYPTO_RC4;
    this.send(Buffer.concat([this.keys.publicKey, pad(opts.random)]));
  }

  push(chunk: Buffer): MseResult | null {
    this.input.push(chunk);
    for (;;) {
      switch (this.state) {
        case 'key': {
          const yb = this.input.take(KEY_LEN);
          if (yb === null) return null;
          const s = this.keys.secret(yb);
          this.c = ciphers(s, this.infoHash, true);
          const head = Buffer.alloc(8 + 4 + 2);
          head.writeUInt32BE(this.provide, 8);
          // no PadC and no initial payload: the BitTorrent handshake follows once the method is known
          const body = this.c.enc.update(Buffer.concat([head, Buffer.alloc(2)]));
          this.send(Buffer.concat([sha1('req1', s), xor(sha1('req2', this.infoHash), sha1('req3', s)), body]));
          // the responder's reply starts with ENCRYPT(VC) after PadB: find it with a fresh copy of its cipher
          this.marker = new Rc4(sha1('keyB', s, this.infoHash)).update(VC);
          this.state = 'sync';
          break;
        }
        case 'sync': {
          const at = this.input.buf.indexOf(this.marker);
          if (at < 0) {
            if (this.input.buf.length >= MAX_PAD + 8) throw new WireViolation('encrypted handshake: no reply within 520 bytes');
            return null;
          }
          this.c!.dec.update(this.input.take(at + 8)!.subarray(at));
          this.state = 'select';
          break;
        }
        case 'select': {
          const raw = this.input.take(4 + 2);
          if (raw === null) return null;
          const m = this.c!.dec.update(raw);
          this.select = m.readUInt32BE(0);
          this.padLen = m.readUInt16BE(4);
          if ((this.select !== CRYPTO_PLAINTEXT && this.select !== CRYPTO_RC4) || (this.select & this.provide) === 0) {
            throw new WireViolation(`encrypted handshake: peer selected method ${this.select}, not one we offered`);
          }
          if (this.padLen > MAX_PAD) throw new WireViolation(`encrypted handshake: PadD of ${this.padLen} bytes (at most ${MAX_PAD})`);
          this.state = 'padd';
          break;
        }
        case 'padd': {
          const raw = this.input.take(this.padLen);
          if (raw === null) return null;
          this.c!.dec.update(raw);
          const rc4 = this.select === CRYPTO_RC4;
          const rest = rc4 ? this.c!.dec.update(this.input.buf) : this.input.buf;
          return { encrypt: rc4 ? this.c!.enc : null, decrypt: rc4 ? this.c!.dec : null, infoHash: this.infoHash, rest: Buffer.from(rest) };
        }
      }
    }
  }
}
