import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { WireViolation } from '../src/wire/frame-decoder.js';
import { CRYPTO_PLAINTEXT, CRYPTO_RC4, MseInitiator, MseResponder, type MseResult } from '../src/wire/mse.js';
import { Rc4 } from '../src/wire/rc4.js';
import { runCli } from './helpers/cli.js';
import { FIXTURES, SYSTEM_PYTHON, hasLibtorrent, skipUnless } from './helpers/interop.js';
import { bytes, int, randomChunks, rng, seedFromEnv } from './helpers/random.js';
import { startSeed, type SeedProc } from './helpers/swarm.js';
import { makeTorrent, tmpDir, writeFiles } from './helpers/torrent.js';

const seeds: SeedProc[] = [];
after(() => seeds.forEach((s) => s.stop()));

test('RC4 matches the published test vectors', () => {
  const enc = (key: string, text: string): string => new Rc4(Buffer.from(key), 0).update(Buffer.from(text)).toString('hex');
  assert.equal(enc('Key', 'Plaintext'), 'bbf316e8d940af0ad3');
  assert.equal(enc('Wiki', 'pedia'), '1021bf0420');
  assert.equal(enc('Secret', 'Attack at dawn'), '45a01f645fc35b383552544b9bf5');
  // the stream continues across calls, and in-place updates give the same bytes
  const a = new Rc4(Buffer.from('k'));
  const b = new Rc4(Buffer.from('k'));
  const data = randomBytes(1000);
  const whole = a.update(data);
  const copy = Buffer.from(data);
  b.update(copy.subarray(0, 333), copy.subarray(0, 333));
  b.update(copy.subarray(333), copy.subarray(333));
  assert.deepEqual(copy, whole);
});

interface Pipe {
  init: MseResult | null;
  resp: MseResult | null;
  /** what each side sent after its handshake, as the other side decoded it */
  toResp: Buffer;
  toInit: Buffer;
}

/**
 * Runs both handshakes against each other, delivering bytes in chunks from `chunker`, then sends
 * `payload` each way through the chosen method, and returns what arrived.
 */
function handshake(provide: number, chunker: (b: Buffer) => Buffer[], allowPlaintext = true, payload = Buffer.from('after the handshake')): Pipe {
  const skey = createHash('sha1').update('torrent').digest();
  const toResp: Buffer[] = [];
  const toInit: Buffer[] = [];
  const initiator = new MseInitiator({ infoHash: skey, provide, send: (b) => toResp.push(b) });
  const responder = new MseResponder({ skeys: [randomBytes(20), skey], allowPlaintext, send: (b) => toInit.push(b) });
  const p: Pipe = { init: null, resp: null, toResp: Buffer.alloc(0), toInit: Buffer.alloc(0) };
  for (let round = 0; round < 10 && (p.init === null || p.resp === null); round++) {
    for (const c of chunker(Buffer.concat(toResp.splice(0)))) if (p.resp === null) p.resp = responder.push(c);
    for (const c of chunker(Buffer.concat(toInit.splice(0)))) if (p.init === null) p.init = initiator.push(c);
  }
  assert.ok(p.init && p.resp, 'both sides finish');
  const carry = (from: MseResult, to: MseResult, b: Buffer): Buffer => {
    const wire = from.encrypt ? from.encrypt.update(b) : b;
    return to.decrypt ? to.decrypt.update(wire) : wire;
  };
  p.toResp = carry(p.init, p.resp, payload);
  p.toInit = carry(p.resp, p.init, payload);
  return p;
}

