/** Bounded caches of open handles: which entry to close first. */

export interface Used {
  /** callers holding it now: an entry in use is never closed */
  users: number;
  /** a tick of the last use (`nextUse`) */
  lastUse: number;
}

let clock = 0;

/**
 * A tick for `lastUse`. One clock for every cache of the thread, so that entries of different
 * caches compare: a limit shared by many stores closes the least recently used of all of them
 * (open-files.ts). 2^53 ticks are never reached.
 */
export function nextUse(): number {
  return ++clock;
}

/** The key of the least recently used entry that nobody holds, or null when all are held. */
export function leastRecentlyUsedIdle<K>(entries: ReadonlyMap<K, Used>): K | null {
  let victim: K | null = null;
  let oldest = Infinity;
  for (const [key, e] of entries) {
    if (e.users === 0 && e.lastUse < oldest) {
      oldest = e.lastUse;
      victim = key;
    }
  }
  return victim;
}

/** The `lastUse` of the least recently used entry nobody holds; Infinity when all are held (open-files.ts Holder). */
export function oldestIdleUse<K>(entries: ReadonlyMap<K, Used>): number {
  const key = leastRecentlyUsedIdle(entries);
  return key === null ? Infinity : entries.get(key)!.lastUse;
}
