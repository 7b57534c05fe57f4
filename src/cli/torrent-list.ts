/**
 * The torrent list of `download -i FILE` and `download -i -`: one torrent per line, each line
 * given out as soon as its newline arrives, so that another command can feed the list while
 * it is being downloaded (`torrent-tools magnet x.torrent | torrent-tools download -i -`).
 *
 * A line is, after trimming spaces:
 *   - empty, or starting with `#`: skipped;
 *   - starting with `{`: one JSON object, `{"torrent": …, "output": …, "select": […],
 *     "maxDownloadRate": …, "maxUploadRate": …}` (only `torrent` is needed);
 *   - starting with `"`: one JSON string, the torrent (what `jq` prints without `-r`);
 *   - anything else: the torrent itself (a .torrent path, a magnet URI, an info hash), as
 *     `ls *.torrent` and `jq -r` print them.
 * A bad line is given out as a TorrentListError in its place and the list goes on: one bad
 * line fails one torrent, not the others.
 */
import { isUtf8 } from 'node:buffer';
import { CliError, escapeLine, UsageError } from './errors.js';
import { parseRate } from './units.js';

/** One torrent of the list and what the line asks for it. */
export interface TorrentRequest {
  /** a .torrent path, a magnet URI or an info hash, as given (not yet checked) */
  input: string;
  /** where it was given, for messages: `list.txt:3`, `stdin:3` */
  where: string;
  /** the 1-based line */
  line: number;
  /** the output directory (`-o`) for this torrent */
  output?: string;
  /** files to download (`--select`): paths inside the torrent, or file indexes as text */
  select?: string[];
  /** bytes per second; 0 means unlimited */
  maxDownloadRate?: number;
  /** bytes per second; 0 means unlimited */
  maxUploadRate?: number;
}

/**
 * A line of the list that cannot be read: the list goes on after it. A CliError (exit 1), so
 * a command that makes a bad line fatal can throw it as it is; its message is one line,
 * `where: reason`.
 */
export class TorrentListError extends CliError {
  readonly where: string;
  readonly line: number;
  readonly reason: string;
  constructor(where: string, line: number, reason: string) {
    super(`${where}: ${reason}`);
    this.name = 'TorrentListError';
    this.where = where;
    this.line = line;
    this.reason = reason;
  }
}

export type TorrentListItem = TorrentRequest | TorrentListError;

export interface TorrentListOptions {
  /** the longest line in bytes, line ending not counted (default DEFAULT_MAX_LIST_LINE) */
  maxLine?: number;
}

/** 64 KiB: a magnet with dozens of trackers fits many times over. */
export const DEFAULT_MAX_LIST_LINE = 64 * 1024;

/** The keys of a JSON record, in the order formatListLine() writes them. */
const KEYS = ['torrent', 'output', 'select', 'maxDownloadRate', 'maxUploadRate'] as const;

/**
 * The torrent list from `source` (a Readable: a file, stdin), read as it arrives: each line's
 * item is given out once its newline is read (a last line without one at the end), never
 * later. `name` says where in messages (`list.txt`, `stdin`). Nothing is held but the line
 * being read: a line over `maxLine` bytes gives one TorrentListError as soon as it is too
 * long, and what follows it up to the next newline is read and dropped. There is no limit on
 * the number of lines: a feed may run as long as its writer does, and the caller pulls one
 * item at a time (the stream is read no further ahead than its own buffer).
 *
 * An error of the source itself (EIO, EISDIR) is thrown. Leaving the loop early destroys the
 * source, as any `for await` over a Readable does; to stop a read that is waiting on an idle
 * pipe, destroy the stream (e.g. `addAbortSignal(io.signal, io.stdin)`).
 */
export function readTorrentList(
  source: AsyncIterable<Uint8Array | string>,
  name: string,
  options: TorrentListOptions = {},
): AsyncGenerator<TorrentListItem, void, undefined> {
  const maxLine = options.maxLine ?? DEFAULT_MAX_LIST_LINE;
  // (checked here, not in the generator, which would only run at the first next())
  if (!Number.isSafeInteger(maxLine) || maxLine < 1) throw new RangeError(`maxLine: expected a whole number of bytes ≥ 1, got ${maxLine}`);
  return items(source, name, maxLine);
}

async function* items(source: AsyncIterable<Uint8Array | string>, name: string, maxLine: number): AsyncGenerator<TorrentListItem, void, undefined> {
  const lines = new LineSplitter(maxLine);
  for await (const chunk of source) {
    // (a string: the stream was given an encoding, whose decoder keeps split characters whole)
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    for (const raw of lines.write(bytes)) {
      const item = itemOf(raw, name, maxLine);
      if (item !== null) yield item;
    }
  }
  for (const raw of lines.end()) {
    const item = itemOf(raw, name, maxLine);
    if (item !== null) yield item;
  }
}

