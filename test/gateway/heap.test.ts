// The gateway's heap headroom (gateway/heap.ts): 30 % while the heap is small, 20 % once a fleet keeps
// more than 64 MiB live, set after V8's own full collections.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DEFAULT_HEADROOM, HeapHeadroom, watchHeapHeadroom } from '../../gateway/heap.js';

const MiB = 2 ** 20;

test('the headroom follows the live heap: 20 % above 64 MiB, 30 % again only below 48 MiB', () => {
  const set: number[] = [];
  const h = new HeapHeadroom(DEFAULT_HEADROOM, (p) => set.push(p));
  assert.equal(set, [30], 'small from the start');
  h.collected(40 * MiB);
  h.collected(64 * MiB);
  assert.equal(set, [30]);
  h.collected(65 * MiB);
  assert.equal(set, [30, 20]);
  h.collected(100 * MiB);
  h.collected(50 * MiB);
  assert.equal(set, [30, 20], 'between ¾ of the bound and the bound it stays');
  h.collected(47 * MiB);
  assert.equal(set, [30, 20, 30]);
  assert.is(h.percent, 30);
});

test('a full collection of V8 itself sets it: a heap above the bound gets the large headroom', async () => {
  const set: number[] = [];
  // A bound of 1 byte: whatever survives is above it.
  const h = new HeapHeadroom({ small: 30, large: 20, largeBytes: 1 }, (p) => set.push(p));
  const stop = watchHeapHeadroom(h);
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    for (let i = 0; i < 50 && h.percent !== 20; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(set, [30, 20]);
  } finally {
    stop();
  }
});

test.run();
