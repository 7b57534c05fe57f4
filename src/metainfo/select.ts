import type { Torrent } from './torrent.js';

/** A file spec that names no file of the torrent. */
export class SelectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SelectError';
  }
}

/**
 * File indexes from file specs: a path inside the torrent as `info` prints it joined by '/'
 * (with or without the torrent's name in front), or a file index as shown by `info`.
 * SelectError names a spec that is no file of the torrent.
 */
export function fileIndexes(t: Torrent, specs: ReadonlyArray<string | number>): Set<number> {
  const out = new Set<number>();
  for (const spec of specs) {
    const text = String(spec);
    let found = -1;
    if (/^(?:0|[1-9]\d*)$/.test(text) && Number(text) < t.files.length) found = Number(text);
    else {
      const want = text.replace(/^\.?\/+/, '');
      found = t.files.findIndex((f) => {
        const p = f.path.join('/');
        return p === want || `${t.name}/${p}` === want;
      });
    }
    if (found < 0 || t.files[found]!.pad) throw new SelectError(`no file ${JSON.stringify(text)} in the torrent (see: torrent-tools info)`);
    out.add(found);
  }
  return out;
}
