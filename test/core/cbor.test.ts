import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, encode, encodeUintKeyed, Tagged, type CborValue } from '../../firmware/core/cbor.js';
import { toHex } from '../../firmware/core/bytes.js';
import { Prng } from '../../firmware/core/prng.js';

test('RFC 8949 appendix A vectors encode as published', () => {
  const cases: [unknown, string][] = [
    [0, '00'], [23, '17'], [24, '1818'], [100, '1864'], [1000, '1903e8'], [1000000, '1a000f4240'],
    [-1, '20'], [-100, '3863'], [-1000, '3903e7'], ['', '60'], ['IETF', '6449455446'],
    ['\u00fc', '62c3bc'], ['\u6c34', '63e6b0b4'], ['\ud800\udd51', '64f0908591'],
    [[], '80'], [[1, [2, 3], [4, 5]], '8301820203820405'], [false, 'f4'], [true, 'f5'], [null, 'f6'],
    [new Uint8Array([1, 2, 3, 4]), '4401020304'], [new Tagged(1, 1363896240), 'c11a514b67b0'],
    [{ a: 1, b: [2, 3] }, 'a26161016162820203'],
    [new Map<number, number>([[2, 1], [1, 2]]), 'a201020201'],
    [9007199254740991, '1b001fffffffffffff'],
  ];
  for (const [v, hex] of cases) {
    assert.is(toHex(encode(v as never)), hex, `encode ${JSON.stringify(v)}`);
  }
});

test('decode rejects truncated input, floats, indefinite lengths and lying lengths', () => {
  for (const hex of ['18', '1903', '62c3', 'f93c00', '9f01ff', '9bffffffffffffffff', 'a1', '8301', 'c1', '0000']) {
    const bytes = Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
    assert.throws(() => decode(bytes), undefined, hex);
  }
});

test('a long text string (a gateway\'s ask answer, a config value) decodes whole', () => {
  const text = 'Zählerstand 1-0:1.8.1 ✓ 𝄞 '.repeat(80);
  const bytes = encode({ answer: text });
  assert.equal(decode(bytes), { answer: text });
});

test('an object encodes as the map of its entries: keys in the order of their encodings, whatever their length or script', () => {
  const rnd = new Prng(0x5eed);
  const alphabet = ['a', 'b', 'z', 'A', '0', '_', '~', '\u00fc', '\u6c34', '\ud800\udd51'];
  const word = (ascii: boolean) => {
    const n = [0, 1, 2, 3, 5, 23, 24, 25, 30][rnd.int(9)];
    let t = '';
    for (let i = 0; i < n; i++) t += alphabet[rnd.int(ascii ? 7 : alphabet.length)];
    return t;
  };
  for (let round = 0; round < 300; round++) {
    const ascii = round % 3 !== 0;
    const o: { [k: string]: unknown } = {};
    const n = rnd.int(9);
    for (let i = 0; i < n; i++) o[word(ascii)] = rnd.int(3) === 0 ? word(!ascii) : rnd.range(-1000, 1000);
    const asMap = new Map(Object.entries(o));
    // The Map path sorts keys by their encoded bytes, one by one.
    assert.is(toHex(encode(o as never)), toHex(encode(asMap as never)), JSON.stringify(o));
    assert.equal(decode(encode(o as never)), o);
  }
});

test('a map with unsigned keys in order encodes as the same Map does, without one; out of order it is sorted', () => {
  const rng = new Prng(7);
  for (let n = 0; n < 300; n++) {
    const keys: number[] = [];
    const values: CborValue[] = [];
    let k = rng.int(3);
    for (let i = 0; i < rng.int(8); i++) {
      keys.push(k);
      values.push(i % 3 === 0 ? rng.int(1 << 20) : i % 3 === 1 ? 'v' + i : [rng.int(100), new Uint8Array(rng.int(40))]);
      k += 1 + rng.int(300);
    }
    const viaMap = encode(new Map(keys.map((key, i) => [key, values[i]])));
    assert.equal(encodeUintKeyed(keys, values), viaMap, `keys ${keys.join(',')}`);
    if (keys.length > 1) {
      const rev = [...keys].reverse();
      assert.equal(encodeUintKeyed(rev, [...values].reverse()), viaMap, 'reversed keys: the same map');
    }
  }
  assert.throws(() => encodeUintKeyed([1, 1], [1, 2]), /duplicate map key 1/);
  assert.throws(() => encodeUintKeyed([0], ['x'.repeat(100)], 50), /exceeds 50 bytes/);
});

test('encodes share a buffer, never their results: each result stays as made, large or nested', () => {
  const first = encode({ a: 1, b: 'x'.repeat(30) });
  const copy = new Uint8Array(first);
  const big = encode(new Uint8Array(5000).fill(7));
  assert.is(big.length, 5003);
  const second = encode({ a: 2, b: 'y'.repeat(30) });
  assert.equal(first, copy, 'the first result is not overwritten by later encodes');
  assert.equal(decode(second), { a: 2, b: 'y'.repeat(30) });
  assert.equal(decode(big), new Uint8Array(5000).fill(7));
  // An encode that starts inside another (a getter of the value being encoded) gets its own buffer.
  let inner: Uint8Array | undefined;
  const outer = encode({ get a() { inner = encode(['inner', 1, 2, 3]); return 'outer'; } } as never);
  assert.equal(decode(outer), { a: 'outer' });
  assert.equal(decode(inner!), ['inner', 1, 2, 3]);
  // A failed encode leaves nothing behind for the next one.
  assert.throws(() => encode([1, 1.5]), /non-integer/);
  assert.equal(decode(encode([1, 2])), [1, 2]);
});

test.run();
