import { describeClose } from '../wire/close-reason.js';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import { connect, createServer, isIP, type Socket } from 'node:net';
import { SharedUdp } from '../net/udp-socket.js';
import { utpOnUdp } from '../utp/on-udp.js';
import type { WireSocket } from '../wire/memory-pipe.js';
import { parseArgs, parseIntArg } from '../cli/args.js';
import { CliError, UsageError } from '../cli/errors.js';
import type { Command } from '../cli/io.js';
import { loadTorrentArg } from '../cli/torrent-arg.js';
import { digestPiece, pieceCheck } from '../metainfo/piece-check.js';
import { blockRanges, pieceSize } from '../metainfo/pieces.js';
import { parseHostPort } from '../peers/record.js';
import type { WireLimits } from '../wire/frame-decoder.js';
import { describeHandshake, describeMessage } from '../wire/describe.js';
import { CRYPTO_PLAINTEXT, CRYPTO_RC4 } from '../wire/mse.js';
import { PeerConnection } from '../wire/peer-connection.js';
import { CLIENT_VERSION, makePeerId, type WireMessage } from '../wire/protocol.js';
import { UtMetadata } from '../wire/ut-metadata.js';
import { MetadataFetcher } from '../swarm/metadata-fetcher.js';
import { torrentFromInfo } from '../client/metadata.js';
import type { Torrent } from '../metainfo/torrent.js';
import { unclesFor } from '../metainfo/merkle.js';
import { leafHashRequest, sameHashRange, type LeafHashRequest } from '../metainfo/hash-requests.js';

