/**
 * Why a peer connection ended, as a type. What the swarm decides (ban, redial, the MSE
 * fallback, whether a line is worth printing) branches on `kind`; `detail` is for people, and
 * rewording it changes no behaviour.
 */
export type CloseKind =
  /** the peer closed or reset the connection */
  | 'hang-up'
  /** no handshake, or nothing at all, within the time allowed */
  | 'timeout'
  /** the peer broke the protocol (malformed, oversized or unasked-for messages) */
  | 'violation'
  /** the handshake showed our own peer id: we dialled ourselves */
  | 'ourselves'
  /** it sent data that failed the hash check */
  | 'banned'
  /** we let it go: room for a newcomer, it does not read, it has nothing for us */
  | 'dropped'
  /** something on our side (a disk read, a bug) */
  | 'local';

export interface CloseReason {
  readonly kind: CloseKind;
  readonly detail: string;
}

export function closeReason(kind: CloseKind, detail: string): CloseReason {
  return { kind, detail };
}

/** The reason in one line for a log: violations say so, the rest speak for themselves. */
export function describeClose(r: CloseReason): string {
  return r.kind === 'violation' ? `protocol violation: ${r.detail}` : r.detail;
}

/** A socket error as a close reason: resets and broken pipes are the peer hanging up. */
export function socketErrorReason(e: NodeJS.ErrnoException): CloseReason {
  const code = e.code ?? e.message;
  if (code === 'ECONNRESET' || code === 'EPIPE') return closeReason('hang-up', code);
  if (code === 'ETIMEDOUT') return closeReason('timeout', code);
  return closeReason('hang-up', code);
}
