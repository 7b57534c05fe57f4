/**
 * Request bookkeeping against the races real clients produce: a choke, allowed-fast and unchoke
 * in one burst, answers to requests made before a choke, re-requests answered twice. With
 * BEP 6 every request gets exactly one answer (piece or reject), choke or not; without it a
 * choke drops the requests, yet answers already on their way still arrive. Neither is a
 * protocol violation; a block nobody asked for, or one request answered twice, is.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { FetchStream } from '../src/streams/fetch.js';
import type { PieceFrame } from '../src/streams/piece-frames.js';
import type { WireMessage } from '../src/wire/protocol.js';
import { bytes, rng } from './helpers/random.js';
import { startScriptedSeeder, type Request, type ScriptedSeeder, type SeederContext } from './helpers/scripted-seeder.js';
import { makeTorrent } from './helpers/torrent.js';

const PL = 64 * 1024;
const { torrent, content } = makeTorrent('req', [{ path: ['a.bin'], data: bytes(rng(7), 6 * PL + 5000) }], PL, true);
const seeders: ScriptedSeeder[] = [];
after(async () => {
  await Promise.all(seeders.map((s) => s.close()));
});

/** Downloads the whole torrent from one scripted seeder; resolves with the swarm's log lines. */
async function fetchFrom(onMessage: (ctx: SeederContext, m: WireMessage) => void, fast = true): Promise<{ logs: string[]; seeder: ScriptedSeeder }> {
  const seeder = await startScriptedSeeder({ torrent, content, fast, onMessage });
  seeders.push(seeder);
  const f = new FetchStream(torrent, { stallTimeoutMs: 10_000, tickMs: 100 });
  const logs: string[] = [];
  f.swarm.on('log', (l) => logs.push(l));
  f.write({ ip: '127.0.0.1', port: seeder.port, source: 'cli' });
  const got = Buffer.alloc(torrent.length);
  try {
    for await (const p of f as AsyncIterable<PieceFrame>) {
      p.piece.bytes.copy(got, p.index * PL);
      p.piece.release();
    }
  } catch (e) {
    throw new Error(`${(e as Error).message}; swarm log: ${logs.join(' | ')}`);
  }
  assert.ok(got.equals(content), 'the bytes are the torrent');
  return { logs, seeder };
}

const key = (r: Request): string => `${r.index}:${r.begin}`;
const violations = (logs: string[]): string[] => logs.filter((l) => /protocol violation/.test(l));

test('BEP 6: choke, allowed-fast and unchoke in one burst, then every earlier request answered: kept, not asked twice', async () => {
  let burst = false;
  const { logs, seeder } = await fetchFrom((ctx, m) => {
    if (m.type === 'interested') ctx.send({ type: 'unchoke' });
    if (m.type !== 'request') return;
    if (!burst && ctx.requests.length >= 8) {
      burst = true;
      ctx.send({ type: 'choke' }, { type: 'allowed-fast', index: 0 }, { type: 'allowed-fast', index: 3 }, { type: 'unchoke' });
      // then the requests made before the choke are answered, as libtorrent does
      const before = ctx.requests.slice();
      setTimeout(() => ctx.send(...before.map((r) => ctx.piece(r))), 50);
      return;
    }
    const r = ctx.requests.at(-1)!;
    if (burst) setTimeout(() => ctx.send(ctx.piece(r)), 60);
  });
  assert.deepEqual(violations(logs), []);
  const asked = seeder.connections[0]!.map(key);
  assert.equal(new Set(asked).size, asked.length, 'a choke under BEP 6 does not cancel requests: none is asked again');
});

test('BEP 6: choke and reject every pending request, unchoke later: the rejected blocks are asked again', async () => {
  let choked = false;
  const { logs, seeder } = await fetchFrom((ctx, m) => {
    if (m.type === 'interested') ctx.send({ type: 'unchoke' });
    if (m.type !== 'request') return;
    if (!choked && ctx.requests.length >= 8) {
      choked = true;
      ctx.send({ type: 'choke' }, ...ctx.requests.map((r) => ({ type: 'reject' as const, ...r })));
      setTimeout(() => ctx.send({ type: 'unchoke' }), 100);
      return;
    }
    if (ctx.socket.writable && choked && ctx.requests.length > 8) ctx.send(ctx.piece(ctx.requests.at(-1)!));
  });
  assert.deepEqual(violations(logs), []);
  const asked = seeder.connections[0]!.map(key);
  assert.ok(asked.length > new Set(asked).size, 'rejected requests were made again');
});

test('BEP 6: choked for good, every piece allowed fast: downloads while choked', async () => {
  const { logs } = await fetchFrom((ctx, m) => {
    if (m.type === 'interested') ctx.send(...Array.from({ length: torrent.pieceCount }, (_, index) => ({ type: 'allowed-fast' as const, index })));
    if (m.type === 'request') ctx.send(ctx.piece(ctx.requests.at(-1)!));
  });
  assert.deepEqual(violations(logs), []);
});

test('without BEP 6: choke and unchoke in a burst, then both the old and the repeated requests answered: no violation', async () => {
  let state: 'first' | 'choked' | 'serve' = 'first';
  const { logs, seeder } = await fetchFrom((ctx, m) => {
    if (m.type === 'interested') ctx.send({ type: 'unchoke' });
    if (m.type !== 'request') return;
    if (state === 'first' && ctx.requests.length >= 8) {
      state = 'choked';
      ctx.send({ type: 'choke' }, { type: 'unchoke' });
      // the requests made before the choke were on their way: answer all of them, and the
      // repeats, once the repeats are in
      setTimeout(() => {
        state = 'serve';
        ctx.send(...ctx.requests.map((r) => ctx.piece(r)));
      }, 100);
      return;
    }
    if (state === 'serve') ctx.send(ctx.piece(ctx.requests.at(-1)!));
  }, false);
  assert.deepEqual(violations(logs), []);
  const asked = seeder.connections[0]!.map(key);
  assert.ok(asked.length > new Set(asked).size, 'without BEP 6 the choke dropped the requests: they were made again');
});

test('a block never requested, or one request answered twice, closes the connection as a violation', async () => {
  for (const twice of [false, true]) {
    const seeder = await startScriptedSeeder({
      torrent, content, fast: true,
      onMessage: (ctx, m) => {
        if (m.type === 'interested') ctx.send({ type: 'unchoke' });
        if (m.type !== 'request' || ctx.requests.length !== 1) return;
        const r = ctx.requests[0]!;
        const other = { index: 0, begin: 1000, length: 16 * 1024 }; // off the block grid: never asked
        ctx.send(ctx.piece(r), ctx.piece(twice ? r : other));
      },
    });
    seeders.push(seeder);
    const f = new FetchStream(torrent, { stallTimeoutMs: 10_000 });
    const logs: string[] = [];
    f.swarm.on('log', (l) => logs.push(l));
    f.write({ ip: '127.0.0.1', port: seeder.port, source: 'cli' });
    const deadline = Date.now() + 5000;
    while (violations(logs).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    f.destroy();
    assert.match(violations(logs)[0] ?? '', /which no request of ours is waiting for/, logs.join('\n'));
  }
});