export const peer: Command = {
  name: 'peer',
  synopsis: 'HOST:PORT TORRENT|MAGNET|INFOHASH [--request INDEX [--out FILE]] [--hashes INDEX] [--metadata] [--interested] [--utp] [--timeout S]\n       torrent-tools peer --listen PORT TORRENT|MAGNET|INFOHASH [...]',
  help: `usage: torrent-tools peer HOST:PORT TORRENT|MAGNET|INFOHASH [options]
       torrent-tools peer --listen PORT TORRENT|MAGNET|INFOHASH [options]

Connects to one peer (or waits for one with --listen), handshakes, and prints every message
in both directions as NDJSON: {"dir":"in","type":"bitfield","pieces":…}, {"dir":"out",
"type":"interested"}; payloads are summarised (piece messages give index, begin, length; the
BEP 10 handshake is decoded). A protocol violation ends with {"event":"closed","reason":…,"kind":"violation"}.
With a TORRENT the messages are checked against it; with a MAGNET or bare INFOHASH only
their framing, until the metadata is fetched from the peer (BEP 9: --metadata, --request).

options:
  --request INDEX   download piece INDEX, check its hash, print
                    {"event":"piece","index":…,"valid":…,"sha1":…} ("root":… for a v2-only
                    torrent: the merkle root of its blocks) and exit (0 when valid); with a
                    MAGNET or INFOHASH the metadata is fetched from the peer first
  --metadata        MAGNET or INFOHASH: fetch the metadata from the peer, print
                    {"event":"metadata",…} and exit (0 when it matches the info hash)
  --out FILE        with --request: write the piece's bytes to FILE
  --hashes INDEX    v2 or hybrid TORRENT: ask for the leaf hashes of piece INDEX (BEP 52
                    hash request, base layer 0) with the proof up to its file's pieces root,
                    check them against the root and the piece layer, print
                    {"event":"hashes","index":…,"valid":…,"uncles":…} and exit (0 when valid)
  --interested      say we are interested (--request does)
  --listen PORT     wait for one incoming peer on PORT instead of connecting (it may use
                    plaintext or the MSE encrypted handshake)
  --encrypt METHOD  start with the MSE encrypted handshake, offering METHOD for the rest of
                    the stream: rc4, plaintext, or both (the peer picks); the incoming
                    handshake record then says "encryption":"mse-rc4"|"mse-plaintext"
  --utp             speak uTP (BEP 29, over UDP, IPv4 or IPv6) instead of TCP: connect to HOST:PORT
                    over uTP, or with --listen wait for a uTP connection on UDP port PORT.
                    The handshake record then says "transport":"utp"
  --dht-port N      say we run a DHT node (BEP 5 reserved bit) and send a port message with N
  --timeout S       give up after S seconds without a message (default 30)
  -h, --help        show this help

examples:
  torrent-tools peer 127.0.0.1:6881 x.torrent --request 0 --out piece0.bin | jq -c .
  torrent-tools peer 127.0.0.1:6881 x.torrent --interested --timeout 5 | jq -r .type | sort | uniq -c
  torrent-tools peer 127.0.0.1:6881 x.torrent --utp --request 0 | jq -c 'select(.event)'
`,
  async run(argv, io) {
    const a = parseArgs(argv, { string: ['request', 'out', 'listen', 'timeout', 'dht-port', 'encrypt', 'hashes'], boolean: ['interested', 'strict', 'metadata', 'utp'] });
    const listen = a.int('listen', 0, 65535);
    const need = listen === undefined ? 2 : 1;
    if (a.positional.length !== need) throw new UsageError(listen === undefined ? 'expected HOST:PORT and TORRENT|INFOHASH' : 'expected TORRENT|INFOHASH');
    const timeout = (a.int('timeout', 1, 86_400) ?? 30) * 1000;
    const src = await loadTorrentArg(a.positional[need - 1]!, io, 'peer', { allowInfoHash: true, allowMagnet: true, strict: a.bool('strict') });
    let t = src.torrent;
    const request = a.has('request') ? parseIntArg('--request', a.str('request')!, 0, Number.MAX_SAFE_INTEGER) : undefined;
    if (request !== undefined && t && request >= t.pieceCount) throw new UsageError(`--request: the torrent has ${t.pieceCount} pieces`);
    if (a.has('out') && request === undefined) throw new UsageError('--out goes with --request');
    if (a.bool('metadata') && t) throw new UsageError('--metadata goes with a MAGNET or INFOHASH (a .torrent has its metadata)');
    const hashesOf = a.has('hashes') ? parseIntArg('--hashes', a.str('hashes')!, 0, Number.MAX_SAFE_INTEGER) : undefined;
    let leafAsk: LeafHashRequest | null = null;
    if (hashesOf !== undefined) {
      if (!t || t.version === 1) throw new UsageError('--hashes goes with a v2 or hybrid TORRENT');
      if (request !== undefined || a.bool('metadata')) throw new UsageError('--hashes goes alone (not with --request or --metadata)');
      if (hashesOf >= t.pieceCount) throw new UsageError(`--hashes: the torrent has ${t.pieceCount} pieces`);
      const ask = leafHashRequest(t, hashesOf);
      if (typeof ask === 'string') throw new UsageError(`--hashes: ${ask}`);
      leafAsk = ask;
    }
    const methods = { plaintext: CRYPTO_PLAINTEXT, rc4: CRYPTO_RC4, both: CRYPTO_PLAINTEXT | CRYPTO_RC4 } as const;
    const encryptArg = a.str('encrypt');
    if (encryptArg !== undefined && !(encryptArg in methods)) throw new UsageError('--encrypt: expected rc4, plaintext or both');
    if (encryptArg !== undefined && listen !== undefined) throw new UsageError('--encrypt is for outgoing connections (--listen accepts either handshake)');
    const limitsOf = (tt: Torrent): WireLimits => ({ pieceCount: tt.pieceCount, pieceSize: (i) => pieceSize(tt, i) });
    const limits: WireLimits = t ? limitsOf(t) : {};
    const print = (o: Record<string, unknown>): void => void io.stdout.write(JSON.stringify(o) + '\n');

    let socket: WireSocket;
    let outgoing = true;
    let utp: UtpLink | null = null;
    if (a.bool('utp')) {
      const link = (utp = await utpLink(listen ?? 0));
      if (listen !== undefined) {
        outgoing = false;
        print({ event: 'listening', port: link.port, transport: 'utp' });
      }
      socket = await (listen !== undefined ? link.accept(io.signal) : link.dial(a.positional[0]!, timeout)).catch(async (e: unknown) => {
        await link.close();
        throw e;
      });
    } else if (listen !== undefined) {
      outgoing = false;
      socket = await new Promise<Socket>((resolve, reject) => {
        const server = createServer((s) => {
          server.close();
          resolve(s);
        });
        server.once('error', (e) => reject(new CliError(`listen on ${listen}: ${e.message}`)));
        server.listen(listen, () => print({ event: 'listening', port: (server.address() as { port: number }).port }));
        io.signal.addEventListener('abort', () => server.close(), { once: true });
      });
    } else {
      const hp = parseHostPort(a.positional[0]!);
      if (!hp) throw new UsageError(`expected HOST:PORT, got ${JSON.stringify(a.positional[0])}`);
      socket = await new Promise<Socket>((resolve, reject) => {
        const s = connect({ host: hp.host, port: hp.port });
        const timer = setTimeout(() => s.destroy(new Error(`no connection within ${timeout / 1000} s`)), timeout);
        s.once('connect', () => {
          clearTimeout(timer);
          resolve(s);
        });
        s.once('error', (e: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          reject(new CliError(`${a.positional[0]}: ${e.code ?? e.message}`));
        });
      });
    }
    const conn = new PeerConnection(socket, {
      peerId: makePeerId(randomBytes),
      infoHash: outgoing ? src.infoHash : undefined,
      // a hybrid's peer answers BEP 52 messages only on a v2 connection: offer the upgrade
      v2InfoHash: t?.version === 'hybrid' && t.infoHashV2 ? t.infoHashV2.subarray(0, 20) : undefined,
      accept: (h) => (h.equals(src.infoHash) ? limits : null),
      limits,
      outgoing,
      skeys: [src.infoHash],
      encrypt: encryptArg === undefined ? undefined : methods[encryptArg as keyof typeof methods],
      idleTimeoutMs: timeout,
      extendedHandshake: { v: Buffer.from(CLIENT_VERSION), reqq: 250 },
      dhtPort: a.int('dht-port', 1, 65535),
    });
    // the metadata, from this peer, when we came with only a hash and need it
    const fetcher = !t && (request !== undefined || a.bool('metadata')) ? new MetadataFetcher({ infoHash: src.infoHash, infoHashV2: src.magnet?.infoHashV2 }) : null;
    conn.use(fetcher ? fetcher.extension(conn) : new UtMetadata({ info: () => t?.infoRaw ?? null }));
    fetcher?.on('log', (m) => print({ event: 'metadata-error', message: m }));
    conn.on('handshake', (h) => print({ dir: 'in', ...describeHandshake(h), ...(conn.encryption === 'none' ? {} : { encryption: conn.encryption }), ...(utp ? { transport: 'utp' } : {}) }));
    const extName = (m: WireMessage, dir: 'in' | 'out'): string | undefined => (m.type === 'extended' && m.id > 0 ? conn.extensionName(m.id, dir) : undefined);
    conn.on('message', (m) => print({ dir: 'in', ...describeMessage(m, extName(m, 'in')) }));
    conn.on('extended-handshake', (d) => void d);
    conn.on('sent', (m) => print({ dir: 'out', ...describeMessage(m, extName(m, 'out')) }));

    // with --request: interested, then the piece's blocks once unchoked (or allowed fast)
    let piece: Buffer | null = null;
    let got = 0;
    let requested = false;
    let mayRequest = false;
    let blocks: Array<{ begin: number; length: number }> = [];
    const result = new Promise<number>((resolve) => {
      const askAll = (): void => {
        if (requested || !t || !mayRequest) return;
        requested = true;
        blocks = blockRanges(pieceSize(t, request!));
        piece = Buffer.alloc(pieceSize(t, request!));
        for (const b of blocks) conn.send({ type: 'request', index: request!, begin: b.begin, length: b.length });
      };
      fetcher?.once('metadata', (info) => {
        let got: Torrent;
        try {
          got = torrentFromInfo(src, info).torrent;
        } catch (e) {
          print({ event: 'metadata', infoHash: src.infoHash.toString('hex'), bytes: info.length, valid: false, message: (e as Error).message });
          resolve(1);
          conn.close(null);
          return;
        }
        print({ event: 'metadata', infoHash: got.infoHashHex, bytes: info.length, valid: true, name: got.name, pieceCount: got.pieceCount });
        if (request === undefined) {
          resolve(0);
          conn.close(null);
          return;
        }
        if (request >= got.pieceCount) {
          print({ event: 'error', message: `--request: the torrent has ${got.pieceCount} pieces` });
          resolve(1);
          conn.close(null);
          return;
        }
        t = got;
        conn.setLimits(limitsOf(got));
        askAll();
      });
      conn.on('handshake', () => {
        if (request !== undefined || a.bool('interested')) conn.send({ type: 'interested' });
        if (leafAsk !== null) conn.send({ type: 'hash-request', ...leafAsk.request });
      });
      conn.on('message', (m) => {
        if (leafAsk !== null && (m.type === 'hashes' || m.type === 'hash-reject') && sameHashRange(m, leafAsk.request)) {
          if (m.type === 'hash-reject') print({ event: 'hashes', index: hashesOf, valid: false, rejected: true });
          else {
            const valid = leafAsk.check(m.hashes);
            print({ event: 'hashes', index: hashesOf, valid, uncles: unclesFor(m.length, m.proofLayers) });
            resolve(valid ? 0 : 1);
          }
          resolve(1);
          conn.close(null);
          return;
        }
        if (request === undefined) return;
        if (m.type === 'unchoke' || (m.type === 'allowed-fast' && m.index === request)) {
          mayRequest = true;
          askAll();
        }
        else if (m.type === 'reject' && m.index === request) {
          print({ event: 'rejected', index: m.index, begin: m.begin });
          conn.close(null);
        } else if (m.type === 'piece' && m.index === request && piece) {
          m.block.copy(piece, m.begin);
          if (++got === blocks.length && t) {
            const check = pieceCheck(t, request);
            const digest = check.kind === 'pending' ? null : digestPiece(check.digest, piece);
            const valid = digest !== null && check.kind !== 'pending' && digest.equals(check.want);
            // a v2 piece's digest is its merkle root (SHA-256), named so
            const named = digest === null ? {} : check.kind === 'sha1' ? { sha1: digest.toString('hex') } : { root: digest.toString('hex') };
            print({ event: 'piece', index: request, length: piece.length, valid, ...named });
            const done = (): void => {
              resolve(valid ? 0 : 1); // before close: its handler resolves too
              conn.close(null);
            };
            if (a.has('out') && valid) writeFile(a.str('out')!, piece).then(done, (e: Error) => { print({ event: 'error', message: e.message }); done(); });
            else done();
          }
        }
      });
      conn.on('close', (reason) => {
        print({ event: 'closed', reason: reason === null ? null : describeClose(reason), ...(reason === null ? {} : { kind: reason.kind }) });
        // the peer hanging up, or going quiet after the handshake, is how a session ends
        const normal = reason === null || reason.kind === 'hang-up' || (reason.kind === 'timeout' && conn.remote !== null);
        resolve(request === undefined && leafAsk === null && normal ? 0 : 1);
      });
      io.signal.addEventListener('abort', () => conn.close(null), { once: true });
    });
    return result.finally(() => utp?.close());
  },
};

