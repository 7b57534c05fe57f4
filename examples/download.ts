// Download with one call: await it, or iterate its events (those `download --json` prints).
// usage: node download.js TORRENT|MAGNET DIR [HOST:PORT...]
import { download, type PeerRecord } from 'torrent-tools';

const [source, dir, ...addresses] = process.argv.slice(2);
if (source === undefined || dir === undefined) throw new Error('usage: download.js TORRENT|MAGNET DIR [HOST:PORT...]');
const peers: PeerRecord[] = addresses.map((a) => {
  const [ip = '', port = ''] = a.split(':');
  return { ip, port: Number(port), source: 'cli' };
});
const job = download(source, dir, { peers, signal: AbortSignal.timeout(10 * 60_000) });
let pieces = 0;
for await (const ev of job) if (ev.event === 'piece') pieces++;
const result = await job;
console.log(`${result.torrent.name}: ${pieces} pieces written, ${result.resumed} already there`);
