// Download with the stages themselves: peers in, verified pieces out, files on disk.
// usage: node pipeline.js TORRENT DIR HOST:PORT...
import { readFile } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AssembleStream, FetchStream, parseTorrent, type AssembleEvent, type PeerRecord } from 'torrent-tools';

const [file, dir, ...addresses] = process.argv.slice(2);
if (file === undefined || dir === undefined) throw new Error('usage: pipeline.js TORRENT DIR HOST:PORT...');
const torrent = parseTorrent(await readFile(file));
const peers: PeerRecord[] = addresses.map((a) => {
  const [ip = '', port = ''] = a.split(':');
  return { ip, port: Number(port), source: 'cli' };
});
const events = new Writable({
  objectMode: true,
  write(ev: AssembleEvent, _encoding, done) {
    if (ev.event === 'complete') console.log(`complete: ${ev.pieces} pieces, ${ev.bytes} bytes`);
    done();
  },
});
await pipeline(Readable.from(peers), new FetchStream(torrent), new AssembleStream(torrent, dir), events);
