/**
 * A UDP relay on 127.0.0.1 between one client and one server that loses, duplicates, reorders
 * and delays datagrams, with a seeded RNG so a failure replays: the kernel here has no netem.
 * The client sends to `port`; the relay forwards from a second socket to the server, so the
 * server sees the relay as its peer, and the answers go back the same way.
 */
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { rng } from './random.js';

export interface ImpairOptions {
  /** probability a datagram is dropped */
  loss?: number;
  /** probability a datagram is sent twice */
  duplicate?: number;
  /** probability a datagram is held back and sent after the next one (or after 5 ms) */
  reorder?: number;
  /** one-way delay added to every datagram, ms */
  delayMs?: number;
  seed: number;
}

export interface UdpRelay {
  /** where the client sends */
  port: number;
  readonly counts: { forwarded: number; dropped: number; duplicated: number; reordered: number };
  close(): Promise<void>;
}

export async function udpRelay(serverPort: number, o: ImpairOptions): Promise<UdpRelay> {
  const r = rng(o.seed);
  const front = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  const back = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  front.bind(0, '127.0.0.1');
  back.bind(0, '127.0.0.1');
  await Promise.all([once(front, 'listening'), once(back, 'listening')]);
  const counts = { forwarded: 0, dropped: 0, duplicated: 0, reordered: 0 };
  let client: { port: number; address: string } | null = null;
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  /** one direction: its own held-back datagram */
  function direction(out: Socket, dest: () => { port: number; address: string } | null) {
    let held: Buffer | null = null;
    let heldTimer: NodeJS.Timeout | null = null;
    const emit = (b: Buffer): void => {
      const d = dest();
      if (!d || closed) return;
      if (o.delayMs) {
        const t = setTimeout(() => {
          timers.delete(t);
          if (!closed) out.send(b, d.port, d.address);
        }, o.delayMs);
        timers.add(t);
      } else out.send(b, d.port, d.address);
    };
    const release = (): void => {
      if (heldTimer) clearTimeout(heldTimer);
      heldTimer = null;
      const h = held;
      held = null;
      if (h) emit(h);
    };
    return (b: Buffer): void => {
      if (r() < (o.loss ?? 0)) {
        counts.dropped++;
        return;
      }
      counts.forwarded++;
      if (held === null && r() < (o.reorder ?? 0)) {
        counts.reordered++;
        held = b;
        heldTimer = setTimeout(release, 5);
        return;
      }
      emit(b);
      if (r() < (o.duplicate ?? 0)) {
        counts.duplicated++;
        emit(b);
      }
      release();
    };
  }

  const toServer = direction(back, () => ({ port: serverPort, address: '127.0.0.1' }));
  const toClient = direction(front, () => client);
  front.on('message', (m, rinfo) => {
    client = { port: rinfo.port, address: rinfo.address };
    toServer(m);
  });
  back.on('message', (m) => toClient(m));
  return {
    port: front.address().port,
    counts,
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      await Promise.all([
        new Promise<void>((res) => front.close(() => res())),
        new Promise<void>((res) => back.close(() => res())),
      ]);
    },
  };
}
