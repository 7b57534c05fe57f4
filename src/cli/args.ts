/**
 * Argument parsing on minimist, made strict: every option is declared, unknown ones are usage
 * errors, and values stay strings until a typed getter checks them (minimist alone turns
 * `--port 0012` into 12 and `1e5` into 100000).
 */
import minimist from 'minimist';
import { didYouMean } from './suggest.js';
import { UsageError } from './errors.js';
import { parseRate, unitFactor } from './units.js';

export interface ArgSpec {
  /** options that take a value */
  string?: readonly string[];
  /** options that may be given several times (a subset of `string`) */
  repeat?: readonly string[];
  /** flags */
  boolean?: readonly string[];
  /** short → long */
  alias?: Readonly<Record<string, string>>;
}

const INT_TEXT = /^(?:0|[1-9][0-9]*)$/;

export class Args {
  /** positional arguments */
  readonly positional: string[];
  private readonly values: Map<string, string[]>;
  private readonly flags: Map<string, boolean>;

  constructor(positional: string[], values: Map<string, string[]>, flags: Map<string, boolean>) {
    this.positional = positional;
    this.values = values;
    this.flags = flags;
  }

  has(name: string): boolean {
    return this.values.has(name);
  }

  bool(name: string): boolean {
    return this.flags.get(name) ?? false;
  }

  /** A flag's value when it was given (`--x` → true, `--no-x` → false), else undefined. */
  flag(name: string): boolean | undefined {
    return this.flags.get(name);
  }

  str(name: string): string | undefined {
    const v = this.values.get(name);
    return v === undefined ? undefined : v[v.length - 1];
  }

  list(name: string): string[] {
    return this.values.get(name) ?? [];
  }

  /**
   * A size in bytes: a whole number, or one with a binary unit (256K, 4M, 1G, 16KiB; K = 1024),
   * checked against [min, max].
   */
  size(name: string, min: number, max: number): number | undefined {
    const s = this.str(name);
    if (s === undefined) return undefined;
    const m = /^(0|[1-9][0-9]*)(?:([KMGT])(?:iB)?)?$/i.exec(s);
    if (m === null) throw new UsageError(`--${name}: expected a size in bytes like 262144, 256K or 4M, got ${JSON.stringify(s)}`);
    const n = Number(m[1]) * unitFactor(m[2]);
    if (!(n >= min && n <= max)) throw new UsageError(`--${name}: ${s} is out of range [${min}, ${max}] bytes`);
    return n;
  }

  /** A rate in bytes per second (units.ts parseRate(): 500K, 1.5M/s, 65536; 0 = unlimited). */
  rate(name: string): number | undefined {
    const s = this.str(name);
    return s === undefined ? undefined : parseRate(s, `--${name}`);
  }

  /** A non-negative decimal integer option, checked against [min, max]. */
  int(name: string, min: number, max: number): number | undefined {
    const s = this.str(name);
    if (s === undefined) return undefined;
    return parseIntArg(`--${name}`, s, min, max);
  }
}

export function parseIntArg(what: string, s: string, min: number, max: number): number {
  if (!INT_TEXT.test(s)) throw new UsageError(`${what}: expected a whole number, got ${JSON.stringify(s)}`);
  const n = Number(s);
  if (!(n >= min && n <= max)) throw new UsageError(`${what}: ${s} is out of range [${min}, ${max}]`);
  return n;
}

/** Parses `argv` by `spec`; throws UsageError for unknown options or a single-valued option given twice. */
export function parseArgs(argv: readonly string[], spec: ArgSpec): Args {
  const strings = new Set(spec.string ?? []);
  const booleans = new Set(spec.boolean ?? []);
  const repeat = new Set(spec.repeat ?? []);
  const alias = spec.alias ?? {};
  const known = new Set<string>([...strings, ...booleans, ...Object.keys(alias)]);
  const parsed = minimist([...argv], {
    string: [...strings, '_'],
    boolean: [...booleans],
    alias: { ...alias },
    '--': true,
    unknown: (arg: string): boolean => {
      if (arg.length > 1 && arg.startsWith('-')) {
        const full = arg.replace(/^--?/, '').replace(/=.*$/, '');
        const name = known.has(full) ? full : full.replace(/^no-/, '');
        if (!known.has(name)) {
          const long = [...known].filter((k) => k.length > 1);
          throw new UsageError(`unknown option ${arg.replace(/=.*$/, '')}${didYouMean(full, long, '--')}`);
        }
      }
      return true;
    },
  }) as unknown as Record<string, unknown>;
  const values = new Map<string, string[]>();
  const flags = new Map<string, boolean>();
  for (const name of strings) {
    const v = parsed[name];
    if (v === undefined) continue;
    const arr = (Array.isArray(v) ? v : [v]).map(String);
    if (arr.length > 1 && !repeat.has(name)) throw new UsageError(`--${name} given more than once`);
    values.set(name, arr);
  }
  for (const name of booleans) {
    if (name.startsWith('no-')) {
      // a flag spelled --no-x (minimist would read it as x=false)
      if (argv.includes(`--${name}`)) flags.set(name, true);
      continue;
    }
    const given = argv.some((a) => a === `--${name}` || a === `--no-${name}` || a.startsWith(`--${name}=`) || isShortFor(a, name, alias));
    if (given) flags.set(name, parsed[name] === true);
  }
  const rest = parsed['--'];
  const positional = [...(parsed['_'] as unknown[]).map(String), ...(Array.isArray(rest) ? rest.map(String) : [])];
  return new Args(positional, values, flags);
}

function isShortFor(arg: string, name: string, alias: Readonly<Record<string, string>>): boolean {
  if (!/^-[^-]/.test(arg)) return false;
  return [...arg.slice(1)].some((c) => alias[c] === name);
}
