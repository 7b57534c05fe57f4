/**
 * The fuzz targets: every decoder that takes bytes from outside (a file, stdin, a peer, a
 * tracker, a DHT node, a magnet link). Each says how one input is run, which errors are the
 * decoder's documented way of refusing it, which compiled files its coverage is reported for,
 * and how structured inputs are built. `npm run fuzz` (fuzz/run.ts) drives them;
 * test/fuzz-corpus.test.ts replays test/fuzz-corpus/<target>/* against the same `run`.
 *
 * A run throws what the decoder threw when it is not a documented error, or a PropertyFailure
 * when a contract that is checked on the side (a round trip, chunking independence) is broken.
 */
import { createHash } from 'node:crypto';
import { gzipSync, deflateSync } from 'node:zlib';
import fc from 'fast-check';
import { BencodeDecoder, decode, decodeAll } from '../src/bencode/decoder.js';
import { encode } from '../src/bencode/encoder.js';
import { BencodeError, EncodeError } from '../src/bencode/errors.js';
import { fromJson, fromJsonText, toJson } from '../src/bencode/json.js';
import type { BValue } from '../src/bencode/types.js';
import { DhtNode } from '../src/dht/node.js';
import { decodeNodes, KrpcError, parseKrpc } from '../src/dht/krpc.js';
import { torrentFileFromMetadata } from '../src/metainfo/from-metadata.js';
import { MagnetError, magnetFromTorrent, parseInfoHash, parseMagnet } from '../src/metainfo/magnet.js';
import { sourceOfMagnet } from '../src/metainfo/source.js';
import { unclesFor } from '../src/metainfo/merkle.js';
import { componentProblem, MetainfoError, parseTorrent } from '../src/metainfo/torrent.js';
import { decodeCompactPeers } from '../src/peers/compact.js';
import { normalizeIp, parseHostPort, peerFromJson, peerLine } from '../src/peers/record.js';
import { NdjsonError, NdjsonLineParser, type NdjsonLine } from '../src/streams/ndjson-parse.js';
import { FrameParser, PieceStreamError, type PieceFrame } from '../src/streams/piece-frames.js';
import { httpAnnounce, httpScrape } from '../src/tracker/http.js';
import { TrackerError, parseAnnounceBody, type AnnounceParams } from '../src/tracker/reply.js';
import { resetUdpConnections, udpAnnounce, udpScrape } from '../src/tracker/udp.js';
import { type Clock, UtpEndpoint } from '../src/utp/endpoint.js';
import { decodePacket, emptyHeader, HEADER_SIZE, writeHeader } from '../src/utp/packet.js';
import type { UtpStream } from '../src/utp/stream.js';
import { HttpRangeError, RangeClient } from '../src/webseed/http-range.js';
import { describeHandshake, describeMessage } from '../src/wire/describe.js';
import { FrameDecoder, WireViolation, type WireLimits } from '../src/wire/frame-decoder.js';
import { CRYPTO_PLAINTEXT, CRYPTO_RC4, KeyPair, MseInitiator, MseResponder } from '../src/wire/mse.js';
import { PeerConnection } from '../src/wire/peer-connection.js';
import { encodeHandshake, encodeMessage, reservedBits, type WireMessage } from '../src/wire/protocol.js';
import { Rc4 } from '../src/wire/rc4.js';
import { decodeMetadataMessage, encodeMetadataMessage, UtMetadata } from '../src/wire/ut-metadata.js';
import { decodePex, encodePex, UtPex } from '../src/wire/ut-pex.js';
import { FakePeerSocket, datagramsLeft, httpRequests, installFakeHttp, installFakeUdp, setDatagrams, setHttpReplies, type FakeDatagram, type FakeHttpReply } from './fakes.js';
import { bencodeArb, bvalueArb, chunks, dictArb, hash32, mix } from './mutate.js';

/** A checked contract broken without an exception from the decoder itself. */
export class PropertyFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PropertyFailure';
  }
}

export interface FuzzTarget {
  name: string;
  /** what is fuzzed, one line */
  summary: string;
  /** compiled files (under dist/) whose line coverage is reported */
  files: string[];
  /** valid inputs the corpus starts from (written by `npm run fuzz -- --write-seeds`) */
  seeds(): Record<string, Buffer>;
  /** inputs: `corpus` are the files of test/fuzz-corpus/<name>/ */
  inputs(corpus: readonly Buffer[]): fc.Arbitrary<Buffer>;
  /** runs one input; resolves/returns when the decoder accepted or refused it as documented */
  run(input: Buffer): void | Promise<void>;
  /** the decoder's documented refusals */
  expected(e: unknown): boolean;
  async?: boolean;
}

const check = (ok: boolean, what: string): void => {
  if (!ok) throw new PropertyFailure(what);
};

// ---------------------------------------------------------------- bencode

function bencodeRun(input: Buffer): void {
  const h = hash32(input);
  // 1. strict, whole: a canonical value must encode back to the same bytes (design.md §2)
  let strict: BValue | null = null;
  try {
    strict = decode(input);
  } catch (e) {
    if (!(e instanceof BencodeError)) throw e;
  }
  if (strict !== null) {
    check(encode(strict).equals(input), 'strict decode then encode is not byte-identical');
    // the tagged JSON mapping is lossless: bdecode | bencode gives the same bytes back
    const line = toJson(strict);
    check(encode(fromJson(JSON.parse(line))).equals(input), 'toJson then fromJson changed the value');
    toJson(strict, '  ');
  }
  // 2. lenient, streamed in the input's own chunking, under a depth limit it picks (up to the
  // 5000 that --max-depth allows), compared with the same decode of the whole input; each value
  // then goes the ways bdecode and bencode take it (JSON, pretty JSON, back to bencode)
  const maxDepth = [512, 4, 100, 5000][(h >>> 4) % 4]!;
  const opts = { allowUnsorted: true, allowDuplicates: true, allowLeadingZeros: true, maxDepth, maxIntegerDigits: 64, spans: new WeakMap<object, { start: number; end: number }>() };
  const streamed: string[] = [];
  let streamErr: BencodeError | null = null;
  const d = new BencodeDecoder(opts);
  try {
    for (const c of chunks(input, h)) {
      d.write(c, (v) => {
        const line = toJson(v);
        streamed.push(line);
        toJson(v, ' ');
        encode(fromJson(JSON.parse(line), { maxDepth }));
      });
    }
    d.end();
  } catch (e) {
    if (!(e instanceof BencodeError)) throw e;
    streamErr = e;
  }
  let whole: string[] = [];
  let wholeErr: BencodeError | null = null;
  try {
    whole = decodeAll(input, { ...opts, spans: undefined }).map((v) => toJson(v));
  } catch (e) {
    if (!(e instanceof BencodeError)) throw e;
    wholeErr = e;
  }
  check((streamErr === null) === (wholeErr === null), `chunking changed the outcome: ${streamErr?.message ?? 'ok'} vs ${wholeErr?.message ?? 'ok'}`);
  if (streamErr && wholeErr) check(streamErr.offset === wholeErr.offset, `chunking moved the error offset: ${streamErr.offset} vs ${wholeErr.offset}`);
  else check(streamed.join('\n') === whole.join('\n'), 'chunking changed the values');
  // 3. the same bytes as JSON text, as `bencode` reads them (tagged forms, hostile keys)
  const text = input.toString('utf8');
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return;
  }
  try {
    encode(fromJson(j, { maxDepth }));
  } catch (e) {
    if (!(e instanceof EncodeError)) throw e;
  }
  // and as the bencode command reads a line: from the text, which also refuses repeated keys
  try {
    encode(fromJsonText(text, { maxDepth }));
  } catch (e) {
    if (!(e instanceof EncodeError) && !(e instanceof SyntaxError)) throw e;
  }
}

const bencodeTarget: FuzzTarget = {
  name: 'bencode',
  summary: 'bencode decoder (strict, lenient, streamed in any chunking), tagged JSON both ways',
  files: ['src/bencode/decoder.js', 'src/bencode/json-write.js', 'src/bencode/json-read.js', 'src/bencode/json-scan.js', 'src/bencode/encoder.js'],
  seeds: () => ({
    'dict.bin': Buffer.from('d3:bar4:spam3:fooi42ee'),
    'list.bin': Buffer.from('li1ei-2e3:abcli9007199254740993eed0:0:ee'),
    'nested.bin': Buffer.from('l'.repeat(40) + 'i0e' + 'e'.repeat(40)),
    'several-values.bin': Buffer.from('i1e3:abcde'),
    'torrent.bin': smallTorrent(false),
    'tagged.json': Buffer.from('{"$$hex":"x","a":{"$hex":"ff00"},"b":{"$int":"123456789012345678901"},"c":{"$dict":[[{"$hex":"ff"},1]]}}'),
  }),
  inputs: (corpus) => mix(corpus, bencodeArb(), 1024),
  run: bencodeRun,
  expected: (e) => e instanceof BencodeError || e instanceof EncodeError,
};

// ---------------------------------------------------------------- metainfo

const sha1 = (b: Buffer | string): Buffer => createHash('sha1').update(b).digest();

function torrentBytes(name: string, files: Array<{ path: string[]; length: number; pad?: boolean }> | null, length: number, pieceLength: number, extra: Array<[string, BValue]> = [], infoExtra: Array<[string, BValue]> = []): Buffer {
  const total = files ? files.reduce((a, f) => a + f.length, 0) : length;
  const count = Math.max(1, Math.ceil(total / pieceLength));
  const info = new Map<string, BValue>();
  if (files) {
    info.set('files', files.map((f) => new Map<string, BValue>([...(f.pad ? ([['attr', Buffer.from('p')]] as Array<[string, BValue]>) : []), ['length', f.length], ['path', f.path.map((c) => Buffer.from(c))]])));
  } else info.set('length', length);
  info.set('name', Buffer.from(name));
  info.set('piece length', pieceLength);
  const hashes: Buffer[] = [];
  // a torrent of absurd size gets a few hashes only (the wrong number: refused, as it should be)
  for (let i = 0; i < Math.min(count, 64); i++) hashes.push(sha1(`${name}${i}`));
  info.set('pieces', Buffer.concat(hashes));
  for (const [k, v] of infoExtra) info.set(k, v);
  return encode(new Map<string, BValue>([['announce', Buffer.from('http://127.0.0.1:6969/announce')], ...extra, ['info', info]]));
}

function smallTorrent(multi: boolean): Buffer {
  return multi
    ? torrentBytes('album', [{ path: ['cd1', 'a.flac'], length: 40000 }, { path: ['.pad', '1'], length: 9152, pad: true }, { path: ['cd1', 'b.flac'], length: 20000 }, { path: ['cover.jpg'], length: 100 }], 0, 16384, [['announce-list', [[Buffer.from('http://a/announce')], [Buffer.from('udp://b:80')]]], ['comment', Buffer.from('hi')], ['creation date', 1700000000], ['url-list', [Buffer.from('http://ws/')]]], [['private', 1]])
    : torrentBytes('file.bin', null, 100000, 32768);
}

const hostileNames = ['ok', '', '.', '..', 'a/b', 'a\\b', 'nul', 'CON.txt', 'x\u0000y', 'é', 'a'.repeat(256), '\uFFFD', ' '];

