/**
 * The web seeds of one job: one loopback peer (web-seed-peer.ts) per URL, started once the
 * torrent is known, handed to the swarm as peers, closed with the job.
 */
import type { LogLevel } from '../log.js';
import type { Torrent } from '../metainfo/torrent.js';
import type { PeerRecord } from '../peers/record.js';
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

  /** Starts one loopback peer per URL; resolves to the records the swarm should dial. */
  async start(t: Torrent, urls: readonly string[], log: (line: string, level: LogLevel) => void, timeoutMs?: number): Promise<PeerRecord[]> {
    const recs: PeerRecord[] = [];
    for (const url of urls) {
      const p = new WebSeedPeer({ torrent: t, url, log, timeoutMs });
      this.peers.push(p);
      recs.push(await p.listen());
    }
    return recs;
  }

  async close(): Promise<void> {
    await Promise.all(this.peers.map((p) => p.close()));
  }
}
