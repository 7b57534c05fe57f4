/**
 * A uTP endpoint on the process's UDP sockets: the IPv4 one that the DHT and trackers share, and
 * its IPv6 twin on the same port number where the machine has IPv6 (the DHT speaks BEP 5's
 * IPv4 formats, and a dual-stack socket would hand IPv4 senders over as ::ffff:a.b.c.d). A
 * datagram leaves on the socket of its address's family; both hand their uTP-shaped datagrams
 * to the one endpoint, which keys its connections by address and port anyway.
 */
import { isIPv6 } from 'node:net';
import type { SharedUdp } from '../net/udp-socket.js';
import { UtpEndpoint } from './endpoint.js';

export function utpOnUdp(udp4: SharedUdp | null, udp6: SharedUdp | null): UtpEndpoint {
  const endpoint = new UtpEndpoint({
    // an address of a family with no socket here is never dialled (connector.ts), nor heard from
    send(buf, port, address) {
      (isIPv6(address) ? udp6 : udp4)?.send(buf, port, address);
    },
  });
  const receive = (buf: Buffer, address: string, port: number): void => endpoint.receive(buf, address, port);
  udp4?.onUtp(receive);
  udp6?.onUtp(receive);
  return endpoint;
}