const torrentArb: fc.Arbitrary<Buffer> = fc
  .record({
    name: fc.oneof(fc.constantFrom(...hostileNames), fc.string({ maxLength: 12 })),
    multi: fc.boolean(),
    files: fc.array(fc.record({ path: fc.array(fc.oneof(fc.constantFrom(...hostileNames), fc.constantFrom('a', 'b', 'c')), { minLength: 0, maxLength: 4 }), length: fc.oneof(fc.nat({ max: 70000 }), fc.constantFrom(0, 2 ** 53 - 1)), pad: fc.boolean() }), { minLength: 0, maxLength: 5 }),
    length: fc.oneof(fc.nat({ max: 200000 }), fc.constantFrom(0, 2 ** 40, Number.MAX_SAFE_INTEGER)),
    pieceLength: fc.constantFrom(1, 16384, 32768, 0, -1, 2 ** 27, 2 ** 27 + 1),
    metaVersion: fc.option(fc.constantFrom(1, 2, 3), { freq: 5 }),
  })
  .map(({ name, multi, files, length, pieceLength, metaVersion }) => {
    const infoExtra: Array<[string, BValue]> = metaVersion === null ? [] : [['meta version', metaVersion]];
    try {
      return torrentBytes(name, multi ? files : null, length, Math.max(1, pieceLength), [], infoExtra);
    } catch {
      return Buffer.from('de');
    }
  });

/** BEP 52 file trees: nested names, file entries with and without roots, siblings beside "". */
const fileTreeArb: fc.Arbitrary<BValue> = fc.letrec<{ node: BValue }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 4 },
    fc.record({ length: fc.oneof(fc.nat({ max: 70000 }), fc.constantFrom(0, -1, 2 ** 53 - 1)), root: fc.option(fc.uint8Array({ minLength: 31, maxLength: 33 })) }).map(({ length, root }) => {
      const e = new Map<string, BValue>([['length', length]]);
      if (root !== null) e.set('pieces root', Buffer.from(root));
      return new Map<string, BValue>([['', e]]);
    }),
    fc.array(fc.tuple(fc.oneof(fc.constantFrom(...hostileNames), fc.constantFrom('a', 'b', '')), tie('node')), { maxLength: 4 }).map((kv) => new Map<string, BValue>(kv.map(([k, v]) => [Buffer.from(k).toString('latin1'), v]))),
  ),
})).node;

const v2TorrentArb: fc.Arbitrary<Buffer> = fc
  .record({ tree: fileTreeArb, pieceLength: fc.constantFrom(16384, 32768, 49152, 8192), hybrid: fc.boolean(), layers: fc.array(fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 96 })), { maxLength: 3 }) })
  .map(({ tree, pieceLength, hybrid, layers }) => {
    const info = new Map<string, BValue>([['file tree', tree], ['meta version', 2], ['name', Buffer.from('v2')], ['piece length', pieceLength]]);
    if (hybrid) {
      info.set('length', 5);
      info.set('pieces', sha1('x'));
    }
    const pl = new Map<string, BValue>(layers.map(([k, v]) => [Buffer.from(k).toString('latin1'), Buffer.from(v)]));
    return encode(new Map<string, BValue>([['info', info], ['piece layers', pl]]));
  });

function metainfoRun(input: Buffer): void {
  for (const strict of [false, true]) {
    let t;
    try {
      t = parseTorrent(input, { strict, onWarning: () => {} });
    } catch (e) {
      if (e instanceof MetainfoError) continue;
      throw e;
    }
    // what was accepted is safe to use: paths, hashes, piece arithmetic, a magnet of it
    for (const f of t.files) for (const c of f.path) check(componentProblem(c) === null, `unsafe path component ${JSON.stringify(c)} accepted`);
    check(componentProblem(t.name) === null, `unsafe name ${JSON.stringify(t.name)} accepted`);
    // every file written has a path of its own, whatever the case (sanitize.ts resolveDuplicates)
    const seen = new Set<string>();
    for (const f of t.files) {
      if (f.pad) continue;
      const k = f.path.join('/').replace(/[A-Z]/g, (c) => c.toLowerCase());
      check(!seen.has(k), `two files share the path ${JSON.stringify(k)}`);
      seen.add(k);
    }
    if (strict) check(t.rawName === undefined && t.files.every((f) => f.rawPath === undefined), 'strict mapped a name');
    check(t.pieceHashes.length === (t.version === 2 ? 0 : t.pieceCount * 20), 'piece hashes do not match the piece count');
    const v2Hash = createHash('sha256').update(t.infoRaw).digest();
    check(t.infoHash.equals(t.version === 2 ? v2Hash.subarray(0, 20) : sha1(t.infoRaw)), 'info hash is not the SHA-1 (v2: truncated SHA-256) of the raw info bytes');
    if (t.version !== 1) {
      check(t.infoHashV2!.equals(v2Hash), 'infoHashV2 is not the SHA-256 of the raw info bytes');
      let end = 0;
      for (const f of t.files) {
        check(f.offset >= end, 'files overlap');
        end = f.offset + f.length;
        if (!f.pad && f.length > 0) check(f.offset % t.pieceLength === 0 && f.piecesRoot?.length === 32, 'a v2 file is not on a piece boundary or has no root');
      }
    }
    const m = parseMagnet(magnetFromTorrent(t));
    check(m.infoHashHex === t.infoHashHex, 'the magnet of a torrent names another info hash');
    // a .torrent rebuilt from the metadata (fetch-metadata) hashes the same
    const again = parseTorrent(torrentFileFromMetadata(t.infoRaw, { trackers: m.trackers, webSeeds: m.webSeeds }), { allowMissingLayers: true });
    check(again.infoHashHex === t.infoHashHex, 'a torrent rebuilt from its metadata hashes differently');
  }
}

const metainfoTarget: FuzzTarget = {
  name: 'metainfo',
  summary: '.torrent parsing and validation (lenient and --strict), magnet and metadata round trips',
  files: ['src/metainfo/torrent.js', 'src/metainfo/sanitize.js', 'src/metainfo/v2.js', 'src/metainfo/from-metadata.js'],
  seeds: () => ({ 'single.torrent': smallTorrent(false), 'multi.torrent': smallTorrent(true) }),
  inputs: (corpus) => mix(corpus, fc.oneof(torrentArb, v2TorrentArb), 2048),
  run: metainfoRun,
  expected: (e) => e instanceof MetainfoError,
};

// ---------------------------------------------------------------- extension payloads (also inside wire frames)

const metadataMsgArb: fc.Arbitrary<Buffer> = fc
  .tuple(
    dictArb({
      msg_type: fc.oneof(fc.constantFrom(0, 1, 2, 3, -1, 256), fc.integer()),
      piece: fc.oneof(fc.nat({ max: 600 }), fc.constantFrom<BValue>(-1, 2 ** 31, 2n ** 53n)),
      total_size: fc.oneof(fc.nat({ max: 1 << 24 }), fc.constantFrom<BValue>(0, -5, 2n ** 53n, Number.MAX_SAFE_INTEGER)),
    }),
    fc.uint8Array({ maxLength: 64 }),
  )
  .map(([d, tail]) => Buffer.concat([encode(d), Buffer.from(tail)]));

const compactArb = (size: number): fc.Arbitrary<Buffer> =>
  fc.oneof(
    fc.array(fc.uint8Array({ minLength: size, maxLength: size }), { maxLength: 60 }).map((a) => Buffer.concat(a.map((u) => Buffer.from(u)))),
    fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)),
  );

const pexMsgArb: fc.Arbitrary<Buffer> = dictArb({
  added: compactArb(6),
  'added.f': fc.uint8Array({ maxLength: 60 }).map((u) => Buffer.from(u)),
  added6: compactArb(18),
  'added6.f': fc.uint8Array({ maxLength: 10 }).map((u) => Buffer.from(u)),
  dropped: compactArb(6),
  dropped6: compactArb(18),
}).map((d) => encode(d));

const extHandshakeArb: fc.Arbitrary<Buffer> = dictArb({
  m: fc.oneof(
    dictArb({ ut_metadata: fc.oneof(fc.constantFrom(0, 1, 2, 3, 255, 256, -1), fc.integer()), ut_pex: fc.constantFrom(0, 1, 2, 3, 255, 256), lt_donthave: fc.constant(7) }),
    bvalueArb(undefined, 2),
  ),
  metadata_size: fc.oneof(fc.nat({ max: 1 << 24 }), fc.constantFrom<BValue>(0, -1, 8 * 1024 * 1024 + 1, 2n ** 53n), bvalueArb(undefined, 1)),
  v: fc.string({ maxLength: 20 }).map((s) => Buffer.from(s)),
  p: fc.nat({ max: 70000 }),
  reqq: fc.integer(),
  yourip: fc.uint8Array({ maxLength: 18 }).map((u) => Buffer.from(u)),
}).map((d) => encode(d));

// ---------------------------------------------------------------- wire frames

const INFO_HASH = sha1('fuzz torrent');
const PEER_ID = Buffer.from('-FZ0001-abcdefghijkl');
const OUR_ID = Buffer.from('-TK0100-ourselves000');

function wireLimits(h: number): WireLimits {
  switch ((h >>> 3) % 4) {
    case 0:
      return {}; // a magnet: nothing known yet
    case 1:
      return { pieceCount: 10, pieceSize: (i) => (i === 9 ? 1000 : 32768) };
    case 2:
      return { pieceCount: 1, pieceSize: () => 16384, maxBlock: 16384, maxExtended: 100 };
    default:
      return { pieceCount: 100000, pieceSize: () => 1 << 20, maxBlock: 1 << 17 };
  }
}

/** BEP 52 hash ranges: mostly valid, with the edges of every limit. */
const hashRangeArb = fc.record({
  root: fc.constantFrom(Buffer.alloc(32, 1), Buffer.alloc(32, 0xff)),
  base: fc.oneof(fc.nat({ max: 12 }), fc.constantFrom(63, 64, 2 ** 32 - 1)),
  index: fc.oneof(fc.nat({ max: 8 }).map((k) => k * 512), fc.nat({ max: 2000 }), fc.constantFrom(2 ** 32 - 512, 2 ** 32 - 1)),
  length: fc.oneof(fc.nat({ max: 10 }).map((k) => 2 ** k), fc.constantFrom(0, 3, 1024, 8192, 16384, 2 ** 31)),
  proofLayers: fc.oneof(fc.nat({ max: 12 }), fc.constantFrom(63, 64, 2 ** 32 - 1)),
});

const messageArb: fc.Arbitrary<WireMessage> = (() => {
  const u32 = fc.oneof(fc.nat({ max: 20 }), fc.constantFrom(9, 10, 16383, 16384, 32767, 32768, 2 ** 31, 2 ** 32 - 1));
  const len = fc.oneof(fc.constantFrom(0, 1, 1000, 16384, 16385), fc.nat({ max: 20000 }));
  return fc.oneof(
    fc.constantFrom<WireMessage>({ type: 'keep-alive' }, { type: 'choke' }, { type: 'unchoke' }, { type: 'interested' }, { type: 'not-interested' }, { type: 'have-all' }, { type: 'have-none' }),
    fc.record({ type: fc.constantFrom('have' as const, 'suggest' as const, 'allowed-fast' as const), index: u32 }),
    fc.record({ type: fc.constant('bitfield' as const), bits: fc.uint8Array({ maxLength: 20 }).map((u) => Buffer.from(u)) }),
    fc.record({ type: fc.constantFrom('request' as const, 'cancel' as const, 'reject' as const), index: u32, begin: u32, length: len }),
    fc.record({ type: fc.constant('piece' as const), index: u32, begin: u32, block: fc.nat({ max: 17000 }).map((n) => Buffer.alloc(n, 0x61)) }),
    fc.record({ type: fc.constant('port' as const), port: fc.nat({ max: 65535 }) }),
    fc.record({ type: fc.constant('extended' as const), id: fc.constantFrom(0, 1, 2, 3, 255), payload: extPayloadArb() }),
    hashRangeArb.map((r) => ({ type: 'hash-request' as const, ...r })),
    hashRangeArb.map((r) => ({ type: 'hash-reject' as const, ...r })),
    // mostly the count of hashes the request implies, sometimes one off
    fc.tuple(hashRangeArb, fc.constantFrom(0, 0, 0, 1, -1)).map(([r, off]) => ({ type: 'hashes' as const, ...r, hashes: Buffer.alloc(32 * Math.max(0, (r.length >= 1 && r.length <= 512 ? r.length + Math.min(70, unclesFor(r.length, r.proofLayers)) : 3) + off), 0x5a) })),
  );
})();


