/** `npm run bench [suite...]`: figures as ratios against references measured in the same run. */
import { benchBencode } from './bencode.js';
import { benchMetainfo } from './metainfo.js';
import { benchStorage } from './storage.js';
import { benchSwarm } from './swarm.js';
import { benchMetadata } from './metadata.js';
import { benchDht } from './dht.js';
import { benchSeed } from './seed.js';
import { benchRealSwarm } from './real-swarm.js';
import { benchMany } from './many.js';
import { benchWebseed } from './webseed.js';
import { benchStream } from './stream.js';
import { benchUtp } from './utp.js';
import { benchUtpSwarm } from './utp-swarm.js';

const only = process.argv.slice(2);
const suites: Array<[string, () => Promise<string[]>]> = [
  ['bencode', benchBencode],
  ['metainfo', benchMetainfo],
  ['storage', benchStorage],
  ['seed', () => benchSeed()],
  ['swarm', () => benchSwarm()],
  ['real-swarm', () => benchRealSwarm()],
  ['many', () => benchMany()],
  ['webseed', () => benchWebseed()],
  ['stream', () => benchStream()],
  ['metadata', () => benchMetadata()],
  ['dht', () => benchDht()],
  ['utp', () => benchUtp()],
  ['utp-swarm', () => benchUtpSwarm()],
];

for (const [name, run] of suites) {
  if (only.length > 0 && !only.includes(name)) continue;
  for (const line of await run()) console.log(line);
  console.log('');
}