test('MSE: initiator and responder agree, whole, byte by byte and in random chunks', () => {
  const seed = seedFromEnv();
  const r = rng(seed);
  const chunkers: Array<[string, (b: Buffer) => Buffer[]]> = [
    ['whole', (b) => (b.length ? [b] : [])],
    ['1-byte', (b) => [...b].map((x) => Buffer.from([x]))],
    ['random', (b) => randomChunks(r, b)],
  ];
  for (const [name, chunker] of chunkers) {
    for (const [provide, allowPlain, method] of [
      [CRYPTO_PLAINTEXT | CRYPTO_RC4, true, 'plaintext'],
      [CRYPTO_PLAINTEXT | CRYPTO_RC4, false, 'rc4'],
      [CRYPTO_RC4, true, 'rc4'],
      [CRYPTO_PLAINTEXT, true, 'plaintext'],
    ] as const) {
      const p = handshake(provide, chunker, allowPlain);
      const where = `${name}, provide ${provide}, seed ${seed}`;
      assert.equal(p.init!.encrypt === null ? 'plaintext' : 'rc4', method, where);
      assert.equal(p.resp!.encrypt === null ? 'plaintext' : 'rc4', method, where);
      assert.equal(p.resp!.infoHash.toString('hex'), createHash('sha1').update('torrent').digest('hex'), where);
      assert.equal(p.toResp.toString(), 'after the handshake', where);
      assert.equal(p.toInit.toString(), 'after the handshake', where);
    }
  }
});

/** A valid public key, as a responder sends it first. */
function responderKey(): Buffer {
  let key: Buffer = Buffer.alloc(0);
  const skey = randomBytes(20);
  const r = new MseResponder({ skeys: [skey], send: (b) => (key = b.subarray(0, 96)) });
  void new MseInitiator({ infoHash: skey, send: (b) => r.push(b) });
  return key;
}

/** A real initiator's handshake for `skey`, its step 3 passed through `mutate`, against a responder serving `skeys`. */
function exchange(skey: Buffer, skeys: Buffer[], mutate: (step3: Buffer) => Buffer = (b) => b, provide = CRYPTO_RC4): void {
  const toResp: Buffer[] = [];
  const toInit: Buffer[] = [];
  const init = new MseInitiator({ infoHash: skey, provide, send: (b) => toResp.push(b) });
  const resp = new MseResponder({ skeys, send: (b) => toInit.push(b) });
  resp.push(Buffer.concat(toResp.splice(0)));
  init.push(Buffer.concat(toInit.splice(0)));
  resp.push(mutate(Buffer.concat(toResp.splice(0))));
}

test('MSE: hostile handshakes fail with a reason and bounded buffering', () => {
  const skey = randomBytes(20);
  const violation = (run: () => unknown, re: RegExp): void => {
    assert.throws(run, (e: unknown) => e instanceof WireViolation && re.test(e.message), String(re));
  };
  const responder = (): MseResponder => new MseResponder({ skeys: [skey], send: () => {} });
  const P = Buffer.from('FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563', 'hex');
  const pMinus1 = Buffer.from(P);
  pMinus1[95]! -= 1;
  // keys that would force a known shared secret, and keys out of range
  for (const key of [Buffer.alloc(96), Buffer.concat([Buffer.alloc(95), Buffer.from([1])]), pMinus1, P, Buffer.alloc(96, 0xff)]) {
    violation(() => responder().push(key), /invalid Diffie-Hellman key/);
  }
  // no synchronisation hash: at most 96 + 532 bytes are buffered before giving up
  violation(() => {
    const r = responder();
    r.push(responderKey());
    for (let i = 0; i < 600; i++) r.push(Buffer.from([i & 0xff]));
  }, /no synchronisation hash within 532 bytes/);
  violation(() => exchange(skey, [randomBytes(20)]), /for a torrent we do not serve/);
  // one bit of the encrypted verification constant (after the two 20-byte hashes) flipped
  violation(() => exchange(skey, [skey], (b) => {
    const c = Buffer.from(b);
    c[40]! ^= 1;
    return c;
  }), /bad verification constant/);
  violation(() => exchange(skey, [skey], undefined, 0), /no method we accept offered/);
  // the initiator's side: a reply without the encrypted verification constant
  violation(() => {
    const init = new MseInitiator({ infoHash: skey, send: () => {} });
    init.push(responderKey());
    for (let i = 0; i < 600; i++) init.push(Buffer.from([i & 0xff]));
  }, /no reply within 520 bytes/);
});

