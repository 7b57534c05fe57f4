/**
 * Have-sets (design.md §2): any NDJSON stream of records with an `index`. `verify` prints
 * `{"index":i,"valid":true|false}`, `assemble` prints `{"event":"piece","index":i,…}`: both say
 * which pieces are already on disk, so either one is a resume journal. Later lines win, so a
 * journal that says a piece went bad (`"valid":false`) takes it out again.
 */
import { createReadStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NdjsonError, NdjsonParseStream, type NdjsonLine } from './ndjson-parse.js';

/** Applies one have-set record to `have`; returns an error message for a malformed record. */
export function applyHaveRecord(have: Set<number>, v: unknown, pieceCount: number): string | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null; // not a record: ignore
  const o = v as Record<string, unknown>;
  if (!('index' in o)) return null; // other events (complete, progress…)
  const i = o['index'];
  if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i >= pieceCount) return `"index" must be an integer 0..${pieceCount - 1}`;
  if (o['event'] !== undefined && o['event'] !== 'piece') return null;
  if (o['valid'] === false) have.delete(i);
  else have.add(i);
  return null;
}

/** Reads a have-set file; errors name `path:LINE`. */
export async function readHaveSet(path: string, pieceCount: number): Promise<Set<number>> {
  const have = new Set<number>();
  await pipeline(
    createReadStream(path, { highWaterMark: 64 * 1024 }),
    new NdjsonParseStream({ maxLineLength: 1024 * 1024 }),
    new Writable({
      objectMode: true,
      write(rec: NdjsonLine, _enc, cb) {
        const err = applyHaveRecord(have, rec.value, pieceCount);
        cb(err === null ? null : new NdjsonError(rec.line, err));
      },
    }),
  );
  return have;
}
