import type { Args } from './args.js';
import { DEFAULT_LIMITS, type DecodeLimits } from '../bencode/decoder.js';

/** The option names every bencode-reading command shares, for its ArgSpec. */
export const LIMIT_OPTIONS = ['max-depth', 'max-string', 'max-value'] as const;

/**
 * The range of --max-depth (bdecode and bencode). Every depth in it works, both ways: nothing
 * on the way recurses on the JS stack (the decoder, toJson, fromJson and the encoder keep
 * explicit stacks; JSON.parse does not recurse in Node 20, measured to 200,000 nested arrays;
 * JSON.stringify does, overflowing at 4,103 levels, so it only ever writes strings here).
 * Until they did, 2,500 nested lists overflowed bdecode and 1,800 nested objects bencode.
 * test/cli-bencode.test.ts runs the maximum through both commands. The bound itself is policy:
 * no real torrent nests more than a handful of levels, and the JSON of 5,000 levels is at
 * most 15,001 deep ({"$dict":[[k, v]]} per level).
 */
export const DEPTH_MIN = 100;
export const DEPTH_MAX = 5000;

export const LIMITS_HELP = `  --max-depth N       refuse containers nested deeper than N (default ${DEFAULT_LIMITS.maxDepth}; ${DEPTH_MIN}..${DEPTH_MAX});
                      every depth in the range works: nothing is limited by the stack
  --max-string BYTES  refuse byte strings longer than this (default ${DEFAULT_LIMITS.maxStringLength})
  --max-value BYTES   refuse a top-level value larger than this (default ${DEFAULT_LIMITS.maxValueSize})`;

/** Decoder limits from --max-depth/--max-string/--max-value. */
export function limitsFromArgs(a: Args): DecodeLimits {
  const out: DecodeLimits = {};
  const depth = a.int('max-depth', DEPTH_MIN, DEPTH_MAX);
  if (depth !== undefined) out.maxDepth = depth;
  const str = a.int('max-string', 0, 2 ** 31 - 1);
  if (str !== undefined) out.maxStringLength = str;
  const value = a.int('max-value', 1, Number.MAX_SAFE_INTEGER);
  if (value !== undefined) out.maxValueSize = value;
  return out;
}
