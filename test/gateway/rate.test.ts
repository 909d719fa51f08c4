import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventEmitter } from 'node:events';
import { TokenBuckets } from '../../gateway/rate.js';
import { compactListeners } from '../../gateway/broker.js';
import { sleep } from './support.js';

test('Hello buckets: a burst, then one per interval; a fleet that Helloed once keeps no bucket a refill time later', async () => {
  let now = 1_000_000;
  const b = new TokenBuckets(2, 10, () => now);
  assert.equal([b.take('a'), b.take('a'), b.take('a')], [true, true, false], 'a burst of 2');
  now += 10;
  assert.equal([b.take('a'), b.take('a')], [true, false], 'one more after an interval');
  for (let i = 0; i < 100; i++) b.take(`m${i}`);
  assert.is(b.size, 101);
  // 20 ms later every bucket but one is full again: the sweep after the refill time drops those.
  now += 20;
  b.take('busy');
  b.take('busy');
  await sleep(60);
  assert.is(b.size, 1, 'only the bucket still short of tokens is kept');
  assert.is(b.take('busy'), false, 'and it still limits');
  now += 20;
  await sleep(60);
  assert.is(b.size, 0);
});

test('compactListeners keeps an emitter\'s listeners, their order and once', () => {
  const e = new EventEmitter();
  const calls: string[] = [];
  for (let i = 0; i < 5; i++) e.on('end', () => calls.push(`gone${i}`));
  for (const l of e.rawListeners('end').slice(0, 3)) e.removeListener('end', l as () => void);
  e.once('end', () => calls.push('once'));
  compactListeners(e, 'end');
  assert.is(e.listenerCount('end'), 3);
  e.emit('end');
  e.emit('end');
  assert.equal(calls, ['gone3', 'gone4', 'once', 'gone3', 'gone4']);
});

test.run();
