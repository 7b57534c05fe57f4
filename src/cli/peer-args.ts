import { parseHostPort, type PeerRecord } from '../peers/record.js';
import { UsageError } from './errors.js';

/** `--peer HOST:PORT` values as peer records (source "cli"). */
export function parsePeerArgs(values: readonly string[]): PeerRecord[] {
  return values.map((v) => {
    const hp = parseHostPort(v);
    if (!hp) throw new UsageError(`--peer: expected HOST:PORT or [IPv6]:PORT, got ${JSON.stringify(v)}`);
    return { ip: hp.host, port: hp.port, source: 'cli' };
  });
}
