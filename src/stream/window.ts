/**
 * Which pieces the readers of a stream need next: the window ahead of each reader's position,
 * as one priority list for the swarm (Swarm.prioritize). The piece each reader is blocked on
 * comes first (those are the urgent ones, asked of two peers), then the readers' windows taken
 * in turn, so that two players (or a player and a seek) share the swarm fairly.
 */

/** A response being sent: its position and its end, in bytes of the torrent (end exclusive). */
export interface ReaderPosition {
  pos: number;
  end: number;
}

export interface Priority {
  pieces: number[];
  /** how many of the first `pieces` are the ones readers are blocked on */
  urgent: number;
}

/**
 * The priority list for `readers`: for each, the missing pieces from its position up to
 * `windowPieces` pieces ahead (never past its end). `have` says which pieces are on disk.
 */
export function priorityOf(readers: Iterable<ReaderPosition>, pieceLength: number, windowPieces: number, have: (i: number) => boolean): Priority {
  const lists: number[][] = [];
  for (const r of readers) {
    if (r.pos >= r.end) continue;
    const first = Math.floor(r.pos / pieceLength);
    const last = Math.min(Math.floor((r.end - 1) / pieceLength), first + windowPieces - 1);
    const list: number[] = [];
    for (let i = first; i <= last; i++) if (!have(i)) list.push(i);
    if (list.length > 0) lists.push(list);
  }
  const pieces: number[] = [];
  const seen = new Set<number>();
  const add = (i: number): void => {
    if (seen.has(i)) return;
    seen.add(i);
    pieces.push(i);
  };
  for (const l of lists) add(l[0]!);
  const urgent = pieces.length;
  for (let k = 1, more = true; more; k++) {
    more = false;
    for (const l of lists) {
      if (k < l.length) {
        add(l[k]!);
        more = true;
      }
    }
  }
  return { pieces, urgent };
}
