import { UsageError } from './errors.js';

/** `--pieces 0-99,200`: piece indexes, checked against the torrent. */
export function parsePieceList(spec: string, pieceCount: number): number[] {
  const out = new Set<number>();
  for (const part of spec.split(',')) {
    const m = /^(0|[1-9]\d*)(?:-(0|[1-9]\d*))?$/.exec(part.trim());
    if (!m) throw new UsageError(`--pieces: expected indexes and ranges like 0-99,200, got ${JSON.stringify(part)}`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new UsageError(`--pieces: empty range ${part}`);
    if (b >= pieceCount) throw new UsageError(`--pieces: ${b} is beyond the torrent's ${pieceCount} pieces`);
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}
