/** Magnets end to end: BEP 9 metadata both ways, fetch-metadata, hostile metadata peers, interop. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decode } from '../src/bencode/decoder.js';
import { encode } from '../src/bencode/encoder.js';
import { torrentFileFromMetadata } from '../src/metainfo/from-metadata.js';
import { parseTorrent } from '../src/metainfo/torrent.js';
import { WireViolation } from '../src/wire/frame-decoder.js';
import { decodeMetadataMessage, encodeMetadataMessage, METADATA_PIECE, metadataPieceLength, UtMetadata } from '../src/wire/ut-metadata.js';
import type { PeerConnection } from '../src/wire/peer-connection.js';
import { CLI, runCli } from './helpers/cli.js';
import { startHostilePeer, type HostilePeer } from './helpers/hostile-peer.js';
import { FIXTURES, SYSTEM_PYTHON, hasLibtorrent, skipUnless, startLtSeeds } from './helpers/interop.js';
import { bytes, rng } from './helpers/random.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles, type TestFile } from './helpers/torrent.js';

// many files with long names: an info dict of three metadata pieces, so several peers share it
const r = rng(909);
const files: TestFile[] = Array.from({ length: 360 }, (_, i) => ({
  path: ['d', `file-${String(i).padStart(4, '0')}-${'x'.repeat(60)}.bin`],
  data: bytes(r, 200 + i),
}));
const PL = 16 * 1024;
const { bytes: tb, torrent: t } = makeTorrent('meta', files, PL);
const hash = t.infoHashHex;
const seeds: SeedProc[] = [];
const hostile: HostilePeer[] = [];
const stops: Array<() => void> = [];
after(async () => {
  stops.forEach((s) => s());
  await Promise.all([...seeds.map((s) => s.stop()), ...hostile.map((h) => h.close())]);
});

async function setup(): Promise<{ dir: string; tf: string; data: string }> {
  const dir = await tmpDir('tt-meta-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  const data = join(dir, 'data');
  await writeFiles(data, 'meta', files);
  return { dir, tf, data };
}

let shared: Promise<{ dir: string; tf: string; data: string; seed: SeedProc }> | null = null;
function withSeed(): Promise<{ dir: string; tf: string; data: string; seed: SeedProc }> {
  shared ??= setup().then(async (s) => {
    const seed = await startSeed(s.tf, s.data);
    seeds.push(seed);
    return { ...s, seed };
  });
  return shared;
}

const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex');
/** the info hash of a .torrent as `info` computes it */
function infoHashOf(file: Buffer): string {
  return parseTorrent(file).infoHashHex;
}

test('ut_metadata messages: round trips and a table of malformed ones', () => {
  assert.ok(t.infoRaw.length > 2 * METADATA_PIECE, `the test torrent's info is ${t.infoRaw.length} bytes`);
  for (const m of [{ type: 'request', piece: 0 }, { type: 'reject', piece: 7 }, { type: 'data', piece: 2, totalSize: 40000, data: Buffer.from('abc') }] as const) {
    assert.deepEqual(decodeMetadataMessage(encodeMetadataMessage(m), 1 << 20), m);
  }
  assert.deepEqual(decodeMetadataMessage(encode({ msg_type: 9, piece: 0 }), 1 << 20), { type: 'unknown', msgType: 9 });
  const bad: Array<[string, Buffer, RegExp]> = [
    ['not bencode', Buffer.from('xyz'), /malformed/],
    ['a list', encode([1, 2]), /not a dict/],
    ['no msg_type', encode({ piece: 0 }), /msg_type/],
    ['piece not an integer', encode({ msg_type: 0, piece: 'x' }), /piece/],
    ['piece beyond any metadata we accept', encode({ msg_type: 0, piece: 100 }), /piece/],
    ['bytes after a request', Buffer.concat([encode({ msg_type: 0, piece: 0 }), Buffer.from('zz')]), /after a request/],
    ['data without total_size', encode({ msg_type: 1, piece: 0 }), /total_size/],
    ['negative piece', Buffer.from('d8:msg_typei0e5:piecei-1ee'), /piece/],
  ];
  for (const [what, payload, re] of bad) {
    assert.throws(() => decodeMetadataMessage(payload, 1 << 20), (e: Error) => e instanceof WireViolation && re.test(e.message), what);
  }
  assert.equal(metadataPieceLength(40000, 2), 40000 - 2 * METADATA_PIECE);
  assert.equal(metadataPieceLength(40000, 3), 0);
});