function extPayloadArb(): fc.Arbitrary<Buffer> {
  return fc.oneof(
    extHandshakeArb,
    metadataMsgArb,
    pexMsgArb,
    bencodeArb(undefined, 3),
  );
}

const frameBytes = (m: WireMessage): Buffer => {
  const b = encodeMessage(m);
  return Array.isArray(b) ? Buffer.concat(b) : Buffer.from(b);
};

const handshakeBytes = (reserved = reservedBits({ extended: true, fast: true, dht: true })): Buffer => encodeHandshake({ reserved, infoHash: INFO_HASH, peerId: PEER_ID });

const wireStreamArb: fc.Arbitrary<Buffer> = fc
  .tuple(fc.boolean(), fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.array(messageArb, { maxLength: 8 }))
  .map(([hs, reserved, ms]) => Buffer.concat([...(hs ? [handshakeBytes(Buffer.from(reserved))] : []), ...ms.map(frameBytes)]));

function summary(m: WireMessage): string {
  switch (m.type) {
    case 'bitfield':
      return `bitfield:${m.bits.toString('hex')}`;
    case 'piece':
      return `piece:${m.index}:${m.begin}:${sha1(m.block).toString('hex')}`;
    case 'extended':
      return `extended:${m.id}:${m.payload.toString('hex')}`;
    case 'hash-request':
    case 'hash-reject':
    case 'hashes':
      return JSON.stringify(describeMessage(m)) + ('hashes' in m ? sha1(m.hashes).toString('hex') : '');
    default:
      return JSON.stringify(m);
  }
}

function wireRun(input: Buffer): void {
  const h = hash32(input);
  const expectHandshake = input[0] === 0x13;
  const feed = (parts: Buffer[]): { out: string[]; err: string | null } => {
    const d = new FrameDecoder(wireLimits(h), expectHandshake);
    const out: string[] = [];
    try {
      for (const c of parts) {
        d.write(c, (hs) => out.push(JSON.stringify(describeHandshake(hs))), (m) => {
          JSON.stringify(describeMessage(m, m.type === 'extended' ? ['', 'ut_metadata', 'ut_pex'][m.id] : undefined));
          out.push(summary(m));
        });
      }
    } catch (e) {
      if (!(e instanceof WireViolation)) throw e;
      return { out, err: e.message };
    }
    return { out, err: null };
  };
  const a = feed(chunks(input, h));
  const b = feed([input]);
  check(a.out.join('\n') === b.out.join('\n'), 'chunking changed the messages');
  // (a frame too long is refused as soon as its length is read, before its id may have come:
  // the message may name a more general limit, but the frame is refused either way)
  check((a.err === null) === (b.err === null), `chunking changed the outcome: ${a.err ?? 'ok'} vs ${b.err ?? 'ok'}`);
}

const wireTarget: FuzzTarget = {
  name: 'wire',
  summary: 'peer wire: handshake and length-prefixed frames (BEP 3, 5, 6, 10, 52) in any chunking, under torrent limits',
  files: ['src/wire/frame-decoder.js', 'src/wire/describe.js'],
  seeds: () => ({
    'session.bin': Buffer.concat([
      handshakeBytes(),
      ...(
        [
          { type: 'bitfield', bits: Buffer.from([0xff, 0x80]) },
          { type: 'have', index: 3 },
          { type: 'unchoke' },
          { type: 'interested' },
          { type: 'request', index: 1, begin: 16384, length: 16384 },
          { type: 'piece', index: 1, begin: 0, block: Buffer.alloc(64, 7) },
          { type: 'cancel', index: 1, begin: 16384, length: 16384 },
          { type: 'port', port: 6881 },
          { type: 'keep-alive' },
          { type: 'have-all' },
          { type: 'reject', index: 2, begin: 0, length: 16384 },
          { type: 'allowed-fast', index: 4 },
          { type: 'extended', id: 0, payload: encode({ m: { ut_metadata: 1, ut_pex: 2 }, metadata_size: 1234, v: 'fuzz' }) },
          { type: 'extended', id: 1, payload: encodeMetadataMessage({ type: 'request', piece: 0 }) },
          { type: 'hash-request', root: Buffer.alloc(32, 3), base: 0, index: 8, length: 4, proofLayers: 3 },
          { type: 'hashes', root: Buffer.alloc(32, 3), base: 0, index: 8, length: 4, proofLayers: 3, hashes: Buffer.alloc(6 * 32, 4) },
          { type: 'hash-reject', root: Buffer.alloc(32, 3), base: 2, index: 0, length: 512, proofLayers: 9 },
        ] satisfies WireMessage[]
      ).map(frameBytes),
    ]),
    'frames-only.bin': Buffer.concat([frameBytes({ type: 'choke' }), frameBytes({ type: 'have', index: 9 }), frameBytes({ type: 'piece', index: 9, begin: 0, block: Buffer.alloc(1000, 1) })]),
  }),
  inputs: (corpus) => mix(corpus, wireStreamArb, 2048),
  run: wireRun,
  expected: (e) => e instanceof WireViolation,
};

// ---------------------------------------------------------------- ut_metadata / ut_pex

/** A connection for an extension's onMessage (its socket drops what is written). */
function fakeConnection(): PeerConnection {
  return new PeerConnection(new FakePeerSocket().asSocket(), { peerId: OUR_ID, infoHash: INFO_HASH, outgoing: false, accept: () => ({}) });
}

function utMetadataRun(input: Buffer): void {
  const h = hash32(input);
  const max = [16384 * 10, 8 * 1024 * 1024, Number.MAX_SAFE_INTEGER][h % 3]!;
  try {
    const m = decodeMetadataMessage(input, max);
    if (m.type === 'data') check(m.data.length <= input.length, 'data larger than the message');
  } catch (e) {
    if (!(e instanceof WireViolation)) throw e;
  }
  // as the extension takes it: requests served from our metadata, data and rejects handed on
  const c = fakeConnection();
  const info = smallTorrent(true);
  const ext = new UtMetadata({ info: () => (h & 1 ? info : null), onData: () => {}, onReject: () => {}, maxSize: max });
  try {
    ext.onMessage(c, input);
  } catch (e) {
    if (!(e instanceof WireViolation)) throw e;
  } finally {
    c.close();
  }
}

const utMetadataTarget: FuzzTarget = {
  name: 'ut-metadata',
  summary: 'BEP 9 ut_metadata messages (request, data, reject, unknown)',
  files: ['src/wire/ut-metadata.js'],
  seeds: () => ({
    'request.bin': encodeMetadataMessage({ type: 'request', piece: 0 }),
    'data.bin': encodeMetadataMessage({ type: 'data', piece: 1, totalSize: 20000, data: Buffer.alloc(3616, 0x64) }),
    'reject.bin': encodeMetadataMessage({ type: 'reject', piece: 2 }),
  }),
  inputs: (corpus) => mix(corpus, metadataMsgArb, 1024),
  run: utMetadataRun,
  expected: (e) => e instanceof WireViolation,
};

function utPexRun(input: Buffer): void {
  try {
    const m = decodePex(input);
    for (const p of m.added) check(normalizeIp(p.ip) !== null && p.port > 0 && p.port < 65536, `bad peer ${p.ip}:${p.port} from PEX`);
    // what we decode we can send again
    decodePex(encodePex(m));
  } catch (e) {
    if (!(e instanceof WireViolation)) throw e;
  }
  // and through the extension, as a connection gets it (first message: long lists tolerated)
  const c = fakeConnection();
  const pex = new UtPex({ onPeers: () => {}, minIntervalMs: 0 });
  try {
    pex.onMessage(c, input);
    pex.onMessage(c, input);
  } catch (e) {
    if (!(e instanceof WireViolation)) throw e;
  } finally {
    c.close();
  }
}

const utPexTarget: FuzzTarget = {
  name: 'ut-pex',
  summary: 'BEP 11 ut_pex messages: compact v4/v6 lists and flags, as decoded and as the extension takes them',
  files: ['src/wire/ut-pex.js', 'src/peers/compact.js'],
  seeds: () => ({
    'added-dropped.bin': encodePex({ added: [{ ip: '203.0.113.5', port: 6881, family: 4, flags: 2 }, { ip: '2001:db8::1', port: 51413, family: 6, flags: 0x10 }], dropped: [{ ip: '198.51.100.1', port: 1, family: 4 }] }),
    'empty.bin': Buffer.from('de'),
  }),
  inputs: (corpus) => mix(corpus, pexMsgArb, 1024),
  run: utPexRun,
  expected: (e) => e instanceof WireViolation,
};

// ---------------------------------------------------------------- a peer connection: extended handshake and extension dispatch

const extSessionArb: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.boolean(),
    extHandshakeArb,
    fc.array(
      fc.oneof(
        fc.tuple(fc.constantFrom(1, 2, 0, 3, 200), fc.oneof(metadataMsgArb, pexMsgArb, extHandshakeArb)).map(([id, payload]) => ({ type: 'extended' as const, id, payload })),
        messageArb,
      ),
      { maxLength: 5 },
    ),
  )
  .map(([fast, hs, ms]) => Buffer.concat([handshakeBytes(reservedBits({ extended: true, fast, dht: true })), frameBytes({ type: 'extended', id: 0, payload: hs }), ...ms.map(frameBytes)]));

function peerConnectionRun(input: Buffer): void {
  const h = hash32(input);
  const reads = { onChunk: null as ((chunk: Buffer) => void) | null };
  const c = new PeerConnection(new FakePeerSocket().asSocket(), {
    reads,
    peerId: OUR_ID,
    outgoing: false,
    accept: () => wireLimits(h),
    dhtPort: 6881,
    extendedHandshake: { v: Buffer.from('torrent-tools fuzz') },
  });
  const info = smallTorrent(false);
  c.use(new UtMetadata({ info: () => (h & 1 ? info : null), onPeer: () => {}, onData: () => {}, onReject: () => {} }));
  c.use(new UtPex({ onPeers: () => {}, minIntervalMs: 0 }));
  c.on('message', (m) => void JSON.stringify(describeMessage(m, m.type === 'extended' ? c.extensionName(m.id, 'in') : undefined)));
  try {
    for (const chunk of chunks(input, h)) {
      if (c.closed) break;
      reads.onChunk!(chunk);
    }
    // the connection turns every failure into a close reason: 'local' is a bug on our side
    const r = c.closeReason;
    if (r !== null && r.kind === 'local') throw new PropertyFailure(`connection closed on an internal error: ${r.detail}`);
  } finally {
    c.close();
  }
}

