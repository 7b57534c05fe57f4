import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BLOCK } from '../src/swarm/picker.js';
import { MAX_QUEUE, MIN_QUEUE, RequestQueue } from '../src/swarm/request-queue.js';

test('request queue: slow start grows by one per block until the rate stops growing, then follows the rate', () => {
  const q = new RequestQueue(3);
  const start = q.size;
  assert.ok(q.inSlowStart);
  q.onTick(0); // nothing received yet: unchanged
  assert.equal(q.size, start);
  for (let i = 0; i < 100; i++) q.onBlock();
  assert.equal(q.size, start + 100, 'one more request per block received');
  // the rate grows by more than 10% a tick: still in slow start, never cut back below its size
  q.onTick(10 * BLOCK);
  q.onTick(20 * BLOCK);
  assert.ok(q.inSlowStart);
  assert.equal(q.size, start + 100);
  // flat: slow start ends, and the queue is 3 s of the rate from now on
  q.onTick(21 * BLOCK);
  assert.ok(!q.inSlowStart);
  assert.equal(q.size, 63);
  q.onBlock();
  assert.equal(q.size, 63, 'no growth per block after slow start');
  q.onTick(1000 * BLOCK);
  assert.equal(q.size, MAX_QUEUE);
  q.onTick(1);
  assert.equal(q.size, MIN_QUEUE);
});

test('request queue: slow start never passes the maximum', () => {
  const q = new RequestQueue();
  for (let i = 0; i < 2 * MAX_QUEUE; i++) q.onBlock();
  assert.equal(q.size, MAX_QUEUE);
});