test('a .torrent from metadata keeps the raw info bytes and the magnet trackers and web seeds', () => {
  // unsorted keys in the info dict: re-encoding would change the hash
  const raw = Buffer.from('d4:name1:x12:piece lengthi16384e6:lengthi5e6:pieces20:aaaaaaaaaaaaaaaaaaaae');
  const file = torrentFileFromMetadata(raw, { trackers: ['http://a/announce', 'udp://b:1'], webSeeds: ['http://w/'] });
  const parsed = parseTorrent(file, { onWarning: () => {} });
  assert.equal(parsed.infoHashHex, sha1(raw));
  assert.deepEqual(parsed.announce, [['http://a/announce'], ['udp://b:1']]);
  assert.deepEqual(parsed.urlList, ['http://w/']);
  const bare = decode(torrentFileFromMetadata(raw, { trackers: [], webSeeds: [] }), { allowUnsorted: true }) as Map<string, unknown>;
  assert.deepEqual([...bare.keys()], ['info']);
});

test('fetch-metadata from our seed: via x.pe, --peer and peers on stdin; the result hashes to the magnet', async () => {
  const { dir, seed } = await withSeed();
  const magnet = `magnet:?xt=urn:btih:${hash}&dn=meta&tr=${encodeURIComponent('http://127.0.0.1:1/announce')}`;
  const viaPe = await runCli(['fetch-metadata', `${magnet}&x.pe=127.0.0.1:${seed.port}`], { input: '' });
  assert.equal(viaPe.code, 0, viaPe.stderr.toString());
  assert.equal(infoHashOf(viaPe.stdout), hash);
  assert.deepEqual(parseTorrent(viaPe.stdout).announce, [['http://127.0.0.1:1/announce']]);
  const viaStdin = await runCli(['fetch-metadata', hash], { input: `{"ip":"127.0.0.1","port":${seed.port}}\n` });
  assert.equal(viaStdin.code, 0, viaStdin.stderr.toString());
  assert.equal(infoHashOf(viaStdin.stdout), hash);
  const out = join(dir, 'got.torrent');
  const viaPeer = await runCli(['fetch-metadata', magnet, '--peer', `127.0.0.1:${seed.port}`, '-o', out], { input: '' });
  assert.equal(viaPeer.code, 0, viaPeer.stderr.toString());
  const info = await runCli(['info', out]);
  assert.equal((JSON.parse(info.stdout.toString()) as { infoHash: string }).infoHash, hash);
});

test('fetch-metadata: usage errors exit 2; no peer delivering exits 1 saying what was tried', async () => {
  assert.equal((await runCli(['fetch-metadata'], { input: '' })).code, 2);
  assert.equal((await runCli(['fetch-metadata', 'magnet:?xt=urn:btih:zz'], { input: '' })).code, 1);
  const { tf } = await withSeed();
  assert.equal((await runCli(['fetch-metadata', tf], { input: '' })).code, 2);
  // a closed port (nobody listens on a just-freed ephemeral port) and nothing on stdin
  const closed = await startHostilePeer(t.infoHash, { handshake: {} });
  const port = closed.port;
  await closed.close();
  const res = await runCli(['fetch-metadata', hash, '--peer', `127.0.0.1:${port}`, '--timeout', '20'], { input: '' });
  assert.equal(res.code, 1);
  const err = res.stderr.toString();
  assert.match(err, new RegExp(`no metadata for ${hash}: no peers left to try: 1 peer tried: 127\\.0\\.0\\.1:${port}: ECONNREFUSED`), err);
  assert.equal(res.stdout.length, 0);
});

interface Liar {
  what: string;
  script: Parameters<typeof startHostilePeer>[1];
  reason: RegExp;
}

