/**
 * The transport against libtorrent's uTP (python-libtorrent with TCP off both ways), below the
 * peer connection: raw BitTorrent messages over a UtpStream, both directions of data, and a
 * clean close (FIN both ways, no RESET). The full client over uTP is tested elsewhere.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { FIXTURES, SYSTEM_PYTHON, hasLibtorrent, skipUnless } from './helpers/interop.js';
import { udpEndpoint, type UdpEndpoint } from './helpers/udp-utp.js';
import type { UtpStream } from '../src/utp/stream.js';

const PIECE = 262144;
const BLOCK = 16384;

interface Lt {
  child: ChildProcess;
  lines: Interface;
  port: number;
  infoHash: Buffer;
  pieces: number;
  dir: string;
}

async function startLt(mode: 'seed' | 'leech', size: number): Promise<Lt> {
  const dir = await mkdtemp(join(tmpdir(), 'tt-utp-'));
  const child = spawn(SYSTEM_PYTHON, [fileURLToPath(new URL('lt-utp-peer.py', FIXTURES)), dir, String(size), mode], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  child.once('exit', () => clearTimeout(timer));
  const [first] = (await Promise.race([once(lines, 'line'), once(child, 'exit').then(() => { throw new Error('lt-utp-peer.py exited'); })])) as [string];
  const [port, ih, pieces] = first.split(' ');
  return { child, lines, port: Number(port), infoHash: Buffer.from(ih!, 'hex'), pieces: Number(pieces), dir };
}

function message(id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(5 + payload.length);
  b.writeUInt32BE(1 + payload.length);
  b[4] = id;
  payload.copy(b, 5);
  return b;
}

function handshake(infoHash: Buffer): Buffer {
  return Buffer.concat([Buffer.from([19]), Buffer.from('BitTorrent protocol'), Buffer.alloc(8), infoHash, Buffer.from('-TT0000-utp-interop0')]);
}

/** Frames a stream of BitTorrent messages after the 68-byte handshake. */
function frames(s: UtpStream, onHandshake: (h: Buffer) => void, onMessage: (id: number, body: Buffer) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  let shook = false;
  s.on('data', (d: Buffer) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
    if (!shook) {
      if (buf.length < 68) return;
      shook = true;
      onHandshake(buf.subarray(0, 68));
      buf = buf.subarray(68);
    }
    for (let n = 0; n < 10_000 && buf.length >= 4; n++) {
      const len = buf.readUInt32BE(0);
      if (buf.length < 4 + len) return;
      if (len > 0) onMessage(buf[4]!, buf.subarray(5, 4 + len));
      buf = buf.subarray(4 + len);
    }
  });
}

describe('uTP against python-libtorrent (TCP off on its side)', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent') }, () => {
  const cleanup: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanup) await c();
  });
  /** libtorrent and one uTP endpoint of ours, both gone after the tests */
  const start = async (mode: 'seed' | 'leech', size: number): Promise<{ lt: Lt; ep: UdpEndpoint }> => {
    const lt = await startLt(mode, size);
    const ep = await udpEndpoint();
    cleanup.push(async () => {
      lt.child.kill('SIGKILL');
      await ep.close();
      await rm(lt.dir, { recursive: true, force: true });
    });
    return { lt, ep };
  };

  it('libtorrent seeds 8 MiB to our stream; both FINs, no RESET', { timeout: 120_000 }, async () => {
    const size = 8 << 20;
    const { lt, ep } = await start('seed', size);
    const s = ep.endpoint.connect('127.0.0.1', lt.port);
    await once(s, 'connect');
    const got = Buffer.alloc(size);
    let received = 0;
    let requested = 0;
    const request = () => {
      for (; requested < size && requested - received < 2 << 20; requested += BLOCK) {
        const p = Buffer.alloc(12);
        p.writeUInt32BE(Math.floor(requested / PIECE));
        p.writeUInt32BE(requested % PIECE, 4);
        p.writeUInt32BE(BLOCK, 8);
        s.write(message(6, p));
      }
    };
    const complete = new Promise<void>((resolve, reject) => {
      s.on('error', reject);
      frames(s, (h) => {
        assert.ok(h.subarray(28, 48).equals(lt.infoHash), 'its handshake names the torrent');
        s.write(message(2)); // interested
      }, (id, body) => {
        if (id === 1) request();
        if (id === 7) {
          body.copy(got, body.readUInt32BE(0) * PIECE + body.readUInt32BE(4), 8);
          received += body.length - 8;
          if (received === size) resolve();
          else request();
        }
      });
    });
    s.write(handshake(lt.infoHash));
    await complete;
    const want = await readFile(join(lt.dir, 'src', 'f.bin'));
    assert.ok(got.equals(want), 'byte-identical');
    const closed = new Promise((resolve) => s.once('close', resolve));
    s.destroy();
    await closed;
    // our FIN acked, theirs acked in turn: the connection goes without a RESET either way
    for (let i = 0; i < 100 && ep.endpoint.stats().connections > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(ep.endpoint.stats().connections, 0);
    assert.equal(ep.endpoint.stats().refused, 0, ep.endpoint.lastRefusal);
  });

  it('libtorrent dials us over uTP and downloads 8 MiB from our stream', { timeout: 120_000 }, async () => {
    const size = 8 << 20;
    const { lt, ep } = await start('leech', size);
    const data = await readFile(join(lt.dir, 'src', 'f.bin'));
    const accepted = once(ep.endpoint, 'connection');
    const done = once(lt.lines, 'line');
    lt.child.stdin!.write(`${ep.port}\n`);
    const [s] = (await accepted) as [UtpStream];
    s.on('error', () => {});
    frames(s, (h) => {
      assert.ok(h.subarray(28, 48).equals(lt.infoHash), "its handshake names the torrent");
      const bits = Buffer.alloc(Math.ceil(lt.pieces / 8));
      for (let i = 0; i < lt.pieces; i++) bits[i >> 3]! |= 0x80 >> (i & 7);
      s.write(handshake(lt.infoHash));
      s.write(message(5, bits)); // bitfield: every piece
      s.write(message(1)); // unchoke
    }, (id, body) => {
      if (id !== 6) return;
      const index = body.readUInt32BE(0);
      const begin = body.readUInt32BE(4);
      const len = body.readUInt32BE(8);
      const head = Buffer.alloc(8);
      head.writeUInt32BE(index);
      head.writeUInt32BE(begin, 4);
      s.write(message(7, Buffer.concat([head, data.subarray(index * PIECE + begin, index * PIECE + begin + len)])));
    });
    const [line] = (await done) as [string];
    assert.equal(line, 'done', 'libtorrent checked every piece');
    const dl = await readFile(join(lt.dir, 'dl', 'f.bin'));
    assert.equal(createHash('sha1').update(dl).digest('hex'), createHash('sha1').update(data).digest('hex'));
    console.log(`# ours to libtorrent: ${JSON.stringify(ep.endpoint.stats())}`);
  });
});
