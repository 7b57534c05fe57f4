/**
 * --no-utp and --no-tcp, for every command that dials or accepts peers: which transports the
 * session speaks. Both on by default; outgoing connections try uTP first (swarm/connector.ts).
 */
import type { Args } from './args.js';
import { UsageError } from './errors.js';

export const TRANSPORT_BOOLEAN_OPTIONS = ['no-utp', 'no-tcp'];
export const TRANSPORT_HELP = `  --no-utp             neither dial nor accept uTP (BEP 29): TCP only
  --no-tcp             neither dial nor accept TCP: uTP only (peers that speak only TCP are
                       out of reach). Default: both; a peer is dialled over uTP first, and
                       over TCP too when uTP has no answer after 0.5 s
`;

/** Which transports to speak. */
export interface TransportChoice {
  tcp: boolean;
  utp: boolean;
}

export function transportsOf(a: Args): TransportChoice {
  const choice = { tcp: !a.bool('no-tcp'), utp: !a.bool('no-utp') };
  if (!choice.tcp && !choice.utp) throw new UsageError('--no-utp and --no-tcp together leave no way to reach a peer');
  return choice;
}