const size = t.infoRaw.length;
const liars: Liar[] = [
  {
    what: 'metadata that does not hash to the info hash',
    script: {
      handshake: { metadata_size: size },
      onExtended: (ctx, name, p) => {
        const m = decodeMetadataMessage(p, 1 << 20);
        if (name === 'ut_metadata' && m.type === 'request') {
          ctx.send('ut_metadata', encodeMetadataMessage({ type: 'data', piece: m.piece, totalSize: size, data: Buffer.alloc(metadataPieceLength(size, m.piece), 0x41) }));
        }
      },
    },
    reason: /does not match the info hash/,
  },
  { what: 'a huge metadata_size', script: { handshake: { metadata_size: 1 << 30 } }, reason: /metadata_size 1073741824 is over the limit/ },
  {
    what: 'rejects',
    script: {
      handshake: { metadata_size: size },
      onExtended: (ctx, _n, p) => ctx.send('ut_metadata', encodeMetadataMessage({ type: 'reject', piece: decodeMetadataMessage(p, 1 << 20).type === 'request' ? (decodeMetadataMessage(p, 1 << 20) as { piece: number }).piece : 0 })),
    },
    reason: /rejected metadata piece/,
  },
  {
    what: 'a piece that was never asked for',
    script: {
      handshake: { metadata_size: size },
      onReady: (ctx) => ctx.send('ut_metadata', encodeMetadataMessage({ type: 'data', piece: 6, totalSize: size, data: Buffer.alloc(100) })),
    },
    reason: /metadata piece 6, which was not asked of it/,
  },
  {
    what: 'a total_size other than its metadata_size',
    script: {
      handshake: { metadata_size: size },
      onExtended: (ctx, _n, p) => {
        const m = decodeMetadataMessage(p, 1 << 20);
        if (m.type === 'request') ctx.send('ut_metadata', encodeMetadataMessage({ type: 'data', piece: m.piece, totalSize: size + 1, data: Buffer.alloc(metadataPieceLength(size, m.piece)) }));
      },
    },
    reason: /says total_size \d+, but its handshake said/,
  },
  {
    what: 'a malformed extended handshake',
    script: {
      handshake: { metadata_size: Buffer.from("lots") },
    },
    reason: /metadata_size is not a positive integer/,
  },
  {
    what: 'a piece of the wrong length',
    script: {
      handshake: { metadata_size: size },
      onExtended: (ctx, _n, p) => {
        const m = decodeMetadataMessage(p, 1 << 20);
        if (m.type === 'request') ctx.send('ut_metadata', encodeMetadataMessage({ type: 'data', piece: m.piece, totalSize: size, data: Buffer.alloc(100) }));
      },
    },
    reason: /has 100 bytes, expected/,
  },
];

for (const liar of liars) {
  test(`a peer sending ${liar.what} is dropped; alone it yields nothing, beside an honest seed the metadata still arrives`, async () => {
    const { seed } = await withSeed();
    const h = await startHostilePeer(t.infoHash, liar.script);
    hostile.push(h);
    const alone = await runCli(['fetch-metadata', hash, '--peer', `127.0.0.1:${h.port}`, '--timeout', '20'], { input: '', timeoutMs: 30_000 });
    assert.equal(alone.code, 1, alone.stderr.toString());
    assert.match(alone.stderr.toString(), liar.reason);
    assert.equal(alone.stdout.length, 0);
    const both = await runCli(['fetch-metadata', hash, '--peer', `127.0.0.1:${h.port}`, '--peer', `127.0.0.1:${seed.port}`, '--timeout', '20'], { input: '', timeoutMs: 30_000 });
    assert.equal(both.code, 0, both.stderr.toString());
    assert.equal(infoHashOf(both.stdout), hash);
    await h.close();
  });
}

test('serving metadata: a request budget per connection, rejects for pieces beyond the metadata or when we have none', () => {
  const sent: Buffer[] = [];
  const conn = { sendExtended: (_n: string, p: Buffer) => sent.push(p), writableLength: 0 } as unknown as PeerConnection;
  const served = (ext: UtMetadata, piece: number): string => {
    ext.onMessage(conn, encodeMetadataMessage({ type: 'request', piece }));
    return decodeMetadataMessage(sent.at(-1)!, 1 << 20).type;
  };
  const ext = new UtMetadata({ info: () => t.infoRaw });
  assert.equal(served(ext, 3), 'reject'); // only 3 pieces: 0..2
  const budget = 3 * 3 + 8;
  let data = 0;
  for (let i = 0; i < 40; i++) if (served(ext, i % 3) === 'data') data++;
  assert.equal(data, budget - 0);
  assert.equal(served(new UtMetadata({}), 0), 'reject');
  // unasked data or rejects to a server that fetches nothing cost the connection
  assert.throws(() => ext.onMessage(conn, encodeMetadataMessage({ type: 'data', piece: 0, totalSize: 5, data: Buffer.alloc(5) })), /never requested/);
});