const peerConnectionTarget: FuzzTarget = {
  name: 'ext-handshake',
  summary: 'a peer connection fed a peer\'s bytes: handshake, BEP 10 extended handshake, ut_metadata/ut_pex dispatch',
  files: ['src/wire/peer-connection.js', 'src/wire/ut-metadata.js', 'src/wire/ut-pex.js'],
  seeds: () => ({
    'extended-session.bin': Buffer.concat([
      handshakeBytes(),
      frameBytes({ type: 'extended', id: 0, payload: encode({ m: { ut_metadata: 3, ut_pex: 4 }, metadata_size: 100, v: 'peer 1.0', p: 6881, reqq: 250 }) }),
      frameBytes({ type: 'extended', id: 1, payload: encodeMetadataMessage({ type: 'request', piece: 0 }) }),
      frameBytes({ type: 'extended', id: 1, payload: encodeMetadataMessage({ type: 'data', piece: 0, totalSize: 100, data: Buffer.alloc(100, 0x64) }) }),
      frameBytes({ type: 'extended', id: 2, payload: encodePex({ added: [{ ip: '203.0.113.5', port: 6881, family: 4, flags: 2 }], dropped: [] }) }),
      frameBytes({ type: 'have-all' }),
    ]),
  }),
  inputs: (corpus) => mix(corpus, extSessionArb, 2048),
  run: peerConnectionRun,
  expected: () => false,
};

// ---------------------------------------------------------------- MSE

/** Deterministic "randomness" for a replayable session: SHA-256 in counter mode. */
export function replayRandom(label: string): (n: number) => Buffer {
  let counter = 0;
  let pool = Buffer.alloc(0);
  return (n) => {
    while (pool.length < n) pool = Buffer.concat([pool, createHash('sha256').update(`${label}:${counter++}`).digest()]);
    const out = pool.subarray(0, n);
    pool = pool.subarray(n);
    return Buffer.from(out);
  };
}

const MSE_SKEY = INFO_HASH;
const MSE_OTHER_SKEY = sha1('another torrent');

interface MseKeys {
  /** our (the fuzzing peer's) public key */
  ours: Buffer;
  /** the shared secret with the decoder under test */
  secret: Buffer;
}
let mseKeys: { responder: MseKeys; initiator: MseKeys } | null = null;
/** The fuzzing peer's keys against the decoder's replayed ones (its first random(20) is its secret exponent). */
function keysFor(): { responder: MseKeys; initiator: MseKeys } {
  if (mseKeys) return mseKeys;
  const peer = new KeyPair(() => sha1('fuzzing peer'));
  const theirs = (label: string): Buffer => new KeyPair(replayRandom(label)).publicKey;
  mseKeys = {
    responder: { ours: peer.publicKey, secret: peer.secret(theirs('mse-responder')) },
    initiator: { ours: peer.publicKey, secret: peer.secret(theirs('mse-initiator')) },
  };
  return mseKeys;
}

const xor20 = (a: Buffer, b: Buffer): Buffer => Buffer.from(a.map((x, i) => x ^ b[i]!));
const sha1Of = (...parts: Array<Buffer | string>): Buffer => {
  const hh = createHash('sha1');
  for (const p of parts) hh.update(p);
  return hh.digest();
};

interface InitiatorSide {
  padA: number;
  otherTorrent: boolean;
  vc: Buffer;
  provide: number;
  padC: number;
  ia: Buffer;
  after: Buffer;
  badSync: boolean;
}

/** What an initiator sends a responder (the decoder under test), built as the spec says. */
function toResponder(s: InitiatorSide): Buffer {
  const { ours, secret } = keysFor().responder;
  const skey = s.otherTorrent ? MSE_OTHER_SKEY : MSE_SKEY;
  const enc = new Rc4(sha1Of('keyA', secret, skey));
  const head = Buffer.alloc(14);
  s.vc.copy(head, 0, 0, 8);
  head.writeUInt32BE(s.provide >>> 0, 8);
  head.writeUInt16BE(s.padC & 0xffff, 12);
  const iaLen = Buffer.alloc(2);
  iaLen.writeUInt16BE(s.ia.length & 0xffff);
  const sync = s.badSync ? sha1Of('req1', Buffer.alloc(96)) : sha1Of('req1', secret);
  return Buffer.concat([ours, Buffer.alloc(s.padA, 0x55), sync, xor20(sha1Of('req2', skey), sha1Of('req3', secret)), enc.update(Buffer.concat([head, Buffer.alloc(s.padC & 0x3ff), iaLen, s.ia, s.after]))]);
}

interface ResponderSide {
  padB: number;
  vc: Buffer;
  select: number;
  padD: number;
  after: Buffer;
}

/** What a responder sends an initiator (the decoder under test). */
function toInitiator(s: ResponderSide): Buffer {
  const { ours, secret } = keysFor().initiator;
  const enc = new Rc4(sha1Of('keyB', secret, MSE_SKEY));
  const head = Buffer.alloc(14);
  s.vc.copy(head, 0, 0, 8);
  head.writeUInt32BE(s.select >>> 0, 8);
  head.writeUInt16BE(s.padD & 0xffff, 12);
  return Buffer.concat([ours, Buffer.alloc(s.padB, 0x66), enc.update(Buffer.concat([head, Buffer.alloc(s.padD & 0x3ff), s.after]))]);
}

const vcArb = fc.oneof({ weight: 6, arbitrary: fc.constant(Buffer.alloc(8)) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((u) => Buffer.from(u)) });
const pad = fc.oneof(fc.nat({ max: 40 }), fc.constantFrom(0, 511, 512, 513, 600, 1000, 65535));
const bt = Buffer.concat([handshakeBytes(), frameBytes({ type: 'interested' })]);

const mseArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc
    .record({ flags: fc.nat({ max: 3 }), padA: pad, otherTorrent: fc.boolean(), vc: vcArb, provide: fc.oneof(fc.constantFrom(0, 1, 2, 3), fc.nat()), padC: pad, ia: fc.oneof(fc.constant(bt), fc.uint8Array({ maxLength: 80 }).map((u) => Buffer.from(u))), after: fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)), badSync: fc.boolean() })
    .map((s) => Buffer.concat([Buffer.from([(s.flags & 2) | 0]), toResponder({ ...s, badSync: s.badSync && s.padA % 3 === 0 })])),
  fc
    .record({ flags: fc.nat({ max: 3 }), padB: pad, vc: vcArb, select: fc.oneof(fc.constantFrom(0, 1, 2, 3), fc.nat()), padD: pad, after: fc.oneof(fc.constant(bt), fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u))) })
    .map((s) => Buffer.concat([Buffer.from([1 | ((s.flags & 3) << 2)]), toInitiator(s)])),
);

/**
 * Input: a flags byte, then the other side's bytes. Flags bit 0: 0 = we are the responder,
 * 1 = the initiator; bit 1 (responder): refuse plaintext; bits 2-3 (initiator): crypto_provide
 * (0 = both). The decoder's own secrets come from replayRandom, so that a saved input replays.
 */
function mseRun(input: Buffer): void {
  if (input.length === 0) return;
  const flags = input[0]!;
  const peer = input.subarray(1);
  const initiator = (flags & 1) === 1;
  const h = hash32(input);
  const m = initiator
    ? new MseInitiator({ infoHash: MSE_SKEY, send: () => {}, provide: (flags >> 2) & 3 || CRYPTO_PLAINTEXT | CRYPTO_RC4, random: replayRandom('mse-initiator') })
    : new MseResponder({ skeys: [MSE_OTHER_SKEY, MSE_SKEY], send: () => {}, allowPlaintext: (flags & 2) === 0, random: replayRandom('mse-responder') });
  try {
    for (const c of chunks(peer, h)) {
      const r = m.push(c);
      if (r !== null) {
        check(r.infoHash.equals(MSE_SKEY) || (!initiator && r.infoHash.equals(MSE_OTHER_SKEY)), 'handshake finished for a torrent that was not offered');
        check((r.encrypt === null) === (r.decrypt === null), 'one direction encrypted, the other not');
        break;
      }
    }
  } catch (e) {
    if (!(e instanceof WireViolation)) throw e;
  }
}

const mseTarget: FuzzTarget = {
  name: 'mse',
  summary: 'MSE/PE handshake, both roles, against a peer whose keys are known (so inputs get past the DH)',
  files: ['src/wire/mse.js'],
  seeds: () => ({
    'responder-rc4.bin': Buffer.concat([Buffer.from([0]), toResponder({ padA: 10, otherTorrent: false, vc: Buffer.alloc(8), provide: CRYPTO_RC4, padC: 0, ia: bt, after: Buffer.alloc(0), badSync: false })]),
    'responder-plain.bin': Buffer.concat([Buffer.from([0]), toResponder({ padA: 0, otherTorrent: true, vc: Buffer.alloc(8), provide: CRYPTO_PLAINTEXT | CRYPTO_RC4, padC: 7, ia: Buffer.alloc(0), after: bt, badSync: false })]),
    'initiator.bin': Buffer.concat([Buffer.from([1]), toInitiator({ padB: 20, vc: Buffer.alloc(8), select: CRYPTO_RC4, padD: 3, after: bt })]),
  }),
  inputs: (corpus) => mix(corpus, mseArb, 1400),
  run: mseRun,
  expected: (e) => e instanceof WireViolation,
};

// ---------------------------------------------------------------- trackers

const ANNOUNCE: AnnounceParams = { infoHash: INFO_HASH, peerId: OUR_ID, port: 6881, uploaded: 0, downloaded: 0, left: 1000, event: 'started', numwant: 50, key: 0x1234 };

/**
 * An HTTP reply script: `<status> <encoding>\n` then, for a redirect, `<location>\n` and the
 * next reply; otherwise the body (sent as it is: a gzip body is gzip bytes). Anything that does
 * not start so is a 200 body.
 */
export function httpScript(input: Buffer): FakeHttpReply[] {
  const out: FakeHttpReply[] = [];
  let rest = input;
  for (let n = 0; n < 8; n++) {
    const nl = rest.indexOf(0x0a);
    const m = nl < 0 ? null : /^(\d{3})(?: (\S+))?$/.exec(rest.subarray(0, nl).toString('latin1'));
    if (m === null) {
      out.push({ status: 200, headers: {}, body: rest });
      break;
    }
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    if (m[2] !== undefined && m[2] !== '-') headers['content-encoding'] = m[2];
    rest = rest.subarray(nl + 1);
    if (status >= 300 && status < 400) {
      const nl2 = rest.indexOf(0x0a);
      headers['location'] = (nl2 < 0 ? rest : rest.subarray(0, nl2)).toString('latin1');
      out.push({ status, headers, body: Buffer.alloc(0) });
      if (nl2 < 0) break;
      rest = rest.subarray(nl2 + 1);
      continue;
    }
    out.push({ status, headers, body: rest });
    break;
  }
  return out;
}

