import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decode, encode, Tagged } from '../../firmware/core/cbor.js';
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

test.run();
