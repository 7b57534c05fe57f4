/**
 * Our own listening address, as a tracker or PEX hands it back to us: not a peer to dial (the
 * handshake would show it, after a wasted connection and a line of noise). An address is ours
 * when it is a loopback or unspecified address, or one of this host's interfaces, with our port.
 */
import { networkInterfaces } from 'node:os';
import { normalizeIp } from './record.js';

let cached: { at: number; addresses: Set<string> } | null = null;

/** This host's interface addresses (re-read at most every 10 s: interfaces come and go). */
function localAddresses(): Set<string> {
  const now = Date.now();
  if (cached === null || now - cached.at > 10_000) {
    const addresses = new Set<string>();
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) {
        const ip = normalizeIp(a.address.replace(/%.*$/, ''));
        if (ip !== null) addresses.add(ip);
      }
    }
    cached = { at: now, addresses };
  }
  return cached.addresses;
}

export function isOwnAddress(ip: string, port: number, ownPort: number | null): boolean {
  if (ownPort === null || port !== ownPort) return false;
  if (ip.startsWith('127.') || ip === '::1' || ip === '0.0.0.0' || ip === '::') return true;
  return localAddresses().has(ip);
}