/** One uTP endpoint on a UDP socket of its own, for one connection. */
interface UtpLink {
  port: number;
  dial(hostPort: string, timeoutMs: number): Promise<WireSocket>;
  accept(signal: AbortSignal): Promise<WireSocket>;
  close(): Promise<void>;
}

async function utpLink(port: number): Promise<UtpLink> {
  const udp = await SharedUdp.bind(port).catch((e: Error) => {
    throw new CliError(`UDP port ${port}: ${e.message}`);
  });
  // IPv6 as well where the machine has it, on the same number
  const udp6 = await SharedUdp.bind(udp.port, '::', { type: 'udp6' }).catch(() => null);
  const endpoint = utpOnUdp(udp, udp6);
  return {
    port: udp.port,
    async dial(hostPort, timeoutMs) {
      const hp = parseHostPort(hostPort);
      if (!hp) throw new UsageError(`expected HOST:PORT, got ${JSON.stringify(hostPort)}`);
      const ip = isIP(hp.host) !== 0 ? hp.host : await lookup(hp.host, { family: udp6 === null ? 4 : 0 }).then((r) => r.address, () => null);
      if (ip === null) throw new CliError(`${hostPort}: cannot resolve ${hp.host}`);
      if (isIP(ip) === 6 && udp6 === null) throw new CliError(`${hostPort}: no IPv6 UDP socket here (uTP reaches IPv4 addresses only)`);
      const stream = endpoint.connect(ip, hp.port);
      return new Promise<WireSocket>((resolve, reject) => {
        const timer = setTimeout(() => {
          stream.destroy();
          reject(new CliError(`${hostPort}: no uTP connection within ${timeoutMs / 1000} s`));
        }, timeoutMs);
        stream.once('connect', () => {
          clearTimeout(timer);
          resolve(stream);
        });
        stream.once('error', (e: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          reject(new CliError(`${hostPort}: ${e.code ?? e.message} (uTP)`));
        });
      });
    },
    accept(signal) {
      return new Promise<WireSocket>((resolve, reject) => {
        endpoint.once('connection', (s: WireSocket) => resolve(s));
        signal.addEventListener('abort', () => reject(new CliError('interrupted while waiting for a uTP peer')), { once: true });
      });
    },
    async close() {
      endpoint.close();
      await udp.close();
      await udp6?.close();
    },
  };
}
