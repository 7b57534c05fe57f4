/**
 * Typed client of test/fixtures/lt-swarm.py: one python process hosting many libtorrent
 * sessions (a process per peer would cost ~100 ms and 30 MiB each on a 2-core machine).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SYSTEM_PYTHON } from './interop.js';

export const LT_SWARM_PY = fileURLToPath(new URL('../../../test/fixtures/lt-swarm.py', import.meta.url));

export interface LtSeeder {
  name: string;
  port: number;
  /** 40 hex digits: the peer id the session hands out in handshakes */
  peerId: string;
  infoHash: string;
}

/** One session seeding many torrents: one port, one upload limit for all of them. */
export interface LtManySeeder extends LtSeeder {
  /** in the order of the torrents given */
  infoHashes: string[];
}

export interface LtPeerStats {
  ip: string;
  port: number;
  client: string;
  total_download: number;
  total_upload: number;
  down_speed: number;
  up_speed: number;
  seed: boolean;
}

export interface LtStats {
  name: string;
  kind: 'seed' | 'leech';
  progress: number;
  is_seeding: boolean;
  total_download: number;
  total_upload: number;
  total_payload_download: number;
  total_payload_upload: number;
  num_peers: number;
  peers: LtPeerStats[];
}

export interface LtLeechOptions {
  torrent: string;
  out: string;
  /** use the torrent's trackers (re-announcing at their interval) */
  trackers: boolean;
  peers?: string[];
  uploadRate?: number;
  downloadRate?: number;
  name?: string;
}

/** One session leeching many torrents (each into its own `out`), done once all are seeding. */
export interface LtLeechManyOptions extends Omit<LtLeechOptions, 'torrent' | 'out'> {
  torrents: Array<{ torrent: string; out: string }>;
}

type Reply = Record<string, unknown>;
interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class LtSwarm {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly done = new Map<string, number>();
  private readonly doneWaiters = new Map<string, Array<(seconds: number) => void>>();
  private exited: string | null = null;
  private stderrTail = '';

  private constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => this.onLine(line));
    child.stderr!.on('data', (c: Buffer) => (this.stderrTail = (this.stderrTail + c.toString()).slice(-2000)));
    child.on('exit', (code, signal) => {
      this.exited = `lt-swarm.py exited (${signal ?? code}): ${this.stderrTail.trim()}`;
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(this.exited));
      }
      this.pending.clear();
    });
    child.stdin!.on('error', () => {}); // it may be gone already: the exit handler reports that
  }

  /** The python process: to read its RSS and CPU time from /proc when it stands for a client. */
  get pid(): number {
    return this.child.pid!;
  }

  /** `env`: e.g. LT_TRANSPORT=utp for sessions that speak uTP only (test/fixtures/lt_transport.py). */
  static start(env: Record<string, string> = {}): Promise<LtSwarm> {
    const child = spawn(SYSTEM_PYTHON, [LT_SWARM_PY], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const sw = new LtSwarm(child);
    // the first reply proves libtorrent imported and the loop runs
    return sw.request('list', {}, 30_000).then(() => sw);
  }

  private onLine(line: string): void {
    let msg: Reply;
    try {
      msg = JSON.parse(line) as Reply;
    } catch {
      return; // not ours (libtorrent never prints, but a stray print must not kill the harness)
    }
    if (msg['event'] === 'done' && typeof msg['name'] === 'string') {
      const seconds = Number(msg['seconds']);
      this.done.set(msg['name'], seconds);
      for (const w of this.doneWaiters.get(msg['name']) ?? []) w(seconds);
      this.doneWaiters.delete(msg['name']);
      return;
    }
    const id = msg['id'];
    if (typeof id !== 'number' || 'event' in msg) return;
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (typeof msg['error'] === 'string') p.reject(new Error(`lt-swarm: ${msg['error']}`));
    else p.resolve(msg);
  }

  request(cmd: string, args: Record<string, unknown>, timeoutMs = 30_000): Promise<Reply> {
    if (this.exited !== null) return Promise.reject(new Error(this.exited));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`lt-swarm: no reply to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.child.stdin!.write(`${JSON.stringify({ ...args, id, cmd })}\n`);
    });
  }

  /** A seeder, replying once its data is hash-checked; uploadRate in bytes/s, 0 = unlimited. */
  async seed(torrent: string, data: string, uploadRate: number, name?: string, timeoutMs = 120_000): Promise<LtSeeder> {
    const r = await this.request('seed', { torrent, data, upload_rate: uploadRate, name }, timeoutMs);
    return { name: String(r['name']), port: Number(r['port']), peerId: Buffer.from(String(r['peer_id']), 'latin1').toString('hex'), infoHash: String(r['info_hash']) };
  }

  /**
   * One session seeding all `torrents` (each's data under its `data`), replying once every one
   * is seeding; `trust` skips the hash check (libtorrent's seed mode: setup in no time).
   */
  async seedMany(torrents: Array<{ torrent: string; data: string }>, uploadRate: number, o: { name?: string; trust?: boolean; timeoutMs?: number } = {}): Promise<LtManySeeder> {
    const r = await this.request('seed', { torrents, upload_rate: uploadRate, name: o.name, trust: o.trust ?? false }, o.timeoutMs ?? 120_000);
    const hashes = r['info_hashes'];
    return { name: String(r['name']), port: Number(r['port']), peerId: Buffer.from(String(r['peer_id']), 'latin1').toString('hex'), infoHash: String(r['info_hash']), infoHashes: Array.isArray(hashes) ? hashes.map(String) : [] };
  }

  /** One session leeching all `torrents`; `waitDone(name)` resolves once every one is seeding. */
  async leechMany(o: LtLeechManyOptions): Promise<{ name: string; port: number }> {
    const r = await this.request('leech', { torrents: o.torrents, trackers: o.trackers, peers: o.peers ?? [], upload_rate: o.uploadRate ?? 0, download_rate: o.downloadRate ?? 0, name: o.name });
    return { name: String(r['name']), port: Number(r['port']) };
  }

  async leech(o: LtLeechOptions): Promise<{ name: string; port: number }> {
    const r = await this.request('leech', { torrent: o.torrent, out: o.out, trackers: o.trackers, peers: o.peers ?? [], upload_rate: o.uploadRate ?? 0, download_rate: o.downloadRate ?? 0, name: o.name });
    return { name: String(r['name']), port: Number(r['port']) };
  }

  /** Seconds from the leech command until that leecher became a seed. */
  waitDone(name: string, timeoutMs: number): Promise<number> {
    const known = this.done.get(name);
    if (known !== undefined) return Promise.resolve(known);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`lt-swarm: ${name} not done within ${timeoutMs} ms`)), timeoutMs);
      const list = this.doneWaiters.get(name) ?? [];
      list.push((s) => {
        clearTimeout(timer);
        resolve(s);
      });
      this.doneWaiters.set(name, list);
    });
  }

  async stop(name: string): Promise<void> {
    await this.request('stop', { name });
  }

  async stats(name: string): Promise<LtStats> {
    return (await this.request('stats', { name })) as unknown as LtStats;
  }

  /** Asks it to quit, and kills it when it does not within 5 s: never leaves a process behind. */
  async close(): Promise<void> {
    if (this.exited !== null) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    this.request('quit', {}, 5000).catch(() => {});
    this.child.stdin!.end();
    await gone;
    clearTimeout(killer);
  }
}
