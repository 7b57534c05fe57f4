/** A piece bitfield in BEP 3 order: piece 0 is the high bit of byte 0. */
export class Bitfield {
  readonly bytes: Uint8Array;
  readonly length: number;
  private count = 0;

  constructor(length: number, from?: Uint8Array) {
    this.length = length;
    this.bytes = new Uint8Array(Math.ceil(length / 8));
    if (from) {
      this.bytes.set(from.subarray(0, this.bytes.length));
      for (let i = 0; i < length; i++) if (this.has(i)) this.count++;
    }
  }

  has(i: number): boolean {
    return (this.bytes[i >> 3]! & (0x80 >> (i & 7))) !== 0;
  }

  set(i: number): boolean {
    if (this.has(i)) return false;
    this.bytes[i >> 3]! |= 0x80 >> (i & 7);
    this.count++;
    return true;
  }

  setAll(): void {
    for (let i = 0; i < this.length; i++) this.set(i);
  }

  /** pieces set */
  get size(): number {
    return this.count;
  }

  get complete(): boolean {
    return this.count === this.length;
  }

  /** The pieces set, in order. */
  *indexes(): IterableIterator<number> {
    for (let i = 0; i < this.length; i++) if (this.has(i)) yield i;
  }

  toBuffer(): Buffer {
    return Buffer.from(this.bytes);
  }
}
