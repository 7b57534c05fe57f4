import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import type { Command } from '../cli/io.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import { MagnetError, magnetFromTorrent, parseMagnet } from '../metainfo/magnet.js';

export const magnet: Command = {
  name: 'magnet',
  synopsis: '[FILE|-|URI]',
  help: `usage: torrent-tools magnet [FILE|-|URI]

Given a .torrent file (or stdin), prints its magnet URI (xt=urn:btih, plus btmh for hybrid
torrents, dn, tr for every tracker, ws for web seeds).
Given a magnet URI, prints one JSON object: infoHash (from hex or base32), infoHashV2 (from
btmh), name (dn), trackers (tr), webSeeds (ws), peers (x.pe), select (BEP 53 so).
A malformed URI is an error that names the parameter.

examples:
  torrent-tools magnet x.torrent
  torrent-tools magnet 'magnet:?xt=urn:btih:…&dn=x' | jq -r .infoHash
`,
  async run(argv, io) {
    const a = parseArgs(argv, { boolean: ['strict'] });
    if (a.positional.length > 1) throw new UsageError('expected at most one FILE or URI');
    const arg = a.positional[0] ?? '-';
    if (/^magnet:/i.test(arg)) {
      let m;
      try {
        m = parseMagnet(arg);
      } catch (e) {
        if (e instanceof MagnetError) throw new CliError(`magnet: ${e.message}`);
        throw e;
      }
      const o: Record<string, unknown> = {};
      if (m.infoHashHex) o['infoHash'] = m.infoHashHex;
      if (m.infoHashV2) o['infoHashV2'] = m.infoHashV2.toString('hex');
      if (m.name !== undefined) o['name'] = m.name;
      Object.assign(o, { trackers: m.trackers, webSeeds: m.webSeeds, peers: m.peers.map((p) => `${p.host.includes(':') ? `[${p.host}]` : p.host}:${p.port}`) });
      if (m.select) o['select'] = m.select;
      io.stdout.write(JSON.stringify(o) + '\n');
      return 0;
    }
    const src = await loadTorrentArg(arg, io, 'magnet', { strict: a.bool('strict') });
    io.stdout.write(magnetFromTorrent(src.torrent!) + '\n');
    return 0;
  },
};