/**
 * One line's text (no line ending) → its request, its error, or null for a line to skip.
 * `where` names the line in messages and goes into the request.
 */
export function parseListLine(text: string, where: string, line: number): TorrentListItem | null {
  const t = text.trim();
  if (t === '' || t.startsWith('#')) return null;
  const fail = (reason: string): TorrentListError => new TorrentListError(where, line, reason);
  if (t.startsWith('{')) return parseRecord(t, where, line);
  let input = t;
  if (t.startsWith('"')) {
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch (e) {
      return fail(`a line starting with '"' is a JSON string: ${jsonMessage(e)}`);
    }
    if (typeof v !== 'string') return fail(`a line starting with '"' is a JSON string, got ${kindOf(v)}`);
    input = v;
  }
  const bad = badInput(input);
  return bad !== null ? fail(bad) : { input, where, line };
}

/**
 * The line that parseListLine() reads back as `req` (where and line aside): the bare input
 * when that is all there is and it reads back as itself, else a compact JSON record. No
 * newline at the end.
 */
export function formatListLine(req: Omit<TorrentRequest, 'where' | 'line'>): string {
  const plain = req.output === undefined && req.select === undefined && req.maxDownloadRate === undefined && req.maxUploadRate === undefined;
  if (plain && req.input === req.input.trim() && !/^[#{"]/.test(req.input) && !/[\r\n]/.test(req.input)) return req.input;
  const o: Record<string, unknown> = { torrent: req.input };
  if (req.output !== undefined) o['output'] = req.output;
  if (req.select !== undefined) o['select'] = req.select;
  if (req.maxDownloadRate !== undefined) o['maxDownloadRate'] = req.maxDownloadRate;
  if (req.maxUploadRate !== undefined) o['maxUploadRate'] = req.maxUploadRate;
  return JSON.stringify(o);
}

/** A `{…}` line. */
function parseRecord(t: string, where: string, line: number): TorrentListItem {
  const fail = (reason: string): TorrentListError => new TorrentListError(where, line, reason);
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch (e) {
    // `jq` without -c spreads an object over lines: its first line is a lone `{`
    const hint = t === '{' ? ' (a record is one JSON object on one line: jq -c)' : '';
    return fail(`invalid JSON record: ${jsonMessage(e)}${hint}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(`expected a JSON object, got ${kindOf(v)}`);
  const o = v as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!(KEYS as readonly string[]).includes(key)) return fail(`unknown key ${shown(key)} (known: ${KEYS.join(', ')})`);
  }
  const torrent = o['torrent'];
  if (torrent === undefined) return fail(`no "torrent" (a .torrent path, a magnet URI or an info hash)`);
  if (typeof torrent !== 'string') return fail(`"torrent": expected a string (a .torrent path, a magnet URI or an info hash), got ${kindOf(torrent)}`);
  const bad = badInput(torrent);
  if (bad !== null) return fail(`"torrent": ${bad}`);
  const req: TorrentRequest = { input: torrent, where, line };
  const output = o['output'];
  if (output !== undefined) {
    if (typeof output !== 'string') return fail(`"output": expected a string (a directory), got ${kindOf(output)}`);
    if (output === '' || output.includes('\0')) return fail(`"output": ${output === '' ? 'empty' : 'a NUL character'}: not a directory name`);
    req.output = output;
  }
  const select = o['select'];
  if (select !== undefined) {
    if (!Array.isArray(select)) return fail(`"select": expected an array of file paths and indexes, got ${kindOf(select)}`);
    if (select.length === 0) return fail(`"select": empty: it would select no file (leave it out for all files)`);
    const specs: string[] = [];
    for (const [i, s] of (select as unknown[]).entries()) {
      if (typeof s === 'number' && Number.isSafeInteger(s) && s >= 0) specs.push(String(s));
      else if (typeof s === 'string' && s !== '' && !s.includes('\0')) specs.push(s);
      else return fail(`"select"[${i}]: expected a file path or a file index (a whole number ≥ 0), got ${typeof s === 'string' || typeof s === 'number' ? shown(s) : kindOf(s)}`);
    }
    req.select = specs;
  }
  for (const key of ['maxDownloadRate', 'maxUploadRate'] as const) {
    const r = o[key];
    if (r === undefined) continue;
    if (typeof r !== 'string' && typeof r !== 'number') return fail(`"${key}": expected bytes per second as a number or a text like "500K", got ${kindOf(r)}`);
    try {
      req[key] = parseRate(r, `"${key}"`);
    } catch (e) {
      if (e instanceof UsageError) return fail(e.message);
      throw e;
    }
  }
  return req;
}

/** Why `input` cannot be a torrent of the list, or null. The rest is checked when it is opened. */
function badInput(input: string): string | null {
  if (input.trim() === '') return 'empty: expected a .torrent path, a magnet URI or an info hash';
  // (`-` would be stdin, which is the list itself with -i -, or the command's own input)
  if (input === '-') return `"-" (stdin) cannot be a torrent of a list`;
  if (input.includes('\0')) return 'a NUL character: not a path, a magnet URI or an info hash';
  return null;
}

/** A raw line from LineSplitter → its item (null: skipped). */
function itemOf(raw: RawLine, name: string, maxLine: number): TorrentListItem | null {
  const where = `${name}:${raw.line}`;
  if (raw.bytes === null) return new TorrentListError(where, raw.line, `line longer than ${maxLine} bytes (skipped to the next newline)`);
  if (!isUtf8(raw.bytes)) return new TorrentListError(where, raw.line, 'not valid UTF-8 (names in a list are read as UTF-8)');
  let text = raw.bytes.toString('utf8');
  // a byte order mark, which some editors put at the start of a text file
  if (raw.line === 1 && text.startsWith('\ufeff')) text = text.slice(1);
  return parseListLine(text, where, raw.line);
}

/** A line: its bytes without the line ending, or null when it was too long and dropped. */
interface RawLine {
  line: number;
  bytes: Buffer | null;
}

/**
 * Bytes in any chunking → lines, with a length limit that holds nothing of a long line.
 *
 * Neither split2 nor readline fits: readline has no line limit at all (a line without a
 * newline is gathered whole); split2's `maxLength` either fails the whole stream or, with
 * `skipOverflow`, drops the line without a word, so the line cannot be reported, and it
 * checks only after appending a whole chunk and decodes text before splitting (bad UTF-8
 * would be replaced, not refused). Splitting bytes on 0x0a is safe in UTF-8: no byte of a
 * multi-byte character is 0x0a.
 */
class LineSplitter {
  private readonly maxLine: number;
  private parts: Buffer[] = [];
  private partLen = 0;
  /** the 1-based number of the line being read */
  private lineNo = 1;
  /** the line being read was too long: it is dropped up to its newline */
  private skipping = false;

  constructor(maxLine: number) {
    this.maxLine = maxLine;
  }

  *write(chunk: Buffer): Generator<RawLine> {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const piece = chunk.subarray(start, nl === -1 ? chunk.length : nl);
      start = nl === -1 ? chunk.length : nl + 1;
      if (!this.skipping) {
        // (+1: a `\r` before the newline is the line ending, not the line)
        if (this.partLen + piece.length > this.maxLine + 1) {
          const line = this.lineNo;
          this.drop();
          this.skipping = true;
          yield { line, bytes: null };
        } else {
          // copied: a short piece must not keep a whole chunk alive until the line ends
          this.parts.push(nl === -1 ? Buffer.from(piece) : piece);
          this.partLen += piece.length;
        }
      }
      if (nl === -1) break;
      const line = this.lineNo++;
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      const bytes = this.take();
      yield bytes.length > this.maxLine ? { line, bytes: null } : { line, bytes };
    }
  }

  /** The input ended: a last line without a newline still counts. */
  *end(): Generator<RawLine> {
    if (this.skipping || this.partLen === 0) return;
    const bytes = this.take();
    yield bytes.length > this.maxLine ? { line: this.lineNo, bytes: null } : { line: this.lineNo, bytes };
  }

  /** The line gathered, without a `\r` at its end. */
  private take(): Buffer {
    let b = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.partLen);
    this.drop();
    if (b.length > 0 && b[b.length - 1] === 0x0d) b = b.subarray(0, b.length - 1);
    return b;
  }

  private drop(): void {
    this.parts = [];
    this.partLen = 0;
  }
}

/** What a JSON value is, for messages. */
function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'boolean') return String(v);
  return `a ${typeof v}`;
}

/** A value as JSON, cut short: messages stay readable whatever the line holds. */
function shown(v: string | number): string {
  const s = typeof v === 'string' && v.length > 60 ? v.slice(0, 60) + '…' : v;
  return JSON.stringify(s);
}

/** JSON.parse's message on one escaped line (V8 quotes a piece of the input in it). */
function jsonMessage(e: unknown): string {
  if (!(e instanceof SyntaxError)) throw e;
  return escapeLine(e.message, 200);
}
