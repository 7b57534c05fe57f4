/** Ports for programs that must be told one up front (they cannot report what they bound). */
import { createSocket } from 'node:dgram';
import { pickFreePort } from '../../src/client/port.js';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it, so it cannot be one
 * another test holds (a random pick in 20000-40000 could, and overlaps the ephemeral range).
 */
export function freeTcpPort(): Promise<number> {
  return pickFreePort('127.0.0.1');
}

/** Whether a UDP socket can bind IPv6 loopback here (a container may have IPv6 off). */
export function hasIpv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp6');
    s.once('error', () => {
      s.close();
      resolve(false);
    });
    s.bind(0, '::1', () => {
      s.close();
      resolve(true);
    });
  });
}
