import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TokenBuckets } from '../../gateway/rate.js';
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

test.run();
