// The ingress keeps one device's messages in order by the device id in their topic (ingress.ts
// orderKey): `…/hello/<id>` and `…/d/<id>/<kind>`, anything else by its whole topic. Checked against
// the regular expression it replaced, on real topics and on random strings of the characters that matter.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { orderKey } from '../../gateway/ingress.js';
import { Prng } from '../../firmware/core/prng.js';

const reference = (topic: string) => {
  const m = /\/(?:hello\/([^/]+)|d\/([^/]+)\/[^/]+)$/.exec(topic);
  return m?.[1] ?? m?.[2] ?? topic;
};

test('device topics give the device id; others themselves', () => {
  const cases: [string, string][] = [
    ['gl/v1/hello/k7q2m9x4', 'k7q2m9x4'], ['gl/v1/d/k7q2m9x4/up', 'k7q2m9x4'], ['gl/v1/d/k7q2m9x4/lwt', 'k7q2m9x4'],
    ['/hello/a', 'a'], ['/d/a/up', 'a'], ['hello/a', 'hello/a'], ['d/a/up', 'd/a/up'], ['gl/v1/d//up', 'gl/v1/d//up'],
    ['gl/v1/d/a/', 'gl/v1/d/a/'], ['gl/v1/hello/', 'gl/v1/hello/'], ['x/dd/a/up', 'x/dd/a/up'], ['x/ahello/b', 'x/ahello/b'],
    ['', ''], ['/', '/'], ['//', '//'], ['t1/a', 't1/a'],
  ];
  for (const [topic, key] of cases) assert.is(orderKey(topic), key, topic);
});

test('the same key as the regular expression for 200,000 random topics', () => {
  const rng = new Prng(11);
  const parts = ['/', 'd', 'hello', 'a', 'k7', 'up', 'h', '//', 'dd', 'hell'];
  for (let i = 0; i < 200_000; i++) {
    let t = '';
    for (let j = rng.int(9); j >= 0; j--) t += parts[rng.int(parts.length)];
    assert.is(orderKey(t), reference(t), JSON.stringify(t));
  }
});

test.run();
