/**
 * The one rule for peer addresses: a peer record's `ip` is an IP address, never a host name.
 * Names reach us only where the user typed them (`--peer HOST:PORT`, a magnet's `x.pe`); they
 * are looked up once, here, before any peer is dialled. A name from the network (a tracker's
 * dictionary reply may carry one, BEP 3) is skipped where it is parsed: no tracker or peer can
 * make us query DNS.
 */
import { lookup } from 'node:dns/promises';
import { normalizeIp, type PeerRecord, type PeerSource } from './record.js';

export interface NamedPeer {
  host: string;
  port: number;
}

/** Peers with their names looked up (bounded in time); one line per name that cannot be. */
export async function resolvePeers(list: readonly NamedPeer[], source: PeerSource, warn: (message: string) => void, timeoutMs = 5000): Promise<PeerRecord[]> {
  const out = await Promise.all(list.map(async (p): Promise<PeerRecord | null> => {
    const ip = normalizeIp(p.host) ?? (await lookupOnce(p.host, timeoutMs).catch((e: NodeJS.ErrnoException) => {
      warn(`${p.host}:${p.port}: cannot resolve the name (${e.code ?? e.message}); peer skipped`);
      return null;
    }));
    return ip === null ? null : { ip, port: p.port, source };
  }));
  return out.filter((r): r is PeerRecord => r !== null);
}

async function lookupOnce(host: string, timeoutMs: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEOUT' })), timeoutMs);
  });
  try {
    const { address } = await Promise.race([lookup(host), timeout]);
    return normalizeIp(address) ?? address;
  } finally {
    clearTimeout(timer);
  }
}