const peerDictArb = dictArb({ ip: fc.constantFrom('1.2.3.4', '::1', '::ffff:1.2.3.4', 'host.example', '', '999.1.1.1', 'fe80::1%eth0').map((s) => Buffer.from(s)), port: fc.oneof(fc.nat({ max: 70000 }), fc.constant(-1)), 'peer id': fc.uint8Array({ minLength: 20, maxLength: 20 }).map((u) => Buffer.from(u)) });
const announceBodyArb: fc.Arbitrary<Buffer> = dictArb({
  interval: fc.oneof(fc.nat(), fc.constantFrom<BValue>(0, -1, 2 ** 32, 2n ** 53n)),
  'min interval': fc.oneof(fc.nat(), fc.constantFrom<BValue>(0, -1, 2n ** 53n)),
  complete: fc.integer(),
  incomplete: fc.integer(),
  peers: fc.oneof(compactArb(6), fc.array(peerDictArb, { maxLength: 4 })),
  peers6: compactArb(18),
  'failure reason': fc.string({ maxLength: 400 }).map((s) => Buffer.from(s)),
  'warning message': fc.string({ maxLength: 400 }).map((s) => Buffer.from(s)),
  'tracker id': fc.uint8Array({ maxLength: 10 }).map((u) => Buffer.from(u)),
  files: fc.constant(new Map<string, BValue>([[INFO_HASH.toString('latin1'), new Map<string, BValue>([['complete', 5], ['incomplete', 2], ['downloaded', 9]])]])),
}).map((d) => encode(d));

const httpArb: fc.Arbitrary<Buffer> = fc
  .tuple(fc.constantFrom('200 -', '200 gzip', '200 deflate', '302 -', '404 -', '500 -', '200 br'), announceBodyArb)
  .map(([line, body]) => {
    if (line.startsWith('302')) return Buffer.concat([Buffer.from('302 -\nhttp://127.0.0.1:6969/announce?x=1\n200 -\n'), body]);
    const enc = line.split(' ')[1];
    return Buffer.concat([Buffer.from(line + '\n'), enc === 'gzip' ? gzipSync(body) : enc === 'deflate' ? deflateSync(body) : body]);
  });

/** A run given up on (its reply handler threw, so its request never ends) must not touch the next run's replies. */
let httpRun = 0;

async function trackerHttpRun(input: Buffer): Promise<void> {
  installFakeHttp();
  const me = ++httpRun;
  const script = httpScript(input);
  // the body parser on its own, then announce and scrape through the HTTP client
  try {
    parseAnnounceBody(input, 'http://127.0.0.1:6969/announce');
  } catch (e) {
    if (!(e instanceof TrackerError)) throw e;
  }
  for (const scrape of [false, true]) {
    if (me !== httpRun) return;
    setHttpReplies(script);
    try {
      if (scrape) await httpScrape('http://127.0.0.1:6969/announce', INFO_HASH, { timeoutMs: 2000 });
      else {
        const r = await httpAnnounce('http://127.0.0.1:6969/announce', ANNOUNCE, { timeoutMs: 2000 });
        for (const p of r.peers) check(normalizeIp(p.ip) === p.ip && p.port >= 1 && p.port <= 65535, `tracker peer ${p.ip}:${p.port} is not an address and port`);
        JSON.stringify(r.peers.map(peerLine));
      }
    } catch (e) {
      if (!(e instanceof TrackerError)) throw e;
    }
  }
}

const trackerHttpTarget: FuzzTarget = {
  name: 'tracker-http',
  summary: 'HTTP tracker replies: status, redirects, gzip/deflate bodies, announce and scrape bencode',
  files: ['src/tracker/reply.js', 'src/tracker/http.js'],
  seeds: () => ({
    'compact.bin': Buffer.concat([Buffer.from('200 -\n'), encode({ interval: 1800, complete: 3, incomplete: 1, peers: Buffer.from([203, 0, 113, 5, 0x1a, 0xe1, 198, 51, 100, 7, 0xc8, 0xd5]) })]),
    'dict-peers-gzip.bin': Buffer.concat([Buffer.from('200 gzip\n'), gzipSync(encode({ interval: 60, 'min interval': 30, peers: [{ ip: '203.0.113.9', port: 6881, 'peer id': Buffer.alloc(20, 0x41) }, { ip: 'host.example', port: 1 }], peers6: Buffer.concat([Buffer.alloc(15), Buffer.from([1, 0x1a, 0xe1])]) }))]),
    'redirect.bin': Buffer.concat([Buffer.from('301 -\n/other/announce\n200 -\n'), encode({ interval: 900, peers: Buffer.alloc(0) })]),
    'scrape.bin': Buffer.concat([Buffer.from('200 -\n'), encode(new Map<string, BValue>([['files', new Map<string, BValue>([[INFO_HASH.toString('latin1'), new Map<string, BValue>([['complete', 5], ['downloaded', 50], ['incomplete', 2]])]])]]))]),
    'failure.bin': Buffer.concat([Buffer.from('200 -\n'), encode({ 'failure reason': 'unregistered torrent' })]),
  }),
  inputs: (corpus) => mix(corpus, httpArb, 2048),
  run: trackerHttpRun,
  expected: (e) => e instanceof TrackerError,
  async: true,
};

// ---------------------------------------------------------------- web seeds

/** The web seed's file, as long as a reply wants it: byte i of it. */
const wsByte = (i: number): number => (i * 7 + Math.floor(i / 251) * 13 + 1) & 0xff;
function wsFile(from: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = wsByte(from + i);
  return b;
}
const WS_URL = 'http://ws.example/pub/file.bin';
/** a reply's body from the file at most this long (the script says how long) */
const WS_MAX_BODY = 1 << 18;

interface WsFetch {
  start: number;
  length: number;
  /** the sink says it is cancelled once it has had bytes */
  cancel: boolean;
}
interface WsScript {
  fetches: WsFetch[];
  /** all fetches started at once (else one after the other) */
  together: boolean;
  replies: FakeHttpReply[];
  /** every body is the file's bytes from where the reply says it starts: what is delivered must be the file's */
  honest: boolean;
}

/**
 * A web seed reply script (test/fuzz-corpus/README.md): an optional first line
 * `GET[&] <start>+<length>[!] ...` (the fetches; & = all at once, ! = cancelled after the first
 * bytes), then replies: `<status>\n`, `<name>: <value>\n` lines, then a body line, either
 * `*<from>+<n>[/<chunking>][!]` (n bytes of the file from `from`) or `=<n>[/<chunking>][!]`
 * followed by n literal bytes (! = the connection drops after them). `ERR` instead of a reply: the
 * connection is refused. A line that is none of these makes the rest of the input a 200's body.
 */
export function wsScript(input: Buffer): WsScript {
  let rest = input;
  const line = (): string | null => {
    const nl = rest.indexOf(0x0a);
    return nl < 0 ? null : rest.subarray(0, nl).toString('latin1');
  };
  const next = (): void => {
    rest = rest.subarray(rest.indexOf(0x0a) + 1);
  };
  const h = hash32(input);
  const fetches: WsFetch[] = [];
  let together = false;
  const first = line();
  const g = first === null ? null : /^GET(&?)((?: \d{1,9}\+\d{1,7}!?){1,6})$/.exec(first);
  if (g !== null) {
    together = g[1] === '&';
    for (const f of g[2]!.trim().split(' ')) {
      const m = /^(\d+)\+(\d+)(!?)$/.exec(f)!;
      fetches.push({ start: Number(m[1]), length: Math.max(1, Number(m[2])), cancel: m[3] === '!' });
    }
    next();
  } else fetches.push({ start: h % 1000, length: 1 + ((h >>> 10) % 2000), cancel: false });
  const replies: FakeHttpReply[] = [];
  let honest = true;
  while (rest.length > 0 && replies.length < 16) {
    const st = line();
    if (st === 'ERR') {
      next();
      replies.push({ status: 0, headers: {}, body: Buffer.alloc(0), fails: 'request' });
      continue;
    }
    const sm = st === null ? null : /^(\d{3})$/.exec(st);
    if (sm === null) {
      replies.push({ status: 200, headers: {}, body: rest, chunks: wsChunks(rest, h + replies.length) });
      honest = false;
      break;
    }
    next();
    const headers: Record<string, string> = {};
    let body: Buffer | null = null;
    let from = -1;
    let cut = h + replies.length;
    let cutOff = false;
    for (;;) {
      const l = line();
      const hm = l === null ? null : /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/.exec(l);
      if (hm !== null) {
        // as node's parser gives them: names in lower case, no CR in a value
        headers[hm[1]!.toLowerCase()] = hm[2]!.replace(/[\r\0]/g, '');
        next();
        continue;
      }
      const bm = l === null ? null : /^(?:\*(\d{1,9})\+|=)(\d{1,7})(?:\/(\d{1,10}))?(!?)$/.exec(l);
      if (bm !== null) {
        next();
        cutOff = bm[4] === '!';
        if (bm[3] !== undefined) cut = Number(bm[3]);
        const n = Math.min(Number(bm[2]), WS_MAX_BODY);
        if (bm[1] !== undefined) {
          from = Number(bm[1]);
          body = wsFile(from, n);
        } else {
          body = rest.subarray(0, n);
          rest = rest.subarray(body.length);
        }
      } else {
        body = rest;
        rest = Buffer.alloc(0);
      }
      break;
    }
    const status = Number(sm[1]);
    if (status === 200 || status === 206) {
      const cr = /^bytes (\d+)-/.exec(headers['content-range'] ?? '');
      const at = status === 200 ? 0 : cr === null ? -1 : Number(cr[1]);
      if (from < 0 || from !== at) honest = false;
    }
    replies.push({ status, headers, body, chunks: wsChunks(body, cut), ...(cutOff ? { fails: 'body' as const } : {}) });
  }
  return { fetches, together, replies, honest };
}

/** A body in the chunking `h` picks (past its first 8 KiB in 16 KiB pieces: a big body byte by byte is only slow). */
function wsChunks(body: Buffer, h: number): Buffer[] {
  const head = chunks(body.subarray(0, 8192), h >>> 0);
  for (let i = 8192; i < body.length; i += 16384) head.push(body.subarray(i, i + 16384));
  return head.filter((c) => c.length > 0);
}

/** A run given up on must not touch the next run's replies. */
let wsRun = 0;
let wsClient: RangeClient | null = null;

async function webseedRun(input: Buffer): Promise<void> {
  installFakeHttp();
  const me = ++wsRun;
  const script = wsScript(input);
  setHttpReplies(script.replies);
  const h = hash32(input);
  // a run given up on (it failed) leaves fetches behind: they must not take this run's replies
  wsClient?.destroy();
  const client = new RangeClient({ timeoutMs: 1500, maxRedirects: 1 + (h % 5) });
  wsClient = client;
  const failures: string[] = [];
  const one = async (f: WsFetch, i: number): Promise<void> => {
    const got: Buffer[] = [];
    let n = 0;
    let settled = false;
    let calls = 0;
    const sink = {
      onData: (b: Buffer): boolean => {
        if (settled) failures.push(`fetch ${i}: ${b.length} bytes after it settled`);
        got.push(Buffer.from(b));
        n += b.length;
        if (n > f.length) failures.push(`fetch ${i}: ${n} bytes delivered of ${f.length} asked`);
        // backpressure now and then, as the input picks
        return ((h >>> (calls++ % 24)) & 3) !== 0;
      },
      drained: (): Promise<void> => new Promise<void>((r) => setImmediate(r)),
      cancelled: (): boolean => f.cancel && n > 0,
    };
    try {
      await client.fetch(WS_URL, f.start, f.length, sink);
      settled = true;
      if (n !== f.length) failures.push(`fetch ${i}: resolved after ${n} of ${f.length} bytes`);
      else if (script.honest && !Buffer.concat(got).equals(wsFile(f.start, f.length))) failures.push(`fetch ${i}: the bytes delivered are not the file's ${f.start}+${f.length}`);
    } catch (e) {
      settled = true;
      if (!(e instanceof HttpRangeError)) throw e;
      if (/[\r\n]/.test(e.message)) failures.push(`fetch ${i}: a message of more than one line: ${JSON.stringify(e.message)}`);
      // the fake answers at once, and the sink drains at once: no wait is that long
      if (e.kind === 'timeout') failures.push(`fetch ${i}: timed out against a server that never stalls (${e.message})`);
    }
  };
  let bound: NodeJS.Timeout | undefined;
  try {
    const all = script.together
      ? Promise.all(script.fetches.map((f, i) => one(f, i)))
      : (async () => {
          for (const [i, f] of script.fetches.entries()) {
            if (me !== wsRun) return;
            await one(f, i);
          }
        })();
    await Promise.race([all, new Promise((_, reject) => (bound = setTimeout(() => reject(new PropertyFailure('a fetch neither resolved nor rejected within 2.5 s')), 2500)))]);
  } finally {
    clearTimeout(bound);
    client.destroy();
  }
  const ranges = new Set(script.fetches.map((f) => `bytes=${f.start}-${f.start + f.length - 1}`));
  for (const r of httpRequests) if (!ranges.has(r.headers['range'] ?? '')) failures.push(`a request asked for ${r.headers['range']}, not a range fetched`);
  check(failures.length === 0, failures.join('; '));
}

