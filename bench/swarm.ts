/**
 * Downloads on a loopback swarm of python-libtorrent seeders, through ../shared/lab/bench.sh
 * (it runs everything in a loopback-only network namespace and measures every client the same
 * way): `fetch-pieces | assemble` against aria2c and a python-libtorrent leecher, same run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CLI } from './harness.js';

const LAB = fileURLToPath(new URL('../../../shared/lab/', import.meta.url));

export async function benchSwarm(sizeMiB = Number(process.env['BENCH_SWARM_MIB'] ?? 1024), runs = Number(process.env['BENCH_SWARM_RUNS'] ?? 4)): Promise<string[]> {
  if (!existsSync(`${LAB}bench.sh`)) return ['## swarm', '', 'skipped: ../shared/lab/bench.sh not found'];
  const peers = '$(sed "s/^/--peer 127.0.0.1:/" "$LAB_RUN/seed.ports")';
  // the lab's namespace has no internet and its other clients run without DHT: neither do we
  const legs: Array<[string, string]> = [
    ['fetch-pieces|assemble', `${CLI} fetch-pieces "$TORRENT" ${peers} --no-dht --quiet < /dev/null | ${CLI} assemble "$TORRENT" -o "$OUT" --quiet > /dev/null`],
    ['download', `${CLI} download "$TORRENT" -o "$OUT" --port "$LEECH_PORT" ${peers} --no-announce --no-dht --quiet`],
  ];
  const out = ['## swarm (../shared/lab/bench.sh, 4 python-libtorrent seeders)', ''];
  for (const [name, cmd] of legs) {
    const r = spawnSync('bash', [`${LAB}bench.sh`, String(sizeMiB), '4', String(runs)], {
      encoding: 'utf8',
      env: { ...process.env, CLIENTS: 'libtorrent aria2 cmd', LEECH_NAME: name, LEECH_CMD: cmd },
      timeout: 30 * 60 * 1000,
    });
    out.push(`### ${name}`, '', r.stdout.trim() || `bench.sh failed: ${r.stderr.slice(-2000)}`, '');
  }
  return out;
}
