import { fileIndexes, SelectError } from '../metainfo/select.js';
import type { Torrent } from '../metainfo/torrent.js';
import { UsageError } from './errors.js';

/** File indexes from --select values (metainfo/select.ts); an unknown file is a usage error. */
export function resolveSelect(t: Torrent, specs: readonly string[]): Set<number> {
  try {
    return fileIndexes(t, specs);
  } catch (e) {
    if (e instanceof SelectError) throw new UsageError(`--select: ${e.message}`);
    throw e;
  }
}