test('our seed serves its metadata over ut_metadata, traced by name', async () => {
  const { seed } = await withSeed();
  // the peer command fetches metadata over one connection and traces ut_metadata by name
  const res = await runCli(['peer', `127.0.0.1:${seed.port}`, `magnet:?xt=urn:btih:${hash}`, '--metadata', '--timeout', '10']);
  assert.equal(res.code, 0, res.stderr.toString());
  const lines = res.stdout.toString().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const ev = lines.find((l) => l['event'] === 'metadata')!;
  assert.equal(ev['valid'], true);
  assert.equal(ev['pieceCount'], t.pieceCount);
  const data = lines.filter((l) => l['dir'] === 'in' && l['extension'] === 'ut_metadata');
  assert.equal(data.length, 3);
  assert.ok(data.every((l) => l['msg'] === 'data' && l['totalSize'] === size));
  const hs = lines.find((l) => l['dir'] === 'in' && l['type'] === 'extended' && l['id'] === 0)!['handshake'] as Record<string, unknown>;
  assert.equal(hs['metadata_size'], size);
  assert.ok('yourip' in hs && 'v' in hs && 'reqq' in hs, JSON.stringify(hs));
  // --request with a magnet: metadata first, then the piece
  const piece = await runCli(['peer', `127.0.0.1:${seed.port}`, hash, '--request', '1', '--timeout', '10']);
  assert.equal(piece.code, 0, piece.stderr.toString());
  assert.match(piece.stdout.toString(), /"event":"piece","index":1,"length":16384,"valid":true/);
});

test('download a magnet: completes, is interrupted and resumes from the cached metadata', async () => {
  const { dir, seed } = await withSeed();
  const out = join(dir, 'dl');
  const magnet = `magnet:?xt=urn:btih:${hash}&x.pe=127.0.0.1:${seed.port}`;
  const child = spawn(process.execPath, [CLI, 'download', magnet, '-o', out, '--port', '0', '--json', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      if (stdout.includes('"event":"piece"')) resolve();
    });
    child.once('exit', () => resolve());
  });
  child.kill('SIGKILL');
  assert.match(stdout, /"event":"metadata","source":"peers"/);
  const cache = join(out, '.torrent-tools', `${hash}.torrent`);
  assert.equal(infoHashOf(await readFile(cache)), hash);
  const again = await runCli(['download', magnet, '-o', out, '--port', '0', '--json', '--quiet'], { timeoutMs: 60_000 });
  assert.equal(again.code, 0, again.stderr.toString());
  assert.match(again.stdout.toString(), /"event":"metadata","source":"cache"/);
  assert.match(again.stdout.toString(), /"event":"complete"/);
  for (const f of files.slice(0, 5)) assert.deepEqual(await readFile(join(out, 'meta', ...f.path)), f.data);
  assert.ok((await stat(join(out, 'meta', 'd'))).isDirectory());
});

test('BEP 53: a magnet\'s so= downloads only the files it selects', async () => {
  const { dir, seed } = await withSeed();
  const out = join(dir, 'so');
  const res = await runCli(['download', `magnet:?xt=urn:btih:${hash}&x.pe=127.0.0.1:${seed.port}&so=0,3`, '-o', out, '--port', '0', '--quiet'], { timeoutMs: 60_000 });
  assert.equal(res.code, 0, res.stderr.toString());
  assert.deepEqual(await readFile(join(out, 'meta', ...files[0]!.path)), files[0]!.data);
  assert.deepEqual(await readFile(join(out, 'meta', ...files[3]!.path)), files[3]!.data);
  // a file far from the selected ones shares no piece with them: never written
  await assert.rejects(stat(join(out, 'meta', ...files[300]!.path)));
});

test('fetch-metadata from a python-libtorrent seeder', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent') }, async () => {
  const { tf, data } = await withSeed();
  const lt = await startLtSeeds(tf, data, 1);
  stops.push(lt.stop);
  const res = await runCli(['fetch-metadata', `magnet:?xt=urn:btih:${hash}&x.pe=127.0.0.1:${lt.ports[0]}`, '--timeout', '30'], { input: '', timeoutMs: 40_000 });
  assert.equal(res.code, 0, res.stderr.toString());
  assert.equal(infoHashOf(res.stdout), hash);
  lt.stop();
});

test('a python-libtorrent leecher given only our magnet and address gets metadata and data from our seed', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent') }, async () => {
  const { dir, seed } = await withSeed();
  const out = join(dir, 'lt-magnet');
  const res = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const c = spawn(SYSTEM_PYTHON, [fileURLToPath(new URL('lt-leech.py', FIXTURES)), `magnet:?xt=urn:btih:${hash}`, out, `127.0.0.1:${seed.port}`, '60'], { stdio: ['ignore', 'pipe', 'pipe'] });
    stops.push(() => c.kill('SIGKILL'));
    let err = '';
    c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    c.on('close', (code) => resolve({ code, err }));
  });
  assert.equal(res.code, 0, res.err + seed.stderr());
  for (const f of files) assert.deepEqual(await readFile(join(out, 'meta', ...f.path)), f.data);
});
