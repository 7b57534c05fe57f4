import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { encode, type BValue } from '../src/bencode/index.js';
import { MagnetError, magnetFromTorrent, parseMagnet } from '../src/metainfo/magnet.js';
import { blockRanges, pieceSize, pieceSpans, piecesForFiles } from '../src/metainfo/pieces.js';
import { MetainfoError, parseTorrent, type TorrentFile } from '../src/metainfo/torrent.js';
import { layoutFiles } from '../src/metainfo/create.js';
import { pieceRoot } from '../src/metainfo/merkle.js';
import { int, rng, seedFromEnv } from './helpers/random.js';

const B = (s: string): Buffer => Buffer.from(s);

test('piece arithmetic, exhaustively on small sizes: spans tile each piece exactly', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  for (let total = 1; total <= 120; total++) {
    for (const pl of [1, 2, 3, 7, 16, 64]) {
      // random file splits, zero-length files and pad files included
      const sizes: number[] = [];
      let left = total;
      while (left > 0) {
        const n = r() < 0.15 ? 0 : Math.min(left, int(r, 1, 40));
        sizes.push(n);
        left -= n;
      }
      const files = layoutFiles(sizes.map((n, i) => ({ path: [`f${i}`], length: n })), pl, r() < 0.3);
      const length = files.reduce((a, f) => a + f.length, 0);
      const t = { files, pieceLength: pl, length };
      const count = Math.ceil(length / pl);
      let covered = 0;
      for (let i = 0; i < count; i++) {
        const size = pieceSize(t, i);
        assert.equal(size, i < count - 1 ? pl : length - pl * (count - 1), `seed ${seed}`);
        let at = 0;
        for (const s of pieceSpans(t, i)) {
          const f = files[s.file]!;
          assert.equal(s.pieceOffset, at, `seed ${seed} total ${total} pl ${pl} piece ${i}`);
          assert.ok(s.length > 0 && s.fileOffset >= 0 && s.fileOffset + s.length <= f.length);
          assert.equal(f.offset + s.fileOffset, i * pl + s.pieceOffset);
          at += s.length;
        }
        assert.equal(at, size, `seed ${seed}: piece ${i} fully covered`);
        covered += size;
        assert.deepEqual(blockRanges(size, 5).reduce((a, b) => (assert.equal(b.begin, a), a + b.length), 0), size);
      }
      assert.equal(covered, length);
      assert.throws(() => pieceSize(t, count), RangeError);
      // piecesForFiles: exactly the pieces whose spans touch the file
      files.forEach((_f, fi) => {
        const want = Array.from({ length: count }, (_, i) => i).filter((i) => pieceSpans(t, i).some((s) => s.file === fi));
        assert.deepEqual(piecesForFiles(t, [fi]), want, `seed ${seed} file ${fi}`);
      });
      // pad files (--pad) put every real file after the first on a piece boundary
      const padded = files.some((f) => f.pad);
      if (padded) for (const f of files.filter((x: TorrentFile, k) => k > 0 && !x.pad && files[k - 1]!.pad)) assert.equal(f.offset % pl, 0, `seed ${seed}`);
    }
  }
});

function torrent(info: Array<[string, BValue]>, top: Array<[string, BValue]> = []): Buffer {
  return encode(new Map<string, BValue>([...top, ['info', new Map(info)]]));
}
const okInfo = (): Array<[string, BValue]> => [['length', 5], ['name', B('x')], ['piece length', 4], ['pieces', Buffer.alloc(40)]];

test('a valid torrent parses; the info hash is the SHA-1 of the raw info bytes', () => {
  const buf = torrent(okInfo(), [['announce', B('http://a/announce')], ['creation date', 1732500000123], ['url-list', B('http://ws/')]]);
  const t = parseTorrent(buf);
  const raw = encode(new Map(okInfo()));
  assert.ok(buf.includes(raw));
  assert.equal(t.infoHashHex, createHash('sha1').update(raw).digest('hex'));
  assert.deepEqual(t.files, [{ path: ['x'], length: 5, offset: 0, pad: false }]);
  assert.equal(t.pieceCount, 2);
  assert.deepEqual(t.announce, [['http://a/announce']]);
  assert.equal(t.creationDate, 1732500000, 'milliseconds are converted');
  assert.deepEqual(t.urlList, ['http://ws/']);
});

