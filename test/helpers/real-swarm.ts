/**
 * "A swarm that chokes, lags and churns" on loopback: rate-limited python-libtorrent seeders,
 * each behind its own delay relay, announced to a real bittorrent-tracker AS THE RELAY'S
 * address, so every leecher reaches them only with latency. Seeders can leave and join.
 */
import { get } from 'node:http';
import Server from 'bittorrent-tracker/server';
import { startDelayRelay, type DelayRelay } from './delay-relay.js';
import { LtSwarm } from './lt-swarm.js';
import { rng } from './random.js';

export interface SeederSpec {
  /** upload limit, bytes/s */
  rate: number;
  rttMs: number;
}

export interface RealSeeder extends SeederSpec {
  name: string;
  ltPort: number;
  relayPort: number;
  /** 40 hex digits */
  peerId: string;
}

export interface RealSwarmOptions {
  torrentPath: string;
  /** the folder holding the torrent's payload (its name inside) */
  dataDir: string;
  /** the port of the torrent's announce URL http://127.0.0.1:PORT/announce (ports.ts freeTcpPort()) */
  trackerPort: number;
  seeders: SeederSpec[];
  /** what the tracker tells peers; short, so peers that join mid-download are found (default 5: our client's floor) */
  announceIntervalS?: number;
}

export interface RealSwarm {
  trackerUrl: string;
  lt: LtSwarm;
  /** the seeders up now */
  readonly seeders: readonly RealSeeder[];
  join(spec: SeederSpec): Promise<RealSeeder>;
  /** announces `stopped`, then closes the seeder and its relay (its connections drop) */
  leave(name: string): Promise<void>;
  /** a python-libtorrent leecher that finds the seeders through the tracker */
  ltLeech(out: string, o?: { uploadRate?: number; downloadRate?: number }): Promise<{ name: string; port: number; done: (timeoutMs: number) => Promise<number> }>;
  close(): Promise<void>;
}

/** `n` seeders with geometric rates minRate..maxRate and RTTs in [minRtt, maxRtt], shuffled: the same for the same seed. */
export function spreadSeeders(n: number, seed: number, o: { minRate?: number; maxRate?: number; minRttMs?: number; maxRttMs?: number } = {}): SeederSpec[] {
  const lo = o.minRate ?? 256 * 1024;
  const hi = o.maxRate ?? 8 * 1024 * 1024;
  const r = rng(seed);
  const specs = Array.from({ length: n }, (_, i) => ({
    rate: Math.round(lo * (hi / lo) ** (n === 1 ? 1 : i / (n - 1))),
    rttMs: Math.round((o.minRttMs ?? 40) + r() * ((o.maxRttMs ?? 200) - (o.minRttMs ?? 40))),
  }));
  for (let i = specs.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [specs[i], specs[j]] = [specs[j]!, specs[i]!];
  }
  return specs;
}

const pct = (hex: string): string => hex.replace(/../g, '%$&');

/** One HTTP announce on a seeder's behalf, bounded in time; throws on a failure reply. */
export function announceFor(trackerUrl: string, infoHash: string, peerId: string, port: number, event: 'started' | 'stopped'): Promise<void> {
  const q = `info_hash=${pct(infoHash)}&peer_id=${pct(peerId)}&port=${port}&uploaded=0&downloaded=0&left=0&compact=1&numwant=0&event=${event}`;
  return new Promise((resolve, reject) => {
    const req = get(`${trackerUrl}?${q}`, { timeout: 5000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const body = Buffer.concat(parts).toString('latin1');
        if (res.statusCode !== 200 || body.includes('failure reason')) reject(new Error(`announce ${event}: ${res.statusCode} ${body.slice(0, 200)}`));
        else resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error(`announce ${event}: no reply within 5 s`)));
    req.on('error', reject);
  });
}

type AnnounceCb = (err: Error | null, reply?: Record<string, unknown>) => void;
interface TrackerSwarm {
  announce(params: unknown, cb: AnnounceCb): void;
}
type CreateSwarm = (infoHash: string, cb: (err: Error | null, swarm?: TrackerSwarm) => void) => void;

