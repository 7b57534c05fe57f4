/**
 * Bencode codec against npm bencode@4 (the usual JS choice), on a typical torrent and a
 * structure-heavy one, plus the bdecode CLI's peak RSS on a 1 GiB stream of values.
 */
import { randomBytes } from 'node:crypto';
import ref from 'bencode';
import { decode, encode, fromJson, fromJsonText, toJson, type BValue } from '../src/bencode/index.js';
import { CLI, fmt, measureCommand, ms, timeIt } from './harness.js';


function typicalTorrent(): Buffer {
  // ~1,400 pieces of 256 KiB (a ~350 MiB file) with an announce-list
  return encode(new Map<string, BValue>([
    ['announce', Buffer.from('http://tracker.example.org:6969/announce')],
    ['announce-list', Array.from({ length: 12 }, (_, i) => [Buffer.from(`udp://tracker${i}.example.org:1337/announce`)])],
    ['comment', Buffer.from('a typical torrent')],
    ['created by', Buffer.from('mktorrent 1.1')],
    ['creation date', 1732500000],
    ['info', new Map<string, BValue>([
      ['length', 1400 * 262144 - 1000],
      ['name', Buffer.from('debian-12.8.0-amd64-netinst.iso')],
      ['piece length', 262144],
      ['pieces', randomBytes(1400 * 20)],
    ])],
  ]));
}

function structureHeavyTorrent(): Buffer {
  const files: BValue[] = [];
  for (let i = 0; i < 5000; i++) {
    files.push(new Map<string, BValue>([
      ['length', 1000 + i * 37],
      ['path', [Buffer.from(`dir${i % 50}`), Buffer.from(`sub${i % 7}`), Buffer.from(`file-${i}.dat`)]],
    ]));
  }
  return encode(new Map<string, BValue>([
    ['announce', Buffer.from('http://tracker.example.org:6969/announce')],
    ['info', new Map<string, BValue>([
      ['files', files],
      ['name', Buffer.from('many-files')],
      ['piece length', 65536],
      ['pieces', randomBytes(20 * 1000)],
    ])],
  ]));
}

/** `mib` MiB of NDJSON lines (the tagged JSON of both torrents, alternately) written into `w`. */
async function feedJson(w: NodeJS.WritableStream, mib: number): Promise<void> {
  const block = Buffer.from(toJson(decode(typicalTorrent())) + '\n' + toJson(decode(structureHeavyTorrent())) + '\n');
  let sent = 0;
  while (sent < mib * (1 << 20)) {
    if (!w.write(block)) await new Promise((r) => w.once('drain', r));
    sent += block.length;
  }
}

/** 1 GiB of concatenated values written into `w` with backpressure. */
async function feedGiB(w: NodeJS.WritableStream): Promise<void> {
  const unit = encode(new Map<string, BValue>([['data', randomBytes(900)], ['index', 123456], ['list', [1, 2, Buffer.from('three')]]]));
  const block = Buffer.concat(Array.from({ length: Math.ceil((1 << 20) / unit.length) }, () => unit));
  let sent = 0;
  while (sent < 1 << 30) {
    if (!w.write(block)) await new Promise((r) => w.once('drain', r));
    sent += block.length;
  }
}

export async function benchBencode(): Promise<string[]> {
  const out: string[] = ['## bencode codec (ratio = npm bencode@4 time / ours; > 1 means faster)', ''];
  out.push('| input | op | torrent-tools | npm bencode | ratio |', '|---|---|---|---|---|');
  for (const [name, buf] of [['typical (1,400 pieces, announce-list)', typicalTorrent()], ['structure-heavy (5,000 files)', structureHeavyTorrent()]] as const) {
    const ours = timeIt(() => decode(buf));
    const theirs = timeIt(() => ref.decode(buf));
    out.push(`| ${name}, ${(buf.length / 1024).toFixed(0)} KiB | decode | ${ms(ours)} | ${ms(theirs)} | ${fmt(theirs / ours)}× |`);
    const v = decode(buf);
    const rv = ref.decode(buf);
    const oursE = timeIt(() => encode(v));
    const theirsE = timeIt(() => ref.encode(rv));
    out.push(`| ${name} | encode | ${ms(oursE)} | ${ms(theirsE)} | ${fmt(theirsE / oursE)}× |`);
  }
  out.push('', '| input | op (ours only: npm bencode has no JSON mapping) | time |', '|---|---|---|');
  for (const [name, buf] of [['typical', typicalTorrent()], ['structure-heavy', structureHeavyTorrent()]] as const) {
    const v = decode(buf);
    const text = toJson(v);
    out.push(`| ${name} | toJson | ${ms(timeIt(() => toJson(v)))} |`);
    out.push(`| ${name} | JSON.parse + fromJson | ${ms(timeIt(() => fromJson(JSON.parse(text))))} |`);
    out.push(`| ${name} | fromJsonText (the bencode CLI's path: also refuses repeated keys) | ${ms(timeIt(() => fromJsonText(text)))} |`);
  }
  const j = await measureCommand(CLI, ['bencode'], (w) => feedJson(w, 256));
  out.push('', `bencode CLI on 256 MiB of NDJSON (both torrents' JSON, alternately): ${fmt(j.wallS)} s wall (${fmt(256 / j.wallS, 0)} MiB/s), ` +
    `peak RSS ${j.maxRssMiB === null ? 'n/a (no /usr/bin/time)' : fmt(j.maxRssMiB, 1) + ' MiB'}, exit ${j.code}`);
  const m = await measureCommand(CLI, ['bdecode'], feedGiB);
  out.push('', `bdecode CLI on a 1 GiB stream of ~1 KiB values: ${fmt(m.wallS)} s wall (${fmt(1024 / m.wallS, 0)} MiB/s), ` +
    `peak RSS ${m.maxRssMiB === null ? 'n/a (no /usr/bin/time)' : fmt(m.maxRssMiB, 1) + ' MiB'}, exit ${m.code}`);
  return out;
}