async function fixture(name: string, size: number, pieceLength: number): Promise<{ dir: string; tf: string; data: Buffer }> {
  const r = rng(int(rng(seedFromEnv()), 0, 1e9));
  const files = [{ path: [name], data: bytes(r, size) }];
  const { bytes: tb } = makeTorrent(name, files, pieceLength, true);
  const dir = await tmpDir('tt-mse-');
  const tf = join(dir, 'x.torrent');
  await writeFile(tf, tb);
  await writeFiles(dir, name, files, true);
  return { dir, tf, data: files[0]!.data };
}

test('peer --encrypt fetches a piece from our seed over MSE, with RC4 and with plaintext', async () => {
  const { dir, tf } = await fixture('m.bin', 200_000, 32768);
  const s = await startSeed(tf, dir);
  seeds.push(s);
  for (const [method, carried] of [['rc4', 'mse-rc4'], ['plaintext', 'mse-plaintext'], ['both', 'mse-plaintext']] as const) {
    const res = await runCli(['peer', `127.0.0.1:${s.port}`, tf, '--encrypt', method, '--request', '3']);
    assert.equal(res.code, 0, res.stderr + s.stderr());
    const out = res.stdout.toString();
    assert.match(out, new RegExp(`"type":"handshake".*"encryption":"${carried}"`), method);
    assert.match(out, /"event":"piece","index":3,"length":32768,"valid":true/, method);
  }
  const bad = await runCli(['peer', '127.0.0.1:1', tf, '--encrypt', 'des']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--encrypt: expected rc4, plaintext or both/);
});

test('python-libtorrent peers that insist on encryption: a leecher downloads from our seed, and peer fetches from an lt seeder', { skip: skipUnless(hasLibtorrent(), 'python3-libtorrent') }, async () => {
  const { dir, tf, data } = await fixture('e.bin', 1_500_000, 65536);
  const s = await startSeed(tf, dir);
  seeds.push(s);
  const env = { ...process.env, LT_ENCRYPTION: 'rc4' };
  const out = join(dir, 'lt-out');
  const res = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const c = spawn(SYSTEM_PYTHON, [fileURLToPath(new URL('lt-leech.py', FIXTURES)), tf, out, `127.0.0.1:${s.port}`, '60'], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let err = '';
    c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    c.on('close', (code) => resolve({ code, err }));
  });
  assert.equal(res.code, 0, res.err + s.stderr());
  assert.deepEqual(await readFile(join(out, 'e.bin')), data);

  // the other direction: our initiator against a libtorrent that refuses plaintext
  const lt = spawn(SYSTEM_PYTHON, [fileURLToPath(new URL('lt-seed.py', FIXTURES)), tf, dir, '1'], { stdio: ['pipe', 'pipe', 'inherit'], env });
  try {
    const port = await new Promise<number>((resolve) => createInterface({ input: lt.stdout! }).once('line', (l) => resolve(Number(l))));
    const plain = await runCli(['peer', `127.0.0.1:${port}`, tf, '--request', '1', '--timeout', '5']);
    assert.notEqual(plain.code, 0, 'a plaintext handshake is refused');
    const enc = await runCli(['peer', `127.0.0.1:${port}`, tf, '--encrypt', 'rc4', '--request', '1']);
    assert.equal(enc.code, 0, enc.stderr + enc.stdout.toString());
    assert.match(enc.stdout.toString(), /"encryption":"mse-rc4"/);
    assert.match(enc.stdout.toString(), /"event":"piece","index":1,"length":65536,"valid":true/);
  } finally {
    lt.kill('SIGKILL');
  }
});
