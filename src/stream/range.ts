/**
 * The HTTP Range header (RFC 9110 §14), for one file of `size` bytes. One range is served: a
 * multi-range request (rare; players send one) gets its first range, not a multipart body.
 */

/** The bytes [start, end] (inclusive, as Content-Range says them). */
export interface ByteRange {
  start: number;
  end: number;
}

// 15 digits: every offset below 2^53 fits, and no header makes a float of a long digit string
const SPEC = /^(\d{0,15})-(\d{0,15})$/;

/**
 * A range to serve, 'unsatisfiable' (416: it starts past the end, or asks for the last 0 bytes),
 * or null: no Range header, or one that is not a valid byte range (RFC 9110 says to ignore it
 * and send the whole file).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  if (header === undefined) return null;
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (m === null) return null;
  const first = m[1]!.split(',')[0]!.trim();
  const r = SPEC.exec(first);
  if (r === null || (r[1] === '' && r[2] === '')) return null;
  if (r[1] === '') {
    // bytes=-n: the last n bytes
    const n = Number(r[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(r[1]);
  if (r[2] !== '' && Number(r[2]) < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end: r[2] === '' ? size - 1 : Math.min(Number(r[2]), size - 1) };
}
