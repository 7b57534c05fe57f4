/**
 * The web seeds of one job: one in-process peer (web-seed-peer.ts) per URL, started once the
 * torrent is known, handed to the swarm as peers, closed with the job.
 */
import type { LogLevel } from '../log.js';
import type { Torrent } from '../metainfo/torrent.js';
import type { PeerRecord } from '../peers/record.js';
import type { WireSocket } from '../wire/memory-pipe.js';
import { WebSeedPeer } from './web-seed-peer.js';

/** Web seeds per torrent at most: a url-list from outside is bounded like everything else. */
export const MAX_WEB_SEEDS = 32;

/**
 * The URLs to use: the torrent's url-list (a magnet's ws= are in it once the metadata is known)
 * unless `useUrlList` is false, then `extra`; duplicates and URLs we cannot fetch (not http: or
 * https:) left out, the latter with a warning.
 */
export function webSeedUrls(t: Torrent, extra: readonly string[], useUrlList: boolean, warn: (m: string) => void): string[] {
  const out: string[] = [];
  for (const u of [...(useUrlList ? t.urlList : []), ...extra]) {
    if (out.includes(u)) continue;
    if (!/^https?:\/\/./i.test(u)) {
      warn(`warning: web seed ${u.slice(0, 200)}: only http: and https: URLs are supported; skipped`);
      continue;
    }
    if (out.length >= MAX_WEB_SEEDS) {
      warn(`warning: more than ${MAX_WEB_SEEDS} web seeds; the rest are skipped`);
      break;
    }
    out.push(u);
  }
  return out;
}

export class WebSeeds {
  readonly peers: WebSeedPeer[] = [];

  /** One peer per URL: what to hand the swarm (`swarm.addPeer(rec, dial)`). */
  start(t: Torrent, urls: readonly string[], log: (line: string, level: LogLevel) => void, timeoutMs?: number): Array<{ rec: PeerRecord; dial: () => WireSocket }> {
    return urls.map((url) => {
      const p = new WebSeedPeer({ torrent: t, url, log, timeoutMs });
      this.peers.push(p);
      return { rec: p.record(), dial: p.connect };
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.close()));
  }
}
