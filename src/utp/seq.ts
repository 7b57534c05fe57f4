/**
 * uTP sequence and ack numbers are 16 bits and wrap (BEP 29): every comparison goes through
 * here, so a connection whose numbers pass 65535 behaves as one that starts at 1.
 */

export const SEQ_MASK = 0xffff;

/** a + n, wrapped to 16 bits */
export function seqAdd(a: number, n: number): number {
  return (a + n) & SEQ_MASK;
}

/** How far b is after a, as a signed distance in -32768..32767 (b - a on the circle). */
export function seqDiff(a: number, b: number): number {
  const d = (b - a) & SEQ_MASK;
  return d >= 0x8000 ? d - 0x10000 : d;
}

/** a comes before b (within half the circle) */
export function seqLess(a: number, b: number): boolean {
  return seqDiff(a, b) > 0;
}
