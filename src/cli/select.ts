import type { Torrent } from '../metainfo/torrent.js';
import { UsageError } from './errors.js';

/**
 * File indexes from --select values: a path inside the torrent as `info` prints it joined by
 * '/' (with or without the torrent's name in front), or a file index as shown by `info`.
 */
export function resolveSelect(t: Torrent, specs: readonly string[]): Set<number> {
  const out = new Set<number>();
  for (const spec of specs) {
    let found = -1;
    if (/^(?:0|[1-9]\d*)$/.test(spec) && Number(spec) < t.files.length) found = Number(spec);
    else {
      const want = spec.replace(/^\.?\/+/, '');
      found = t.files.findIndex((f) => {
        const p = f.path.join('/');
        return p === want || `${t.name}/${p}` === want;
      });
    }
    if (found < 0 || t.files[found]!.pad) throw new UsageError(`--select: no file ${JSON.stringify(spec)} in the torrent (see: torrent-tools info)`);
    out.add(found);
  }
  return out;
}
