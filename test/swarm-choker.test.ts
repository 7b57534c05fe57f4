import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Choker, type ChokeCandidate } from '../src/swarm/choker.js';
import { rng, seedFromEnv } from './helpers/random.js';

const peer = (id: string, down: number, up = 0, interested = true): ChokeCandidate => ({ id, interested, downloadRate: down, uploadRate: up });

test('the best givers get the regular slots, plus one optimistic unchoke', () => {
  const c = new Choker({ slots: 2, random: () => 0 });
  const peers = [peer('a', 10), peer('b', 50), peer('c', 30), peer('d', 5), peer('e', 100, 0, false)];
  const u = c.decide(peers, false);
  assert.ok(u.has('b') && u.has('c'));
  assert.ok(!u.has('e'), 'not interested: stays choked');
  assert.equal(u.size, 3);
  assert.ok(c.optimisticPeer === 'a' || c.optimisticPeer === 'd');
});

test('seeding ranks by upload rate', () => {
  const c = new Choker({ slots: 1, random: () => 0.99 });
  const u = c.decide([peer('a', 0, 10), peer('b', 0, 99), peer('c', 0, 1)], true);
  assert.ok(u.has('b'));
  assert.equal(u.size, 2);
});

test('the optimistic slot rotates every third round and reaches everyone', () => {
  const seed = seedFromEnv();
  const c = new Choker({ slots: 1, random: rng(seed) });
  const peers = [peer('top', 1000), ...Array.from({ length: 5 }, (_, i) => peer(`p${i}`, 1))];
  const seen = new Set<string>();
  let last = '';
  for (let round = 0; round < 300; round++) {
    c.decide(peers, false);
    const o = c.optimisticPeer!;
    if (round % 3 !== 0) assert.equal(o, last, `seed ${seed}: rotated early at round ${round}`);
    last = o;
    seen.add(o);
  }
  assert.equal(seen.size, 5, `seed ${seed}`);
  assert.ok(!seen.has('top'));
});
