/**
 * "Did you mean" for a mistyped option or command: the known name closest to what was typed,
 * when it is close enough to be a typo (an edit or two, or a transposition), else nothing.
 */

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

export function closest(typed: string, known: Iterable<string>): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const dist = distance(typed, k);
    if (dist < bestD) {
      best = k;
      bestD = dist;
    }
  }
  // a typo, not another word: at most 2 edits, and fewer than half the letters
  return best !== null && bestD <= Math.min(2, Math.floor(typed.length / 2)) ? best : null;
}

/** " (did you mean X?)" or "" */
export function didYouMean(typed: string, known: Iterable<string>, prefix = ''): string {
  const c = closest(typed, known);
  return c === null ? '' : ` (did you mean ${prefix}${c}?)`;
}
