/**
 * RC4 for Message Stream Encryption. Node's OpenSSL 3 build has RC4 only in the legacy
 * provider, which is not loaded by default, so it is done here; MSE connections select
 * plaintext after the handshake whenever the peer allows it, so this mostly runs over a few
 * hundred handshake bytes.
 */
export class Rc4 {
  private readonly s = new Uint8Array(256);
  private i = 0;
  private j = 0;

  /** MSE uses RC4-drop1024: the first 1024 bytes of keystream are discarded. */
  constructor(key: Uint8Array, drop = 1024) {
    const s = this.s;
    for (let i = 0; i < 256; i++) s[i] = i;
    for (let i = 0, j = 0; i < 256; i++) {
      j = (j + s[i]! + key[i % key.length]!) & 0xff;
      const t = s[i]!;
      s[i] = s[j]!;
      s[j] = t;
    }
    if (drop > 0) this.update(new Uint8Array(drop));
  }

  /** XORs `data` with the next keystream bytes into `out` (a new buffer unless given; may be `data`). */
  update(data: Uint8Array, out: Uint8Array = Buffer.allocUnsafe(data.length)): Buffer {
    const s = this.s;
    let i = this.i;
    let j = this.j;
    for (let n = 0; n < data.length; n++) {
      i = (i + 1) & 0xff;
      const si = s[i]!;
      j = (j + si) & 0xff;
      const sj = s[j]!;
      s[i] = sj;
      s[j] = si;
      out[n] = data[n]! ^ s[(si + sj) & 0xff]!;
    }
    this.i = i;
    this.j = j;
    return Buffer.from(out.buffer, out.byteOffset, data.length);
  }
}
