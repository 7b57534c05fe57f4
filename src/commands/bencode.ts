import { pipeline } from 'node:stream/promises';
import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import { openInput } from '../cli/input.js';
import type { Command } from '../cli/io.js';
import { DEPTH_MAX, DEPTH_MIN } from '../cli/limits.js';
import { BencodeStream } from '../streams/bencode.js';
import { FromJsonTextStream } from '../streams/from-json.js';
import { DEFAULT_MAX_LINE, MAX_LINE_CHARS, NdjsonError } from '../streams/ndjson-parse.js';

export const bencode: Command = {
  name: 'bencode',
  synopsis: '[FILE|-] [--force] [--max-depth N] [--max-line BYTES]',
  help: `usage: torrent-tools bencode [FILE|-] [options]

Reads JSON values, one per line, from FILE (or stdin) and writes each as canonical bencode
(dict keys sorted by their raw bytes). It reads the tagged forms of 'torrent-tools bdecode'
({"$hex":…}, {"$int":…}, {"$dict":…}, '$$' keys), so 'bdecode | bencode' gives back canonical
input byte for byte. Values with no bencode form (null, booleans, fractions) and an object
that repeats a key are errors that name the line and the JSON path. Blank lines are skipped.

options:
  --force             write binary even when stdout is a terminal
  --max-depth N       refuse containers nested deeper than N (default 512; ${DEPTH_MIN}..${DEPTH_MAX});
                      tags ({"$hex":…}) and $dict pairs are not levels; every depth in
                      the range works (JSON.parse does not recurse, nothing else here does)
  --max-line BYTES    refuse longer input lines (default ${DEFAULT_MAX_LINE}); whatever
                      BYTES, a line of more than ${MAX_LINE_CHARS} characters cannot be
                      read (the longest string V8 can make; see the man page)
  -h, --help          show this help

example:
  torrent-tools bdecode < x.torrent | jq -c '.announce = "http://127.0.0.1:6969/announce"' \\
    | torrent-tools bencode > y.torrent
`,
  async run(argv, io) {
    const a = parseArgs(argv, { string: ['max-depth', 'max-line'], boolean: ['force'] });
    if (a.positional.length > 1) throw new UsageError('expected at most one FILE');
    if (io.stdout.isTTY && !a.bool('force')) throw new UsageError('refusing to write binary bencode to a terminal (redirect stdout, or --force)');
    const maxDepth = a.int('max-depth', DEPTH_MIN, DEPTH_MAX) ?? 512;
    const maxLineLength = a.int('max-line', 1, 2 ** 31 - 1) ?? DEFAULT_MAX_LINE;
    const input = openInput(a.positional[0], io);
    try {
      await pipeline(input.stream, new FromJsonTextStream({ maxLineLength, maxDepth }), new BencodeStream(), io.stdout, { signal: io.signal });
    } catch (e) {
      if (e instanceof NdjsonError) throw new CliError(`${input.name}:${e.message}`);
      throw e;
    }
    return 0;
  },
};
