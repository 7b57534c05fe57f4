import type { Command } from '../cli/io.js';
import { bdecode } from './bdecode.js';
import { bencode } from './bencode.js';
import { assemble } from './assemble.js';
import { verify } from './verify.js';
import { fetchPieces } from './fetch-pieces.js';
import { fetchMetadata } from './fetch-metadata.js';
import { seed } from './seed.js';
import { download } from './download.js';
import { peer } from './peer.js';
import { announce } from './announce.js';
import { dht } from './dht.js';
import { info } from './info.js';
import { create } from './create.js';
import { magnet } from './magnet.js';

/** Every subcommand, in the order `torrent-tools --help` lists them. */
export const commands: readonly Command[] = [download, bdecode, bencode, info, create, magnet, announce, dht, peer, seed, fetchMetadata, fetchPieces, assemble, verify];

export function findCommand(name: string): Command | undefined {
  return commands.find((c) => c.name === name);
}