test('malformed torrents: one precise message each (names and paths: with strict)', () => {
  const files = (list: BValue[]): Array<[string, BValue]> => [['files', list], ['name', B('d')], ['piece length', 4], ['pieces', Buffer.alloc(20)]];
  const f = (path: string[], length = 2): BValue => new Map<string, BValue>([['length', length], ['path', path.map(B)]]);
  const cases: Array<[Buffer, RegExp]> = [
    [Buffer.from('i1e'), /^torrent: expected a dict$/],
    [Buffer.from('d4:infoi1ee'), /^info: expected a dict$/],
    [torrent(okInfo().filter(([k]) => k !== 'name')), /^info\.name: expected a byte string$/],
    [torrent(okInfo().filter(([k]) => k !== 'piece length')), /^info\.piece length: expected an integer$/],
    [torrent([...okInfo().filter(([k]) => k !== 'piece length'), ['piece length', 0]]), /piece length: 0 is out of range/],
    [torrent([...okInfo().filter(([k]) => k !== 'pieces'), ['pieces', Buffer.alloc(21)]]), /^info\.pieces: length 21 is not a multiple of 20$/],
    [torrent([...okInfo().filter(([k]) => k !== 'pieces'), ['pieces', Buffer.alloc(20)]]), /^info\.pieces: 1 hashes for 2 pieces/],
    [torrent([...okInfo().filter(([k]) => k !== 'length'), ['length', -1]]), /^info\.length: -1 is out of range/],
    [torrent(files([])), /^info\.files: the file list is empty$/],
    [torrent(files([f(['..', 'x'])])), /^info\.files\[0\]\.path\[0\]: path component "\.\." is "\.\."$/],
    [torrent(files([f(['a', '..', '..', 'b'])])), /path\[1\]: path component "\.\." is "\.\."/],
    [torrent(files([f(['.'])])), /path component "\." is "\."/],
    [torrent(files([f(['/etc/passwd'])])), /contains a path separator/],
    [torrent(files([f(['a\\..\\b'])])), /contains a path separator/],
    [torrent(files([f(['nul\0'])])), /contains a NUL byte/],
    [torrent(files([f([''])])), /is empty/],
    [torrent(files([f([])])), /^info\.files\[0\]\.path: empty path$/],
    [torrent(files([f(['CON'])])), /reserved device name/],
    [torrent(files([f(['a']), f(['a'])])), /^info\.files\[1\]\.path: duplicate path "a"$/],
    [torrent(files([f(['a']), f(['a', 'b'])])), /^info\.files\[0\]\.path: "a" is also a directory of another file$/],
    [torrent(files([f(['a']), f(['A'])])), /^info\.files\[1\]\.path: duplicate path "A"$/],
    [torrent(files([f(['x\u202egpj.exe'])])), /invisible direction mark/],
    [torrent(files([f(['ctl\u0001'])])), /contains a control character/],
    [torrent(files([f(['b'.repeat(241)])])), /is longer than 240 bytes/],
    [torrent(files([new Map<string, BValue>([['length', 2], ['path', [Buffer.from([0x61, 0xff])]]])])), /is not valid UTF-8/],
    [torrent(files([new Map<string, BValue>([['attr', B('p')], ['length', 2]])])), /^info\.files\[0\]\.path: expected a list of path components$/],
    [torrent([...okInfo().filter(([k]) => k !== 'piece length'), ['piece length', 2 ** 29]]), /^info\.piece length: 536870912 is out of range \[1, 134217728\]$/],
    [torrent(files([f(Array.from({ length: 65 }, () => 'd'))])), /path deeper than 64 components/],
    [torrent([...okInfo(), ['files', [f(['a'])]]]), /^info: has both "length" and "files"$/],
    [torrent([...okInfo().filter(([k]) => k !== 'name'), ['name', B('..')]]), /^info\.name: "\.\." is "\.\."$/],
    [torrent([['meta version', 2], ['name', B('x')], ['piece length', 16384]]), /^info\.file tree: expected a dict$/],
    [torrent([['meta version', 3], ['name', B('x')], ['piece length', 16384]]), /^info\.meta version: version 3 is newer than this program reads/],
    [Buffer.from('d4:infod1:ai1e1:ai2eee'), /not valid bencode: byte \d+: duplicate dict key "a"/],
    [Buffer.alloc(10 * 1024 * 1024 + 1), /larger than 10485760 bytes/],
  ];
  for (const [buf, re] of cases) {
    const strict = { strict: true };
    assert.throws(() => parseTorrent(buf, strict), (e: unknown) => e instanceof MetainfoError && re.test(e.message), `${re}: got ${(() => { try { parseTorrent(buf, strict); return 'no error'; } catch (e) { return (e as Error).message; } })()}`);
  }
});

