/**
 * Downloads over uTP on loopback from 4 unthrottled uTP-only python-libtorrent seeders (TCP off
 * on their side; one lt-swarm.py process): our `download --no-tcp` against a python-libtorrent
 * leecher over uTP given the same peers; the same two through relays that lose, duplicate and
 * reorder 2% of the datagrams (one relay per seeder, fresh for each run); and our `download
 * --no-utp` from 4 TCP-only seeders of the same data, for the gap between our two transports.
 * Every leg writes a fresh folder, checked by SHA-1; the order rotates every run.
 * Run alone: `node dist/bench/utp-swarm.js` (env BENCH_UTP_MIB, default 256; BENCH_UTP_RUNS,
 * default 3; BENCH_UTP_LEGS, a comma list of leg names).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { hasLibtorrent, SYSTEM_PYTHON } from '../test/helpers/interop.js';
import { LT_SWARM_PY, LtSwarm } from '../test/helpers/lt-swarm.js';
import { udpRelay, type UdpRelay } from '../test/helpers/udp-relay.js';
import { CLI, badRuns, fmt, legTable, makeData, measureCommand, run, sha1File, type LegResult } from './harness.js';

const SEEDERS = 4;
const LOSS = 0.02;
const LIMIT_S = 600;

interface Leg {
  name: string;
  /** which seeders: uTP-only ones, the same through lossy relays, or TCP-only ones */
  swarm: 'utp' | 'lossy' | 'tcp';
  argv(torrent: string, out: string, err: string, peerArgs: string[]): string[];
}

const ours = (transport: string) => (torrent: string, out: string, err: string, peerArgs: string[]): string[] =>
  ['bash', '-c', 't=$1 o=$2; exec 2>"$3"; shift 3; exec "$0" download "$t" -o "$o" "$@" --no-announce --no-dht --quiet --port 0', CLI, torrent, out, err, ...peerArgs, transport];
// LT_TRANSPORT=utp: the leecher speaks uTP only (test/fixtures/lt_transport.py)
const libtorrent = (torrent: string, out: string, err: string, peerArgs: string[]): string[] =>
  ['bash', '-c', 'py=$1 t=$2 o=$3; exec 2>"$4" > /dev/null; shift 4; LT_TRANSPORT=utp exec "$0" "$py" --leech "$t" "$o" 600 "$@"', SYSTEM_PYTHON, LT_SWARM_PY, torrent, out, err, ...peerArgs];

const LEGS: Leg[] = [
  { name: 'download-utp', swarm: 'utp', argv: ours('--no-tcp') },
  { name: 'libtorrent-utp', swarm: 'utp', argv: libtorrent },
  { name: 'download-utp-2%', swarm: 'lossy', argv: ours('--no-tcp') },
  { name: 'libtorrent-utp-2%', swarm: 'lossy', argv: libtorrent },
  { name: 'download-tcp', swarm: 'tcp', argv: ours('--no-utp') },
];

export async function benchUtpSwarm(sizeMiB = Number(process.env['BENCH_UTP_MIB'] ?? 256), runs = Number(process.env['BENCH_UTP_RUNS'] ?? 3)): Promise<string[]> {
  if (!hasLibtorrent()) return ['## utp-swarm', '', 'skipped: python3-libtorrent is not installed'];
  const wanted = process.env['BENCH_UTP_LEGS']?.split(',');
  const legs = LEGS.filter((l) => wanted === undefined || wanted.includes(l.name));
  const dir = await mkdtemp(join(tmpdir(), 'tt-bench-utp-'));
  const swarms: LtSwarm[] = [];
  let relays: UdpRelay[] = [];
  try {
    const sha1 = await makeData(join(dir, 'data.bin'), sizeMiB);
    const torrent = join(dir, 'x.torrent');
    // nothing lives in this process yet: spawnSync is harmless here
    const c = spawnSync(CLI, ['create', join(dir, 'data.bin'), '-o', torrent, '--piece-length', String(1 << 20), '--quiet'], { encoding: 'utf8' });
    if (c.status !== 0) throw new Error(`create: ${c.stderr}`);
    const ports = { utp: [] as number[], tcp: [] as number[] };
    for (const transport of ['utp', 'tcp'] as const) {
      const lt = await LtSwarm.start({ LT_TRANSPORT: transport });
      swarms.push(lt);
      // our own data, just written: trusted (libtorrent's seed mode), no hash check
      for (let i = 0; i < SEEDERS; i++) ports[transport].push((await lt.seedMany([{ torrent, data: dir }], 0, { trust: true })).port);
    }
    const peerArgs = (list: number[]): string[] => list.flatMap((p) => ['--peer', `127.0.0.1:${p}`]);

    const results: LegResult[] = [];
    let seed = 1;
    for (let r = 0; r < runs; r++) {
      for (let k = 0; k < legs.length; k++) {
        const leg = legs[(k + r) % legs.length]!;
        let peers: number[];
        if (leg.swarm === 'lossy') {
          relays = await Promise.all(ports.utp.map((p) => udpRelay(p, { loss: LOSS, duplicate: LOSS, reorder: LOSS, seed: seed++ })));
          peers = relays.map((x) => x.port);
        } else peers = ports[leg.swarm];
        const out = join(dir, `out-${r}`);
        const err = join(dir, `err-${leg.name}-${r}.txt`);
        await run('sync', []);
        try {
          const m = await measureCommand('timeout', ['-k', '5', String(LIMIT_S), ...leg.argv(torrent, out, err, peerArgs(peers))]);
          const verified = m.code === 0 && (await sha1File(join(out, 'data.bin')).catch(() => '')) === sha1;
          const stderr = (await readFile(err, 'utf8').catch(() => '')).split(/[\r\n]/).map((l) => l.trim()).filter(Boolean);
          results.push({ ...m, leg: leg.name, verified, stderr });
        } finally {
          await rm(out, { recursive: true, force: true });
          await Promise.all(relays.splice(0).map((x) => x.close()));
        }
        await sleep(1000); // the seeders see the last connections close before the next leg
      }
    }

    const table = legTable(legs.map((l) => l.name), results, sizeMiB);
    const out = [
      `## utp-swarm (${sizeMiB} MiB, 1 MiB pieces, ${SEEDERS} unthrottled uTP-only python-libtorrent seeders on loopback in one process; 2%: through relays losing, duplicating and reordering ${LOSS * 100}% of datagrams; tcp: ${SEEDERS} TCP-only seeders of the same data; ${runs} runs, order rotated; verified runs only)`,
      '',
      ...table.rows,
      '',
      'wall: the whole process (the libtorrent legs include python startup, ~0.2 s); CPU: user + sys (GNU time), median, per GiB.',
      '',
    ];
    const ratio = (a: string, b: string, what: string, target?: string): void => {
      const x = table.med.get(a);
      const y = table.med.get(b);
      if (x !== undefined && y !== undefined) out.push(`- ${what}: **${fmt(x / y)}×**${target ? ` (target ≤ ${target})` : ''}`);
    };
    ratio('download-utp', 'libtorrent-utp', 'our uTP download / libtorrent over uTP, wall time', '1.2');
    ratio('download-utp-2%', 'libtorrent-utp-2%', 'the same through the 2% relays', '1.2');
    ratio('download-utp', 'download-tcp', 'our uTP download / our TCP download (the gap between our transports)');
    out.push(...badRuns(results));
    return out;
  } finally {
    await Promise.all(relays.map((x) => x.close()));
    for (const lt of swarms) await lt.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const line of await benchUtpSwarm()) console.log(line);
}