/**
 * bittorrent-tracker sends no "min interval", and libtorrent then assumes 30 s and waits that
 * long: a seeder joining mid-download would be found too late. Every reply says it (a patch of
 * the package's swarm factory, the one hook it has for its replies).
 */
function sayMinInterval(tracker: Server, seconds: number): void {
  const t = tracker as unknown as { createSwarm: CreateSwarm };
  const create = t.createSwarm.bind(tracker);
  t.createSwarm = (infoHash, cb) =>
    create(infoHash, (err, swarm) => {
      if (swarm) {
        const announce = swarm.announce.bind(swarm);
        swarm.announce = (params, done) =>
          announce(params, (e, reply) => {
            if (reply) reply['min interval'] = seconds;
            done(e, reply);
          });
      }
      cb(err, swarm);
    });
}

export interface HttpTracker {
  /** http://127.0.0.1:PORT/announce */
  url: string;
  /** closes it, waiting at most 5 s (a client's keep-alive must not hold us) */
  close(): Promise<void>;
}

/**
 * A bittorrent-tracker (HTTP only) on 127.0.0.1:port; with `intervalS`, it asks for announces
 * that often and says so as its min interval too (sayMinInterval).
 */
export async function startHttpTracker(port: number, intervalS?: number): Promise<HttpTracker> {
  const tracker = new Server({ http: true, udp: false, ws: false, stats: false, ...(intervalS !== undefined ? { interval: intervalS * 1000 } : {}) });
  if (intervalS !== undefined) sayMinInterval(tracker, intervalS);
  tracker.on('warning', () => {});
  tracker.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('tracker did not listen within 5 s')), 5000);
    tracker.listen(port, '127.0.0.1', () => {
      clearTimeout(t);
      resolve();
    });
  });
  return {
    url: `http://127.0.0.1:${port}/announce`,
    close: () =>
      new Promise<void>((r) => {
        const t = setTimeout(r, 5000);
        tracker.close(() => {
          clearTimeout(t);
          r();
        });
      }),
  };
}

export async function startRealSwarm(o: RealSwarmOptions): Promise<RealSwarm> {
  const tracker = await startHttpTracker(o.trackerPort, o.announceIntervalS ?? 5);
  const trackerUrl = tracker.url;
  let lt: LtSwarm;
  try {
    lt = await LtSwarm.start();
  } catch (e) {
    await tracker.close();
    throw e;
  }
  const up = new Map<string, { seeder: RealSeeder; relay: DelayRelay; infoHash: string }>();
  const relays = new Set<DelayRelay>();
  let closed = false;

  const join = async (spec: SeederSpec): Promise<RealSeeder> => {
    const s = await lt.seed(o.torrentPath, o.dataDir, spec.rate);
    const relay = await startDelayRelay({ host: '127.0.0.1', port: s.port }, spec.rttMs / 2);
    relays.add(relay);
    const seeder: RealSeeder = { ...spec, name: s.name, ltPort: s.port, relayPort: relay.port, peerId: s.peerId };
    up.set(s.name, { seeder, relay, infoHash: s.infoHash });
    await announceFor(trackerUrl, s.infoHash, s.peerId, relay.port, 'started');
    return seeder;
  };

  const leave = async (name: string): Promise<void> => {
    const e = up.get(name);
    if (!e) throw new Error(`no seeder ${name}`);
    up.delete(name);
    await announceFor(trackerUrl, e.infoHash, e.seeder.peerId, e.seeder.relayPort, 'stopped').catch(() => {});
    await lt.stop(name).catch(() => {});
    await e.relay.close();
    relays.delete(e.relay);
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await lt.close();
    await Promise.all([...relays].map((r) => r.close()));
    await tracker.close();
  };

  try {
    await Promise.all(o.seeders.map(join));
  } catch (e) {
    await close();
    throw e;
  }

  return {
    trackerUrl,
    lt,
    get seeders() {
      return [...up.values()].map((e) => e.seeder);
    },
    join,
    leave,
    async ltLeech(out, lo = {}) {
      const l = await lt.leech({ torrent: o.torrentPath, out, trackers: true, uploadRate: lo.uploadRate ?? 0, downloadRate: lo.downloadRate ?? 0 });
      return { ...l, done: (ms: number) => lt.waitDone(l.name, ms) };
    },
    close,
  };
}
