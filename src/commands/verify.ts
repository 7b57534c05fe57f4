import { stat } from 'node:fs/promises';
import { contentDir } from '../cli/content-dir.js';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import ndjson from 'ndjson';
import { piecesForFiles } from '../metainfo/pieces.js';
import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import { report, type Command } from '../cli/io.js';
import { Progress, progressMode } from '../cli/progress.js';
import { resolveSelect } from '../cli/select.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import { FileStore } from '../storage/file-store.js';
import { UnsafePathError } from '../storage/safe-path.js';
import { verifyPieces } from '../storage/verify.js';

export const verify: Command = {
  name: 'verify',
  synopsis: 'TORRENT DIR [--summary] [--select FILE]... [--workers N] [--quiet|--progress]',
  help: `usage: torrent-tools verify TORRENT DIR [options]

Reads the torrent's files under DIR, checks every piece's hash on all cores (SHA-1; for a
v2-only torrent the BEP 52 merkle root of its file's 16 KiB blocks), and prints one line per
piece, {"index":N,"valid":true|false}, in index order: a have-set, so
'fetch-pieces --have' can fetch only the rest. Missing or short files make their pieces
invalid. A summary goes to stderr. Exit 0 only when every (selected) piece is valid.
DIR is the folder that holds the torrent's content (DIR/NAME), or the content itself when
DIR/NAME does not exist and DIR's last component is NAME ('verify data.torrent data/').

options:
  --summary         print one record instead: pieces, valid, invalid, missingFiles, and
                    bitfield (hex, BEP 3 order: piece 0 is the high bit of the first byte)
  --select FILE     only the pieces this file needs; repeatable
  --workers N       hashing threads (default: one per core)
  --quiet           no progress bar
  --progress        progress as NDJSON on stderr
  -h, --help        show this help

examples:
  torrent-tools verify x.torrent out/ | jq -c 'select(.valid == false)' | head
  torrent-tools verify x.torrent out/ > have.ndjson; torrent-tools fetch-pieces x.torrent --have have.ndjson …
`,
  async run(argv, io) {
    const a = parseArgs(argv, { string: ['select', 'workers'], repeat: ['select'], boolean: ['summary', 'quiet', 'progress', 'strict'] });
    if (a.positional.length !== 2) throw new UsageError('expected TORRENT and DIR');
    const workers = a.int('workers', 1, 256);
    const src = await loadTorrentArg(a.positional[0]!, io, 'verify', { strict: a.bool('strict') });
    const t = src.torrent;
    if (!t) throw new UsageError('verify needs a .torrent file');
    const { root: dir, expected } = await contentDir(t, a.positional[1]!);
    const select = a.list('select').length > 0 ? resolveSelect(t, a.list('select')) : undefined;
    const pieces = select === undefined ? undefined : piecesForFiles(t, [...select]);
    let store: FileStore;
    try {
      store = await FileStore.open(t, dir, { mode: 'read' });
    } catch (e) {
      if (e instanceof UnsafePathError) throw new CliError(`${src.name}: ${e.message}`);
      throw e;
    }
    const missingFiles: string[] = [];
    for (let i = 0; i < t.files.length; i++) {
      if (t.files[i]!.pad || (select !== undefined && !select.has(i))) continue;
      const st = await stat(store.paths[i]!).catch(() => null);
      if (st === null || !st.isFile()) missingFiles.push(store.paths[i]!);
    }
    await store.close();

    const total = pieces?.length ?? t.pieceCount;
    const bits = Buffer.alloc(Math.ceil(t.pieceCount / 8));
    let valid = 0;
    let checked = 0;
    const summary = a.bool('summary');
    // one record per piece on the same terminal is progress enough: no line to glue them to
    const quiet = a.bool('quiet') || (!summary && io.stdout.isTTY === true && !a.bool('progress'));
    const progress = new Progress(io, progressMode(io, { quiet, progress: a.bool('progress') }), 'verify');
    const results = verifyPieces(t, dir, { workers, pieces, signal: io.signal });
    async function* records(): AsyncGenerator<object> {
      for await (const [index, ok] of results) {
        checked++;
        if (ok) {
          valid++;
          bits[index >> 3]! |= 0x80 >> (index & 7);
        }
        progress.update({ done: checked, total, bytes: checked * t!.pieceLength, left: (total - checked) * t!.pieceLength });
        if (!summary) yield { index, valid: ok };
      }
      progress.finish(); // its final state, before the summary record
      if (summary) yield { pieces: total, valid, invalid: total - valid, missingFiles, bitfield: bits.toString('hex') };
    }
    await pipeline(Readable.from(records()), ndjson.stringify(), io.stdout, { signal: io.signal });
    report(io, 'verify', `${expected}: ${valid} of ${total} pieces valid${missingFiles.length ? `, ${missingFiles.length} file(s) missing` : ''}`);
    if (valid === 0 && missingFiles.length > 0) report(io, 'verify', `the torrent's content was expected at ${expected} (DIR is the folder that holds ${t.name}, or ${t.name} itself)`);
    return valid === total ? 0 : 1;
  },
};