const wsReplyArb = (fetches: WsFetch[]): fc.Arbitrary<string | Buffer> => {
  const f = fc.nat({ max: fetches.length - 1 }).map((i) => fetches[i]!);
  const total = fc.constantFrom('*', '100000', '0', '99999999999999999');
  const chunking = fc.option(fc.nat({ max: 1000 }), { freq: 2 }).map((c) => (c === null ? '' : `/${c}`));
  const enc = fc.constantFrom('', '', '', 'content-encoding: gzip\n', 'content-encoding: identity\n', 'content-encoding: br\n', 'content-encoding:\n');
  const honest206 = fc.tuple(f, total, chunking, enc).map(([x, t, c, e]) => `206\ncontent-range: bytes ${x.start}-${x.start + x.length - 1}/${t}\n${e}*${x.start}+${x.length}${c}\n`);
  const odd206 = fc.tuple(f, fc.integer({ min: -3, max: 3 }), fc.integer({ min: -3, max: 3 }), fc.integer({ min: -5, max: 5 }), fc.constantFrom('', ' ', 'x', '/', '\t'), chunking).map(([x, ds, de, dn, junk, c]) => {
    const s = Math.max(0, x.start + ds);
    return `206\ncontent-range: bytes ${s}-${x.start + x.length - 1 + de}/${junk === '' ? '*' : junk}\n*${s}+${Math.max(0, x.length + dn)}${c}\n`;
  });
  const badCr = fc.tuple(f, fc.constantFrom('', 'bytes */1000', 'bytes 0-99/', 'bytes -1-5/10', 'bytes 00000000000000000-1/2', 'bytes 99999999999999999-99999999999999999/*', 'items 0-9/10', 'bytes=0-9/10', 'bytes 0-9/10, bytes 20-29/10', 'bytes 1e3-2e3/*'), chunking).map(([x, cr, c]) => `206\n${cr === '' ? '' : `content-range: ${cr}\n`}*${x.start}+${x.length}${c}\n`);
  const full200 = fc.tuple(f, fc.integer({ min: -3, max: 4000 }), fc.constantFrom('none', 'true', 'short', 'junk', 'huge'), chunking, enc).map(([x, more, cl, c, e]) => {
    const n = Math.max(0, x.start + x.length + more);
    const len = cl === 'true' ? `content-length: ${n}\n` : cl === 'short' ? `content-length: ${Math.max(0, x.start + x.length - 1)}\n` : cl === 'junk' ? 'content-length: abc\n' : cl === 'huge' ? 'content-length: 99999999999999999999\n' : '';
    return `200\n${len}${e}*0+${n}${c}\n`;
  });
  const redirect = fc.tuple(fc.constantFrom(301, 302, 303, 307, 308, 300, 304), fc.constantFrom('/pub/file.bin', 'http://mirror.example/f', 'https://s.example/f', '//other.example/f', 'ftp://x/y', '', 'http://[::1', 'http://a b/', 'file.bin?x=1', 'mailto:a@b', 'h'.repeat(300)), fc.boolean()).map(([s, loc, has]) => `${s}\n${has ? `location: ${loc}\n` : ''}=0\n`);
  const status = fc.tuple(fc.constantFrom(404, 410, 403, 401, 500, 502, 503, 429, 408, 416, 204, 100, 199, 418, 600, 999, 0), fc.nat({ max: 40 })).map(([s, n]) => `${String(s).padStart(3, '0')}\n=${n}\n${'x'.repeat(n)}`);
  const literal = fc.tuple(fc.constantFrom(200, 206), fc.uint8Array({ maxLength: 300 })).map(([s, u]) => Buffer.concat([Buffer.from(`${s}\ncontent-range: bytes 0-${u.length - 1}/*\n=${u.length}\n`), Buffer.from(u)]));
  const dropped = fc.tuple(f, fc.nat({ max: 3000 }), fc.boolean()).map(([x, n, whole]) => (whole ? `200\n*0+${n}!\n` : `206\ncontent-range: bytes ${x.start}-${x.start + x.length - 1}/*\n*${x.start}+${Math.min(n, x.length)}!\n`));
  const refused = fc.constant('ERR\n');
  const chain = fc.integer({ min: 2, max: 7 }).map((n) => '302\nlocation: /hop\n=0\n'.repeat(n));
  return fc.oneof({ weight: 1, arbitrary: dropped }, { weight: 1, arbitrary: refused }, { weight: 1, arbitrary: chain }, { weight: 4, arbitrary: honest206 }, { weight: 2, arbitrary: odd206 }, { weight: 1, arbitrary: badCr }, { weight: 4, arbitrary: full200 }, { weight: 2, arbitrary: redirect }, { weight: 1, arbitrary: status }, { weight: 1, arbitrary: literal });
};

const wsFetchArb: fc.Arbitrary<WsFetch> = fc.record({
  start: fc.oneof(fc.nat({ max: 5000 }), fc.constantFrom(0, 16384, 65536, 999_999_999)),
  length: fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.constantFrom(1, 16384, 100_000)),
  cancel: fc.constant(false), // one fetch may be made cancelled below
});

const webseedArb: fc.Arbitrary<Buffer> = fc
  .record({ fetches: fc.array(wsFetchArb, { minLength: 1, maxLength: 6 }), together: fc.boolean(), cancelAt: fc.option(fc.nat({ max: 5 }), { freq: 8 }), runOn: fc.boolean() })
  .chain(({ fetches, together, cancelAt, runOn }) => {
    // fetches that read on in one 200: each from where the last ended
    if (runOn) for (let i = 1; i < fetches.length; i++) fetches[i] = { ...fetches[i]!, start: fetches[i - 1]!.start + fetches[i - 1]!.length + (i % 2) * 10 };
    if (cancelAt !== null && cancelAt < fetches.length) fetches[cancelAt] = { ...fetches[cancelAt]!, cancel: true };
    const head = `GET${together ? '&' : ''} ${fetches.map((f) => `${f.start}+${f.length}${f.cancel ? '!' : ''}`).join(' ')}\n`;
    return fc.array(wsReplyArb(fetches), { minLength: 1, maxLength: 8 }).map((rs) => Buffer.concat([Buffer.from(head, 'latin1'), ...rs.map((r) => (typeof r === 'string' ? Buffer.from(r, 'latin1') : r))]));
  });

const webseedTarget: FuzzTarget = {
  name: 'webseed-http',
  summary: 'web seed HTTP range replies: status, redirects, Content-Range/Length, 200 read on and parked, bodies in any chunking',
  files: ['src/webseed/http-range.js'],
  seeds: () => ({
    '206.bin': Buffer.from('GET 1000+5000\n206\ncontent-range: bytes 1000-5999/100000\n*1000+5000\n'),
    '200-read-on.bin': Buffer.from('GET 100+1000 1100+1000 2200+500\n200\ncontent-length: 4000\n*0+4000/3\n'),
    'redirect.bin': Buffer.from('GET 0+16384\n302\nlocation: /mirror/file.bin\n=0\n206\ncontent-range: bytes 0-16383/*\n*0+16384/5\n'),
    'together.bin': Buffer.from('GET& 0+100 500+100\n206\ncontent-range: bytes 0-99/1000\n*0+100\n206\ncontent-range: bytes 500-599/1000\n*500+100/2\n'),
    'errors.bin': Buffer.from('GET 0+10 0+10 0+10\n404\n=0\n503\n=9\nbusy now\n206\ncontent-range: bytes 0-9/*\ncontent-encoding: gzip\n*0+10\n'),
    'dropped.bin': Buffer.from('GET 0+100 0+100 50+100\nERR\n206\ncontent-range: bytes 0-99/*\n*0+60/9!\n200\n*0+100!\n'),
    'parked-many.bin': Buffer.from('GET 5000+10 4000+10 3000+10 2000+10 1000+10 5010+10\n' + '200\n*0+8000\n'.repeat(5)),
  }),
  inputs: (corpus) => mix(corpus, webseedArb, 1024),
  run: webseedRun,
  expected: (e) => e instanceof HttpRangeError,
  async: true,
};

/** A UDP reply script: records of [flags][length, 2 bytes BE][datagram]; flags bit 0 = carry the request's transaction id. */
export function udpScript(input: Buffer): FakeDatagram[] {
  const out: FakeDatagram[] = [];
  let i = 0;
  while (i < input.length && out.length < 16) {
    const flags = input[i]!;
    const len = i + 3 <= input.length ? input.readUInt16BE(i + 1) : 0;
    const bytes = input.subarray(i + 3, i + 3 + len);
    out.push({ matchTid: (flags & 1) === 1, bytes });
    i += 3 + len;
  }
  return out;
}

function udpRecord(bytes: Buffer, matchTid = true): Buffer {
  const h = Buffer.alloc(3);
  h[0] = matchTid ? 1 : 0;
  h.writeUInt16BE(bytes.length, 1);
  return Buffer.concat([h, bytes]);
}

function udpPacket(action: number, body: Buffer): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(action, 0);
  return Buffer.concat([b, body]);
}

const u32b = (...ns: number[]): Buffer => {
  const b = Buffer.alloc(4 * ns.length);
  ns.forEach((n, i) => b.writeUInt32BE(n >>> 0, i * 4));
  return b;
};

