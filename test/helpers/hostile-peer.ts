/**
 * A scripted peer on loopback for abuse tests: it handshakes like a real client (BEP 10), then
 * answers each extended message with whatever the test says, as raw bytes on a real socket.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { encode } from '../../src/bencode/encoder.js';
import { decode } from '../../src/bencode/decoder.js';
import type { BValue } from '../../src/bencode/types.js';

export interface HostileContext {
  socket: Socket;
  /** sends an extended message to the client under the client's id for `name` */
  send(name: string, payload: Buffer): void;
  /** sends a raw frame body (id byte + payload) */
  frame(body: Buffer): void;
}

export interface HostileScript {
  /** fields of our extended handshake besides m (e.g. metadata_size) */
  handshake: Record<string, BValue>;
  /** our extension ids (default ut_metadata 3, ut_pex 4) */
  m?: Record<string, number>;
  /** after the client's extended handshake */
  onReady?(ctx: HostileContext): void;
  /** each extended message from the client: `name` is the extension it is for */
  onExtended?(ctx: HostileContext, name: string, payload: Buffer): void;
}

export interface HostilePeer {
  port: number;
  connections: number;
  close(): Promise<void>;
}

export async function startHostilePeer(infoHash: Buffer, script: HostileScript): Promise<HostilePeer> {
  const m = script.m ?? { ut_metadata: 3, ut_pex: 4 };
  const byId = new Map(Object.entries(m).map(([k, v]) => [v, k]));
  const sockets = new Set<Socket>();
  const state = { connections: 0 };
  const server: Server = createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    let shook = false;
    const theirIds = new Map<string, number>();
    const frame = (body: Buffer): void => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(body.length);
      socket.write(Buffer.concat([len, body]));
    };
    const ctx: HostileContext = {
      socket,
      frame,
      send: (name, payload) => frame(Buffer.concat([Buffer.from([20, theirIds.get(name) ?? 0]), payload])),
    };
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!shook) {
        if (buf.length < 68) return;
        shook = true;
        buf = buf.subarray(68);
        const reserved = Buffer.alloc(8);
        reserved[5] = 0x10;
        socket.write(Buffer.concat([Buffer.from('\x13BitTorrent protocol', 'latin1'), reserved, infoHash, Buffer.from('-XX0001-hostilepeer!')]));
        frame(Buffer.concat([Buffer.from([20, 0]), encode({ ...script.handshake, m })]));
      }
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (buf.length < 4 + len) return;
        const body = buf.subarray(4, 4 + len);
        buf = buf.subarray(4 + len);
        if (len < 2 || body[0] !== 20) continue;
        const payload = body.subarray(2);
        if (body[1] === 0) {
          const d = decode(payload, { allowUnsorted: true }) as Map<string, BValue>;
          const mm = d.get('m');
          if (mm instanceof Map) for (const [k, v] of mm) if (typeof v === 'number') theirIds.set(k, v);
          script.onReady?.(ctx);
        } else {
          script.onExtended?.(ctx, byId.get(body[1]!) ?? `#${body[1]}`, payload);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as { port: number }).port,
    get connections() {
      return state.connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