test('non-canonical torrents: read with one warning, hash of the raw bytes kept; strict refuses', () => {
  // info keys out of order, and junk after the dict
  const raw = 'd6:lengthi5e4:name1:x6:piecesXXXX12:piece lengthi4ee';
  const buf = Buffer.concat([Buffer.from('d4:info'), Buffer.from(raw.replace('6:piecesXXXX', `6:pieces40:${'\0'.repeat(40)}`), 'latin1'), Buffer.from('e\n')]);
  const warnings: string[] = [];
  const t = parseTorrent(buf, { onWarning: (m) => warnings.push(m) });
  const infoRaw = buf.subarray(7, buf.length - 2);
  assert.equal(t.infoHashHex, createHash('sha1').update(infoRaw).digest('hex'));
  assert.notEqual(t.infoHashHex, createHash('sha1').update(encode(new Map([['length', 5]]))).digest('hex'));
  assert.equal(warnings.length, 2, warnings.join('\n'));
  assert.match(warnings[0]!, /dict keys out of order/);
  assert.match(warnings[1]!, /1 bytes after the torrent's dict were ignored/);
  assert.throws(() => parseTorrent(buf, { strict: true }), /out of order/);
});

test('hybrid torrents report the v2 hash (SHA-256 of the raw info bytes)', () => {
  const data = Buffer.from('hello');
  const tree = new Map([['x', new Map([['', new Map<string, BValue>([['length', 5], ['pieces root', pieceRoot(data, 1)]])]])]]);
  const info: Array<[string, BValue]> = [['file tree', tree], ['length', 5], ['meta version', 2], ['name', B('x')], ['piece length', 16384], ['pieces', createHash('sha1').update(data).digest()]];
  const buf = torrent(info);
  const t = parseTorrent(buf);
  const raw = buf.subarray(buf.indexOf('4:infod') + 6, buf.length - 1);
  assert.equal(t.version, 'hybrid');
  assert.equal(t.infoHashHex, createHash('sha1').update(raw).digest('hex'));
  assert.equal(t.infoHashV2!.toString('hex'), createHash('sha256').update(raw).digest('hex'));
});

test('magnet URIs: fields, base32, btmh, x.pe, so; precise errors', () => {
  const hex = 'c12fe1c06bba254a9dc9f519b335aa7c1367a88a';
  const m = parseMagnet(`magnet:?xt=urn:btih:${hex}&dn=My%20File&tr=udp%3A%2F%2Ft.example%3A1337&tr.1=http://t2/a&ws=http://ws/x&x.pe=127.0.0.1:6881&x.pe=[::1]:51413&so=0,2,4-6`);
  assert.equal(m.infoHashHex, hex);
  assert.equal(m.name, 'My File');
  assert.deepEqual(m.trackers, ['udp://t.example:1337', 'http://t2/a']);
  assert.deepEqual(m.webSeeds, ['http://ws/x']);
  assert.deepEqual(m.peers, [{ host: '127.0.0.1', port: 6881 }, { host: '::1', port: 51413 }]);
  assert.deepEqual(m.select, [0, 2, 4, 5, 6]);
  const b32 = parseMagnet('magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK');
  assert.equal(b32.infoHashHex, hex);
  const v2 = parseMagnet(`magnet:?xt=urn:btmh:1220${'ab'.repeat(32)}`);
  assert.equal(v2.infoHashV2!.toString('hex'), 'ab'.repeat(32));
  const bad: Array<[string, RegExp]> = [
    ['http://x', /must start with 'magnet:\?'/],
    ['magnet:?dn=x', /no info hash/],
    ['magnet:?xt=urn:btih:123', /parameter 1 \(xt\): the btih info hash must be 40 hex or 32 base32/],
    ['magnet:?xt=urn:btmh:1220ab', /SHA-256 multihash/],
    [`magnet:?xt=urn:btih:${hex}&x.pe=nope`, /parameter 2 \(x\.pe\): expected HOST:PORT/],
    [`magnet:?xt=urn:btih:${hex}&x.pe=1.2.3.4:70000`, /expected HOST:PORT/],
    [`magnet:?xt=urn:btih:${hex}&so=3-1`, /parameter 2 \(so\): expected file indexes/],
    [`magnet:?xt=urn:btih:${hex}&tr=%ZZ`, /bad percent-encoding/],
    [`magnet:?xt=urn:btih:${hex}&tr=javascript:x`, /not a tracker URL/],
    [`magnet:?xt=urn:btih:${hex}&dn`, /expected key=value/],
    [`magnet:?xt=urn:btih:${hex}&xt=urn:btih:${'0'.repeat(40)}`, /a second, different btih/],
    ['magnet:?' + 'a=b&'.repeat(20000), /longer than 65536/],
  ];
  for (const [u, re] of bad) assert.throws(() => parseMagnet(u), (e: unknown) => e instanceof MagnetError && re.test(e.message), u.slice(0, 60));
  const t = parseTorrent(torrent(okInfo(), [['announce', B('http://a/announce')]]));
  const back = parseMagnet(magnetFromTorrent(t));
  assert.equal(back.infoHashHex, t.infoHashHex);
  assert.deepEqual(back.trackers, ['http://a/announce']);
});