const udpArb: fc.Arbitrary<Buffer> = fc
  .array(
    fc.tuple(
      fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      fc.oneof(
        fc.tuple(fc.constant(0), fc.uint8Array({ minLength: 8, maxLength: 8 }).map((u) => Buffer.from(u))),
        fc.tuple(fc.constant(1), fc.tuple(fc.oneof(fc.nat(), fc.constantFrom(0, 2 ** 32 - 1)), fc.nat(), fc.nat(), compactArb(6)).map(([i, l, s, p]) => Buffer.concat([u32b(i, l, s), p]))),
        fc.tuple(fc.constant(2), fc.tuple(fc.nat(), fc.nat(), fc.nat()).map(([a, b, c]) => u32b(a, b, c))),
        fc.tuple(fc.constant(3), fc.string({ maxLength: 60 }).map((s) => Buffer.from(s))),
        fc.tuple(fc.nat(), fc.uint8Array({ maxLength: 30 }).map((u) => Buffer.from(u))),
      ),
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((rs) => Buffer.concat(rs.map(([m, [action, body]]) => udpRecord(udpPacket(action, body), m))));

async function trackerUdpRun(input: Buffer): Promise<void> {
  installFakeUdp();
  const h = hash32(input);
  const url = h & 1 ? 'udp://[::1]:6969/announce' : 'udp://127.0.0.1:6969/announce';
  const script = udpScript(input);
  for (const scrape of [false, true]) {
    resetUdpConnections();
    setDatagrams(script);
    const ac = new AbortController();
    const o = { timeoutMs: 60_000, retransmitBaseMs: 60_000, signal: ac.signal };
    const p = scrape ? udpScrape(url, INFO_HASH, o) : udpAnnounce(url, ANNOUNCE, o);
    let settled = false;
    const done = p.then(
      (r) => {
        settled = true;
        if ('peers' in r) for (const q of r.peers) check(normalizeIp(q.ip) === q.ip && q.port >= 1, `tracker peer ${q.ip}:${q.port}`);
      },
      (e: unknown) => {
        settled = true;
        if (!(e instanceof TrackerError) && !(e instanceof Error && e.name === 'AbortError')) throw e;
      },
    );
    // a reply that is ignored leaves the client waiting for its deadline: once every datagram
    // is delivered, end the wait as a caller's signal would
    for (let spins = 0; !settled && spins < 1000; spins++) {
      await new Promise((r) => setImmediate(r));
      if (datagramsLeft() === 0 && spins > 2) ac.abort();
    }
    await done;
  }
}

const trackerUdpTarget: FuzzTarget = {
  name: 'tracker-udp',
  summary: 'UDP tracker replies (BEP 15): connect, announce, scrape, error, stray datagrams',
  files: ['src/tracker/udp.js'],
  seeds: () => ({
    'announce.bin': Buffer.concat([udpRecord(udpPacket(0, Buffer.from('CONNID01'))), udpRecord(udpPacket(1, Buffer.concat([u32b(1800, 2, 7), Buffer.from([203, 0, 113, 5, 0x1a, 0xe1])])))]),
    'error.bin': Buffer.concat([udpRecord(udpPacket(3, Buffer.from('torrent not registered')))]),
    'stray-then-scrape.bin': Buffer.concat([udpRecord(udpPacket(0, Buffer.from('CONNID01')), false), udpRecord(udpPacket(0, Buffer.from('CONNID01'))), udpRecord(udpPacket(2, u32b(5, 9, 1)))]),
  }),
  inputs: (corpus) => mix(corpus, udpArb, 1024),
  run: trackerUdpRun,
  expected: (e) => e instanceof TrackerError,
  async: true,
};

// ---------------------------------------------------------------- DHT

const ID20 = (): fc.Arbitrary<Buffer> => fc.oneof({ weight: 5, arbitrary: fc.constant(sha1('node')) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 24 }).map((u) => Buffer.from(u)) });
const krpcArb: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.constantFrom('q', 'r', 'e', 'x'),
    fc.uint8Array({ minLength: 0, maxLength: 18 }).map((u) => Buffer.from(u)),
    fc.constantFrom('ping', 'find_node', 'get_peers', 'announce_peer', 'vote', ''),
    dictArb({ id: ID20(), target: ID20(), info_hash: ID20(), token: fc.uint8Array({ maxLength: 8 }).map((u) => Buffer.from(u)), port: fc.oneof(fc.nat({ max: 70000 }), fc.constant(-1)), implied_port: fc.nat({ max: 2 }) }),
    dictArb({ id: ID20(), nodes: compactArb(26), values: fc.array(fc.oneof(compactArb(6), compactArb(18), fc.uint8Array({ maxLength: 20 }).map((u) => Buffer.from(u))), { maxLength: 6 }), token: fc.uint8Array({ maxLength: 70 }).map((u) => Buffer.from(u)) }),
    fc.tuple(fc.integer(), fc.string({ maxLength: 300 })),
    fc.nat({ max: 2 }),
  )
  .map(([y, t, q, a, r, [code, msg], ro]) => {
    const d = new Map<string, BValue>([['t', t], ['y', Buffer.from(y)]]);
    if (y === 'q') {
      d.set('q', Buffer.from(q));
      d.set('a', a);
      if (ro > 0) d.set('ro', ro);
    } else if (y === 'r') d.set('r', r);
    else d.set('e', [code, Buffer.from(msg)]);
    return encode(d);
  });

interface PacketSink {
  onPacket(buf: Buffer, ip: string, port: number): void;
}

function krpcRun(input: Buffer): void {
  let m;
  try {
    m = parseKrpc(input);
  } catch (e) {
    if (!(e instanceof KrpcError)) throw e;
  }
  if (m?.y === 'r') {
    // what a lookup takes from a response
    const nodes = m.r.get('nodes');
    if (Buffer.isBuffer(nodes)) for (const n of decodeNodes(nodes) ?? []) check(n.id.length === 20 && n.port > 0, 'node with a bad id or port');
    const values = m.r.get('values');
    if (Array.isArray(values)) for (const v of values.slice(0, 200)) if (Buffer.isBuffer(v)) decodeCompactPeers(v, v.length === 18 ? 6 : 4);
  }
  // and the node's packet handler, which answers queries: it must never throw, and every
  // trace record must be printable as JSON (dht --trace)
  const node = new DhtNode({ trace: (rec) => void JSON.stringify(rec), stateFile: null, bootstrap: [] });
  (node as unknown as PacketSink).onPacket(input, '127.0.0.1', 6881);
}

const krpcTarget: FuzzTarget = {
  name: 'krpc',
  summary: 'DHT KRPC packets (BEP 5): parse, compact nodes/values, and the node answering them',
  files: ['src/dht/krpc.js', 'src/dht/node.js'],
  seeds: () => ({
    'ping.bin': Buffer.from('d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe'),
    'get-peers.bin': Buffer.from('d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe'),
    'announce.bin': Buffer.from('d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe'),
    'response.bin': encode({ t: Buffer.from('aa'), y: 'r', r: { id: sha1('x'), nodes: Buffer.concat([sha1('n1'), Buffer.from([203, 0, 113, 1, 0x1a, 0xe1])]), values: [Buffer.from([203, 0, 113, 2, 0x1a, 0xe1])], token: Buffer.from('tok') } }),
    'error.bin': Buffer.from('d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee'),
  }),
  inputs: (corpus) => mix(corpus, krpcArb, 2100),
  run: krpcRun,
  expected: () => false,
};

// ---------------------------------------------------------------- magnet

const pctArb = fc.uint8Array({ maxLength: 12 }).map((u) => [...u].map((b) => `%${b.toString(16).padStart(2, '0')}`).join(''));
const magnetArb: fc.Arbitrary<Buffer> = fc
  .array(
    fc.oneof(
      fc.constantFrom('xt=urn:btih:' + INFO_HASH.toString('hex'), 'xt=urn:btih:' + 'A'.repeat(32), 'xt=urn:btmh:1220' + 'ab'.repeat(32), 'xt=urn:btih:zz', 'xt=urn:sha1:abc', 'xt.1=urn:btih:' + sha1('b').toString('hex')),
      fc.string({ maxLength: 20 }).map((s) => `dn=${encodeURIComponent(s)}`),
      pctArb.map((p) => `dn=${p}`),
      fc.constantFrom('http://t/announce', 'udp://t:80', 'wss://t', 'ftp://x', '').map((u) => `tr=${encodeURIComponent(u)}`),
      fc.constant('ws=http://ws/'),
      fc.constantFrom('1.2.3.4:6881', '[::1]:1', 'host:65535', 'host:65536', 'host:0', '[zz]:1', ':1').map((p) => `x.pe=${p}`),
      // mostly small ranges; now and then one as wide as a magnet may select (expanding it is
      // the slow path, so only rarely)
      fc.tuple(fc.nat({ max: 10_000_000 }), fc.oneof({ weight: 500, arbitrary: fc.nat({ max: 100 }) }, { weight: 1, arbitrary: fc.nat({ max: 1_100_000 }) })).map(([a, n]) => `so=${a}-${a + n},${a}`),
      fc.constantFrom('so=0,2,4-6', 'so=', 'so=5-1', 'so=-1', 'so=' + '0-1000000,'.repeat(20) + '0'),
      fc.constantFrom('=x', 'x', 'k=%', 'k=%zz', '&&', 'xl=10'),
    ),
    { maxLength: 8 },
  )
  .map((ps) => Buffer.from(`magnet:?${ps.join('&')}`, 'latin1'));

function magnetRun(input: Buffer): void {
  for (const text of [input.toString('utf8'), input.toString('latin1')]) {
    try {
      const m = parseMagnet(text);
      check(m.infoHash !== undefined || m.infoHashV2 !== undefined, 'a magnet without any info hash was accepted');
      if (m.infoHash) check(m.infoHash.length === 20, 'btih of the wrong length');
      sourceOfMagnet(text);
    } catch (e) {
      if (!(e instanceof MagnetError)) throw e;
    }
    parseInfoHash(text);
  }
}

const magnetTarget: FuzzTarget = {
  name: 'magnet',
  summary: 'magnet URIs (BEP 9, 53): xt, dn, tr, ws, x.pe, so; percent-encoding',
  files: ['src/metainfo/magnet.js', 'src/metainfo/source.js'],
  seeds: () => ({
    'full.txt': Buffer.from(`magnet:?xt=urn:btih:${INFO_HASH.toString('hex')}&dn=My%20File&tr=http%3A%2F%2Ftracker%2Fannounce&tr=udp://t:80&ws=http://ws/&x.pe=203.0.113.5:6881&x.pe=[2001:db8::1]:51413&so=0,2,4-6`),
    'base32.txt': Buffer.from('magnet:?xt=urn:btih:CIJKSPKTRGLHGKSKZY6SOQFJWUAVOLSM&dn=x'),
    'v2.txt': Buffer.from(`magnet:?xt=urn:btmh:1220${'ab'.repeat(32)}&xt=urn:btih:${INFO_HASH.toString('hex')}`),
  }),
  inputs: (corpus) => mix(corpus, magnetArb, 2048),
  run: magnetRun,
  expected: (e) => e instanceof MagnetError,
};

// ---------------------------------------------------------------- piece stream

const pieceFrame = (index: number, piece: Buffer, extra = ''): Buffer => Buffer.concat([Buffer.from(`d${extra}5:indexi${index}e5:piece${piece.length}:`), piece, Buffer.from('e')]);
const pieceStreamArb: fc.Arbitrary<Buffer> = fc
  .array(
    fc.tuple(fc.oneof(fc.nat({ max: 12 }), fc.constantFrom(-1, 2 ** 31, 2 ** 52)), fc.constantFrom(0, 1, 100, 1024, 1025, 4096), fc.constantFrom('', '1:a0:', '4:hashi1e', '3:zzzli1ee')),
    { maxLength: 4 },
  )
  .map((fs) => Buffer.concat(fs.map(([i, n, extra]) => pieceFrame(i, Buffer.alloc(n, i & 0xff), extra))));

interface Frames {
  out: string[];
  err: string | null;
}

