import { Writable, type Readable, type Transform } from 'node:stream';
import { objectTransform } from 'through2';
import { pipeline } from 'node:stream/promises';
import { piecesForFiles } from '../metainfo/pieces.js';
import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import { report, type Command } from '../cli/io.js';
import { Progress, progressMode } from '../cli/progress.js';
import { resolveSelect } from '../cli/select.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import { FileStore } from '../storage/file-store.js';
import { UnsafePathError } from '../storage/safe-path.js';
import { AssembleStream, type AssembleEvent } from '../streams/assemble.js';
import { DeferredError } from '../streams/deferred-error.js';
import { readHaveSet } from '../streams/have-set.js';
import { InOrderContentWriter } from '../streams/in-order.js';
import { PieceFrameReader } from '../streams/piece-frame-reader.js';
import { PieceFrameDecoder, PieceStreamError } from '../streams/piece-frames.js';

export const assemble: Command = {
  name: 'assemble',
  synopsis: 'TORRENT (-o DIR | --stdout) [--select FILE]... [--have FILE] [--trust] [--os-cache] [--max-buffer BYTES] [--quiet|--progress]',
  help: `usage: torrent-tools assemble TORRENT -o DIR [options]
       torrent-tools assemble TORRENT --stdout [options]

Reads the piece stream (as written by fetch-pieces) on stdin, checks each piece's hash
(SHA-1, or the merkle root for a v2-only torrent) against the torrent, and writes it into the torrent's files under DIR. After each piece is on
disk it prints {"event":"piece","index":N,"bytes":B}; when every wanted piece is there,
{"event":"complete",...} and exit 0. If the stream ends early, exit 1 saying how many pieces
are missing. The events are a have-set: keep them as a resume journal.

Nothing outside DIR is ever written: paths that would escape it, or go through a symlink, are
refused before anything is written, and every file is opened by a walk that follows no symlink
(a directory swapped for one mid-run fails the run, naming it). A file in DIR that is a hard
link gets a copy of its own before its first write, so its other names keep their content.
Existing files are never truncated or deleted; pieces are written in place, so a damaged piece
is repaired by receiving it again.

options:
  -o, --output DIR      where the files go (created if needed)
  --stdout              write the content in order to stdout instead (one file with --select,
                        else every file concatenated in torrent order); no events
  --select FILE         only this file (a path as 'info' shows it, or a file index); repeatable
  --have FILE           pieces already on disk (a have-set: an earlier run's events, or verify's
                        output); they count as done
  --trust               skip the hash check (the stream was verified upstream)
  --os-cache            write through the page cache (by default whole blocks go straight to
                        the disk with O_DIRECT where the file system allows it)
  --max-buffer BYTES    --stdout: out-of-order bytes held in memory before spilling to a
                        temporary file (default 67108864)
  --quiet               no progress bar
  --progress            progress as NDJSON on stderr
  -h, --help            show this help

examples:
  torrent-tools announce x.torrent | torrent-tools fetch-pieces x.torrent \\
    | torrent-tools assemble x.torrent -o out/ > journal.ndjson
  torrent-tools fetch-pieces x.torrent --have journal.ndjson < peers.ndjson \\
    | torrent-tools assemble x.torrent -o out/ --have journal.ndjson >> journal.ndjson
  torrent-tools fetch-pieces --sequential x.torrent < peers.ndjson | torrent-tools assemble x.torrent --stdout | mpv -
`,
  async run(argv, io) {
    const a = parseArgs(argv, {
      string: ['output', 'select', 'have', 'max-buffer'],
      repeat: ['select'],
      boolean: ['stdout', 'trust', 'os-cache', 'quiet', 'progress', 'strict'],
      alias: { o: 'output' },
    });
    if (a.positional.length !== 1) throw new UsageError('expected one TORRENT');
    const toStdout = a.bool('stdout');
    const out = a.str('output');
    if (toStdout === (out !== undefined)) throw new UsageError('give exactly one of -o DIR and --stdout');
    const maxBuffer = a.int('max-buffer', 0, Number.MAX_SAFE_INTEGER);
    const src = await loadTorrentArg(a.positional[0]!, io, 'assemble', { strict: a.bool('strict') });
    const t = src.torrent;
    if (!t) throw new UsageError('assemble needs a .torrent file (fetch-metadata turns a magnet into one)');
    const select = a.list('select').length > 0 ? resolveSelect(t, a.list('select')) : undefined;
    // stdin's own descriptor when it is a file, pipe or socket: read into reused memory
    const frameOptions = { maxPieceLength: t.pieceLength, pieceCount: t.pieceCount };
    const frames = (): Readable[] =>
      io.stdinFd !== undefined && PieceFrameReader.canRead(io.stdinFd) ? [new PieceFrameReader(io.stdinFd, frameOptions)] : [io.stdin, new PieceFrameDecoder(frameOptions)];
    // events on the same terminal are progress enough: no line to glue them to
    const quiet = a.bool('quiet') || (io.stdout.isTTY === true && !a.bool('progress'));
    const progress = new Progress(io, progressMode(io, { quiet, progress: a.bool('progress') }), 'assemble');

    if (toStdout) {
      if (io.stdout.isTTY) throw new UsageError('refusing to write the content to a terminal (redirect stdout)');
      if (select !== undefined && select.size !== 1) throw new UsageError('--stdout takes at most one --select FILE');
      const file = select === undefined ? undefined : [...select][0]!;
      const content = new InOrderContentWriter(t, io.stdout, { maxBuffer, file, trust: a.bool('trust') });
      try {
        await pipeline([...frames(), content], { signal: io.signal });
      } catch (e) {
        throw explain(e);
      }
      if (!content.done) throw new CliError(`stdin: the piece stream ended while waiting for piece ${content.waitingFor}`);
      return 0;
    }

    const wantedList = select === undefined ? null : piecesForFiles(t, [...select]);
    const have = a.has('have') ? await readHaveSet(a.str('have')!, t.pieceCount).catch((e: Error) => { throw new CliError(`${a.str('have')}: ${e.message}`); }) : undefined;
    let store: FileStore;
    try {
      store = await FileStore.open(t, out!, { mode: 'write', select, osCache: a.bool('os-cache'), onNotice: (m) => report(io, 'assemble', `note: ${m}`) });
    } catch (e) {
      if (e instanceof UnsafePathError) throw new CliError(`${src.name}: ${e.message}`);
      throw e;
    }
    const stage = new AssembleStream(t, store, { trust: a.bool('trust'), wanted: wantedList ? new Set(wantedList) : undefined, have });
    const total = stage.remaining;
    let done = 0;
    let bytes = 0;
    // a pass-through that watches the events go by (through2's small-object case); a malformed
    // frame's DeferredError passes through it like an event
    const watch = objectTransform({ highWaterMark: 16 }, (ev: AssembleEvent | DeferredError, _enc: BufferEncoding, cb: (err: Error | null, ev: AssembleEvent | DeferredError) => void) => {
      if (ev instanceof DeferredError) return cb(null, ev);
      if (ev.event === 'piece') {
        done++;
        bytes += ev.bytes;
        progress.update({ done, total, bytes, left: (total - done) * t.pieceLength });
      } else if (ev.event === 'bad-piece') {
        report(io, 'assemble', `warning: piece ${ev.index} refused: ${ev.reason}`);
      }
      cb(null, ev);
    }) as unknown as Transform;
    // the events, one NDJSON line each, each handed to stdout before the next is taken; the
    // DeferredError of a malformed frame is raised only once the lines before it are out: the
    // journal keeps every piece that reached the disk (ndjson.stringify would drop them)
    const journal = new Writable({
      objectMode: true,
      highWaterMark: 16,
      write(ev: AssembleEvent | DeferredError, _enc, cb) {
        if (ev instanceof DeferredError) return cb(ev.error);
        io.stdout.write(JSON.stringify(ev) + '\n', cb);
      },
    });
    try {
      await pipeline([...frames(), stage, watch, journal], { signal: io.signal });
    } catch (e) {
      throw explain(e);
    } finally {
      progress.update({ done, total, bytes, left: (total - done) * t.pieceLength }, true);
      progress.finish();
      await store.close();
    }
    if (stage.remaining > 0) throw new CliError(`stdin: the piece stream ended with ${stage.remaining} of ${total} wanted pieces missing`);
    return 0;
  },
};

function explain(e: unknown): unknown {
  if (e instanceof PieceStreamError) return new CliError(`stdin: ${e.message}`);
  if ((e as NodeJS.ErrnoException).code === 'ENOSPC') return new CliError(`${(e as NodeJS.ErrnoException).path ?? 'output'}: no space left on device (run again with --have to resume once there is room)`);
  return e;
}
