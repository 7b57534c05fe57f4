/** Bounded caches of open handles: which entry to close first. */

export interface Used {
  /** callers holding it now: an entry in use is never closed */
  users: number;
  /** a tick of the last use */
  lastUse: number;
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