function pieceStreamRun(input: Buffer): void {
  const h = hash32(input);
  const maxPieceLength = [1024, 100, 4096, 70000][(h >>> 5) % 4]!;
  const pieceCount = (h >>> 9) % 2 === 0 ? 10 : undefined;
  const frames = (reuse: boolean, parts: Buffer[]): Frames => {
    const p = new FrameParser({ maxPieceLength, ...(pieceCount === undefined ? {} : { pieceCount }), reusesInput: reuse });
    const got: PieceFrame[] = [];
    const scratch = Buffer.alloc(256);
    try {
      for (const part of parts) {
        let c = part;
        // as PieceFrameReader does: read into the pending piece when there is one, else into
        // one reused buffer (overwritten after each write)
        while (c.length > 0) {
          const target = reuse ? p.pendingPiece() : null;
          if (target !== null) {
            const n = Math.min(target.length, c.length);
            c.copy(target, 0, 0, n);
            p.filled(n, (f) => got.push(f));
            c = c.subarray(n);
            continue;
          }
          if (reuse) {
            const n = Math.min(scratch.length, c.length);
            c.copy(scratch, 0, 0, n);
            p.write(scratch.subarray(0, n), (f) => got.push(f));
            scratch.fill(0xee);
            c = c.subarray(n);
          } else {
            p.write(c, (f) => got.push(f));
            c = Buffer.alloc(0);
          }
        }
      }
      p.end();
    } catch (e) {
      if (!(e instanceof PieceStreamError)) throw e;
      return { out: got.map((f) => `${f.index}:${sha1(f.piece.bytes).toString('hex')}`), err: e.message };
    }
    return { out: got.map((f) => `${f.index}:${sha1(f.piece.bytes).toString('hex')}`), err: null };
  };
  const whole = frames(false, [input]);
  const read = frames(true, chunks(input, h));
  check(whole.out.join() === read.out.join(), 'the reader (reused buffers, any chunking) got other frames than a whole parse');
  check(whole.err === read.err, `the reader failed otherwise: ${read.err ?? 'ok'} vs ${whole.err ?? 'ok'}`);
}

const pieceStreamTarget: FuzzTarget = {
  name: 'piece-stream',
  summary: 'the piece stream (fetch-pieces → assemble): frames parsed as the fd reader and the stream decoder do',
  files: ['src/streams/piece-frames.js'],
  seeds: () => ({
    'frames.bin': Buffer.concat([pieceFrame(0, Buffer.alloc(1024, 1)), pieceFrame(3, Buffer.alloc(100, 3)), pieceFrame(9, Buffer.alloc(1024, 9), '4:hashi7e')]),
  }),
  inputs: (corpus) => mix(corpus, pieceStreamArb, 6000),
  run: pieceStreamRun,
  expected: (e) => e instanceof PieceStreamError,
};

// ---------------------------------------------------------------- NDJSON peers

const peerJsonArb: fc.Arbitrary<Buffer> = fc
  .array(
    fc.oneof(
      fc.record({ ip: fc.oneof(fc.constantFrom('203.0.113.5', '::1', '::ffff:1.2.3.4', 'FE80::1', 'fe80::1%eth0', '1.2.3', 'localhost', '', '::', '1:2:3:4:5:6:7:8:9'), fc.string({ maxLength: 8 })), port: fc.oneof(fc.integer({ min: -1, max: 70000 }), fc.constantFrom(1.5, 1e21)), source: fc.string({ maxLength: 6 }), peerId: fc.constantFrom('ab'.repeat(20), 'zz', 'AB'.repeat(20)) }).map((o) => JSON.stringify(o)),
      fc.json({ maxDepth: 3 }),
      fc.constantFrom('', '   ', '{"ip":"1.2.3.4","port":1}\r', '{"event":"piece","index":7}', '[1,2]', 'null', '{"ip":1,"port":"2"}', '{', '\u00e9', '{"__proto__":{"ip":"1.1.1.1"},"ip":"1.1.1.1","port":9}'),
    ),
    { maxLength: 6 },
  )
  .map((ls) => Buffer.from(ls.join('\n') + '\n'));

function ndjsonRun(input: Buffer): void {
  const h = hash32(input);
  const maxLine = [64 * 1024 * 1024, 16, 300][h % 3]!;
  const parse = (parts: Buffer[]): { out: string[]; err: string | null } => {
    const p = new NdjsonLineParser(maxLine);
    const out: string[] = [];
    const take = (l: NdjsonLine): void => {
      const r = peerFromJson(l.value);
      if (typeof r !== 'string') {
        check(normalizeIp(r.ip) === r.ip && r.port >= 1 && r.port <= 65535, `peer record ${r.ip}:${r.port} accepted`);
        out.push(`${l.line}:${peerLine(r)}`);
      } else out.push(`${l.line}:${r}`);
    };
    try {
      for (const c of parts) p.write(c, take);
      p.end(take);
    } catch (e) {
      if (!(e instanceof NdjsonError)) throw e;
      return { out, err: e.message };
    }
    return { out, err: null };
  };
  const a = parse(chunks(input, h));
  const b = parse([input]);
  check(a.out.join('\n') === b.out.join('\n') && a.err === b.err, 'chunking changed the lines read');
  // each line as a --peer argument too
  for (const line of input.toString('utf8').split('\n').slice(0, 20)) {
    const hp = parseHostPort(line);
    if (hp) check(hp.port >= 1 && hp.port <= 65535, 'parseHostPort accepted a bad port');
  }
}

const ndjsonTarget: FuzzTarget = {
  name: 'ndjson-peers',
  summary: 'NDJSON lines (bytes, any chunking, line limits) and the peer records read from them',
  files: ['src/streams/ndjson-parse.js', 'src/peers/record.js'],
  seeds: () => ({
    'peers.ndjson': Buffer.from('{"ip":"203.0.113.5","port":6881,"source":"tracker"}\n{"ip":"2001:db8::1","port":51413,"source":"dht","peerId":"' + 'ab'.repeat(20) + '"}\n{"event":"complete"}\n\n{"ip":"::ffff:198.51.100.7","port":1,"tracker":"http://t/announce"}\r\n'),
  }),
  inputs: (corpus) => mix(corpus, peerJsonArb, 1024),
  run: ndjsonRun,
  expected: (e) => e instanceof NdjsonError,
};

// ---------------------------------------------------------------- uTP

/** Datagrams as records: a 2-byte length, then the bytes; after each, the endpoint's timer ticks. */
function utpRecords(input: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at + 2 <= input.length && out.length < 512; ) {
    const n = input.readUInt16BE(at);
    out.push(input.subarray(at + 2, Math.min(input.length, at + 2 + n)));
    at += 2 + n;
  }
  return out;
}

function utpRecord(b: Buffer): Buffer {
  const h = Buffer.alloc(2);
  h.writeUInt16BE(b.length);
  return Buffer.concat([h, b]);
}

function utpPacket(type: number, connId: number, seq: number, ack: number, ext: Buffer, payload: Buffer, wnd = 1 << 20): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  writeHeader(h, type, connId, 0, 0, wnd, seq, ack);
  if (ext.length > 0) h[1] = 1;
  return Buffer.concat([h, ext, payload]);
}

/** Mostly packets of our two connections (a SYN for id 1000 accepted; the dialled one receives on 16384), seq and ack near theirs. */
const utpArb: fc.Arbitrary<Buffer> = fc
  .array(
    fc.tuple(
      fc.nat({ max: 5 }),
      fc.constantFrom(1000, 1001, 16384, 16385, 7),
      fc.integer({ min: -40, max: 40 }),
      fc.integer({ min: -40, max: 40 }),
      fc.oneof(fc.constant(Buffer.alloc(0)), fc.uint8Array({ minLength: 0, maxLength: 40 }).map((u) => Buffer.concat([Buffer.from([0, u.length]), Buffer.from(u)]))),
      fc.uint8Array({ maxLength: 1500 }).map((u) => Buffer.from(u)),
      fc.nat({ max: 2 }),
    ),
    { maxLength: 40 },
  )
  .map((ps) => Buffer.concat([utpRecord(utpPacket(4, 1000, 100, 0, Buffer.alloc(0), Buffer.alloc(0))), ...ps.map(([t, id, ds, da, ext, pay, w]) =>
    utpRecord(utpPacket(t, id, (101 + ds) & 0xffff, (50 + da) & 0xffff, ext, pay, [0, 1400, 1 << 20][w]!)))]));

/**
 * Datagrams from outside into an endpoint that accepts and one that dials: receive() never
 * throws, the timer runs between them, and the connections' memory stays bounded.
 */
async function utpRun(input: Buffer): Promise<void> {
  let t = 0;
  const ticks: Array<() => void> = [];
  const clock: Clock = { now: () => t, every: (_ms, fn) => (ticks.push(fn), { cancel: () => {} }) };
  let sent = 0;
  const h = emptyHeader();
  const out = { send(buf: Uint8Array | readonly Uint8Array[]) {
    sent++;
    check(!Array.isArray(buf) && decodePacket(Buffer.from(buf as Uint8Array), h) === null, 'the endpoint sent a packet it would refuse');
  } };
  const server = new UtpEndpoint(out, { clock, random: () => 0.25, initialSeq: 49 });
  const client = new UtpEndpoint(out, { clock, random: () => 0.25, initialSeq: 49 });
  const streams = [client.connect('203.0.113.5', 6881)];
  streams[0]!.on('error', () => {});
  // both take every datagram, so both accept the SYNs
  for (const e of [server, client]) {
    e.on('connection', (s: UtpStream) => {
      streams.push(s);
      s.on('error', () => {});
      s.on('data', () => {});
      if (hash32(input) & 1) s.pause();
    });
  }
  const records = utpRecords(input);
  for (const [i, r] of records.entries()) {
    server.receive(r, '203.0.113.5', 6881);
    client.receive(r, '203.0.113.5', 6881);
    if (i % 4 === 3) {
      t += 600;
      for (const f of ticks) f();
    }
  }
  await new Promise((resolve) => setImmediate(resolve));
  streams[0]!.write(Buffer.alloc(3000, 1));
  await new Promise((resolve) => setImmediate(resolve));
  check(sent < 20_000, `${sent} packets sent for ${records.length} received`);
  server.close();
  client.close();
}

const utpTarget: FuzzTarget = {
  name: 'utp',
  summary: 'uTP datagrams (BEP 29) into two endpoints: header, extension chain, SACK, the connection state machine',
  files: ['src/utp/packet.js', 'src/utp/connection.js', 'src/utp/endpoint.js'],
  seeds: () => ({
    'syn-data-fin.bin': Buffer.concat([
      utpRecord(utpPacket(4, 1000, 100, 0, Buffer.alloc(0), Buffer.alloc(0))),
      utpRecord(utpPacket(0, 1000, 101, 50, Buffer.alloc(0), Buffer.from('hello'))),
      utpRecord(utpPacket(0, 1000, 103, 50, Buffer.alloc(0), Buffer.from('later'))),
      utpRecord(utpPacket(2, 1000, 104, 50, Buffer.from([0, 4, 0x05, 0, 0, 0]), Buffer.alloc(0))),
      utpRecord(utpPacket(1, 1000, 104, 50, Buffer.alloc(0), Buffer.alloc(0))),
      utpRecord(utpPacket(3, 1000, 0, 0, Buffer.alloc(0), Buffer.alloc(0))),
    ]),
  }),
  inputs: (corpus) => mix(corpus, utpArb, 1024),
  run: utpRun,
  // receive() refuses by counting, never by throwing
  expected: () => false,
  async: true,
};

export const TARGETS: readonly FuzzTarget[] = [
  bencodeTarget,
  metainfoTarget,
  wireTarget,
  utMetadataTarget,
  utPexTarget,
  peerConnectionTarget,
  mseTarget,
  trackerHttpTarget,
  webseedTarget,
  trackerUdpTarget,
  krpcTarget,
  magnetTarget,
  pieceStreamTarget,
  ndjsonTarget,
  utpTarget,
];

export function target(name: string): FuzzTarget | undefined {
  return TARGETS.find((t) => t.name === name);
}
