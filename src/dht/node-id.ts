/** 160-bit DHT ids (BEP 5): XOR distance and the shared-prefix length that picks a bucket. */
import { randomBytes } from 'node:crypto';

export const ID_BYTES = 20;

export function randomId(): Buffer {
  return randomBytes(ID_BYTES);
}

/** -1, 0, 1 as `a` is closer to, as close to, or farther from `target` than `b`. */
export function compareDistance(target: Buffer, a: Buffer, b: Buffer): number {
  for (let i = 0; i < ID_BYTES; i++) {
    const da = a[i]! ^ target[i]!;
    const db = b[i]! ^ target[i]!;
    if (da !== db) return da < db ? -1 : 1;
  }
  return 0;
}

/** Leading bits `a` and `b` share (160 when equal). */
export function sharedPrefix(a: Buffer, b: Buffer): number {
  for (let i = 0; i < ID_BYTES; i++) {
    const x = a[i]! ^ b[i]!;
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return ID_BYTES * 8;
}

/** A random id sharing exactly `bits` leading bits with `id` (for refreshing that bucket). */
export function randomIdWithPrefix(id: Buffer, bits: number): Buffer {
  const out = randomId();
  const whole = Math.floor(bits / 8);
  id.copy(out, 0, 0, whole);
  if (bits < ID_BYTES * 8) {
    const rem = bits % 8;
    const mask = rem === 0 ? 0 : (0xff << (8 - rem)) & 0xff;
    const flip = 0x80 >> rem;
    // keep `rem` bits of id, flip the next one, randomise the rest
    out[whole] = (id[whole]! & mask) | ((id[whole]! & flip) ^ flip) | (out[whole]! & ~(mask | flip) & 0xff);
  }
  return out;
}
