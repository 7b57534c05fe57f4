import { pipeline } from 'node:stream/promises';
import { BencodeError } from '../bencode/errors.js';
import { parseArgs } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import { openInput } from '../cli/input.js';
import { warnOnce, type Command } from '../cli/io.js';
import { LIMITS_HELP, LIMIT_OPTIONS, limitsFromArgs } from '../cli/limits.js';
import { BdecodeStream } from '../streams/bdecode.js';
import { JsonLinesStream } from '../streams/json-lines.js';

const LENIENT_TEXT = {
  'unsorted-keys': 'dict keys out of order',
  'duplicate-keys': 'duplicate dict keys (the last value is kept)',
  'leading-zeros': 'leading zeros in a number',
} as const;

export const bdecode: Command = {
  name: 'bdecode',
  synopsis: '[FILE|-] [--pretty|--compact] [--lenient] [--max-depth N] [--max-string BYTES] [--max-value BYTES]',
  help: `usage: torrent-tools bdecode [FILE|-] [options]

Reads bencode from FILE (or stdin) and writes each top-level value as one line of JSON,
as soon as it is complete. Byte strings that are valid UTF-8 become JSON strings, other
bytes {"$hex":"…"}; integers beyond ±(2^53−1) become {"$int":"…"}; a dict key that starts
with '$' gets one more '$'; a dict with a non-UTF-8 key becomes {"$dict":[[key,value],…]}.
See torrent-tools-formats(7). 'torrent-tools bencode' is the exact inverse.

Strict by default (BEP 3): leading zeros, -0, unsorted or duplicate dict keys and anything
that is not bencode are errors naming the byte offset.

options:
  --pretty            indent the JSON (the default when stdout is a terminal)
  --compact           one line per value even on a terminal
  --lenient           accept unsorted/duplicate dict keys and leading zeros, with a warning
${LIMITS_HELP}
  -h, --help          show this help

example:
  torrent-tools bdecode < x.torrent | jq .info.name
`,
  async run(argv, io) {
    const a = parseArgs(argv, { string: [...LIMIT_OPTIONS], boolean: ['pretty', 'compact', 'lenient'] });
    if (a.positional.length > 1) throw new UsageError('expected at most one FILE');
    if (a.bool('pretty') && a.bool('compact')) throw new UsageError('--pretty and --compact exclude each other');
    const limits = limitsFromArgs(a);
    const pretty = a.bool('pretty') || (!a.bool('compact') && io.stdout.isTTY === true);
    const input = openInput(a.positional[0], io);
    const warn = warnOnce(io, 'bdecode');
    const lenient = a.bool('lenient');
    const decoder = new BdecodeStream({
      ...limits,
      allowUnsorted: lenient,
      allowDuplicates: lenient,
      allowLeadingZeros: lenient,
      onLenient: (kind, offset) => warn(kind, `${input.name}: byte ${offset}: accepted ${LENIENT_TEXT[kind]} (--lenient)`),
    });
    try {
      await pipeline(input.stream, decoder, new JsonLinesStream({ pretty }), io.stdout, { signal: io.signal });
    } catch (e) {
      if (e instanceof BencodeError) throw new CliError(`${input.name}: ${e.message}`);
      throw e;
    }
    return 0;
  },
};
