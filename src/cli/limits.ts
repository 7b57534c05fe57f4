import type { Args } from './args.js';
import { DEFAULT_LIMITS, type DecodeLimits } from '../bencode/decoder.js';

/** The option names every bencode-reading command shares, for its ArgSpec. */
export const LIMIT_OPTIONS = ['max-depth', 'max-string', 'max-value'] as const;

export const LIMITS_HELP = `  --max-depth N       refuse containers nested deeper than N (default ${DEFAULT_LIMITS.maxDepth}; 100..5000)
  --max-string BYTES  refuse byte strings longer than this (default ${DEFAULT_LIMITS.maxStringLength})
  --max-value BYTES   refuse a top-level value larger than this (default ${DEFAULT_LIMITS.maxValueSize})`;

/** Decoder limits from --max-depth/--max-string/--max-value. The JSON writer recurses, hence 5000. */
export function limitsFromArgs(a: Args): DecodeLimits {
  const out: DecodeLimits = {};
  const depth = a.int('max-depth', 100, 5000);
  if (depth !== undefined) out.maxDepth = depth;
  const str = a.int('max-string', 0, 2 ** 31 - 1);
  if (str !== undefined) out.maxStringLength = str;
  const value = a.int('max-value', 1, Number.MAX_SAFE_INTEGER);
  if (value !== undefined) out.maxValueSize = value;
  return out;
}
