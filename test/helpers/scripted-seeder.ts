/**
 * A seeder on loopback whose every move a test scripts: it handshakes (with or without BEP 6),
 * announces all pieces, and hands each message from the client to the script, which answers
 * with any messages, in one write or several. For the races real clients produce (a choke,
 * allowed-fast and unchoke in one burst, then answers to requests made before the choke) that
 * no well-behaved seeder of ours would show on cue.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Torrent } from '../../src/metainfo/torrent.js';
import { pieceSize } from '../../src/metainfo/pieces.js';
import { FrameDecoder } from '../../src/wire/frame-decoder.js';
import { FAST_BIT, encodeHandshake, encodeMessage, reservedBits, type WireMessage } from '../../src/wire/protocol.js';

export interface Request {
  index: number;
  begin: number;
  length: number;
}

export interface SeederContext {
  /** messages sent in one write (a burst, as rate-limited clients send them) */
  send(...ms: WireMessage[]): void;
  /** the piece message answering `r`, with the torrent's bytes */
  piece(r: Request): WireMessage;
  /** every request received on this connection so far, in order */
  readonly requests: Request[];
  readonly fast: boolean;
  readonly socket: Socket;
}

export interface ScriptedSeeder {
  port: number;
  /** requests received per connection, in order */
  readonly connections: Request[][];
  close(): Promise<void>;
}

export async function startScriptedSeeder(o: { torrent: Torrent; content: Buffer; fast: boolean; onMessage: (ctx: SeederContext, m: WireMessage) => void }): Promise<ScriptedSeeder> {
  const t = o.torrent;
  const sockets = new Set<Socket>();
  const connections: Request[][] = [];
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const requests: Request[] = [];
    connections.push(requests);
    const ctx: SeederContext = {
      requests,
      fast: o.fast,
      socket,
      send: (...ms) => {
        const parts = ms.flatMap((m) => {
          const b = encodeMessage(m);
          return Array.isArray(b) ? b : [b];
        });
        if (!socket.destroyed) socket.write(Buffer.concat(parts));
      },
      piece: (r) => {
        const at = r.index * t.pieceLength + r.begin;
        return { type: 'piece', index: r.index, begin: r.begin, block: o.content.subarray(at, at + r.length) };
      },
    };
    const decoder = new FrameDecoder({ pieceCount: t.pieceCount, pieceSize: (i) => pieceSize(t, i) });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.write(
          chunk,
          (h) => {
            socket.write(encodeHandshake({ reserved: reservedBits({ fast: o.fast }), infoHash: h.infoHash, peerId: Buffer.from('-XX0001-scriptedseed') }));
            ctx.send(o.fast && (h.reserved[FAST_BIT.byte]! & FAST_BIT.mask) !== 0 ? { type: 'have-all' } : { type: 'bitfield', bits: allPieces(t.pieceCount) });
          },
          (m) => {
            if (m.type === 'request') requests.push({ index: m.index, begin: m.begin, length: m.length });
            o.onMessage(ctx, m);
          },
        );
      } catch {
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as { port: number }).port,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function allPieces(n: number): Buffer {
  const b = Buffer.alloc(Math.ceil(n / 8));
  for (let i = 0; i < n; i++) b[i >> 3]! |= 0x80 >> (i & 7);
  return b;
}
