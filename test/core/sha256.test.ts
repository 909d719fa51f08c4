import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fromHex, toHex, utf8Encode } from '../../firmware/core/bytes.js';
import { HmacSha256, pbkdf2HmacSha256, Sha256 } from '../../firmware/core/sha256.js';

const hash = (bytes: Uint8Array) => toHex(new Sha256().update(bytes).digest());

test('SHA-256 gives the FIPS 180-4 example digests', () => {
  assert.is(hash(new Uint8Array(0)), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.is(hash(utf8Encode('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.is(hash(utf8Encode('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
  const million = new Uint8Array(1_000_000).fill(0x61);
  assert.is(hash(million), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0');
});

test('SHA-256 is the same however the input is split, and a hasher is reusable after digest()', () => {
  const data = new Uint8Array(300);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
  const whole = hash(data);
  const h = new Sha256();
  for (const cut of [1, 55, 56, 63, 64, 65, 127, 128, 200]) {
    h.update(data.subarray(0, cut)).update(data.subarray(cut));
    assert.is(toHex(h.digest()), whole, `split at ${cut}`);
  }
  for (let i = 0; i < data.length; i++) h.update(data.subarray(i, i + 1));
  assert.is(toHex(h.digest()), whole, 'a byte at a time');
});

test('HMAC-SHA256 gives the RFC 4231 test vectors', () => {
  const cases: [string, string, string][] = [
    ['0b'.repeat(20), toHex(utf8Encode('Hi There')), 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
    [toHex(utf8Encode('Jefe')), toHex(utf8Encode('what do ya want for nothing?')), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
    ['aa'.repeat(20), 'dd'.repeat(50), '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe'],
    ['aa'.repeat(131), toHex(utf8Encode('Test Using Larger Than Block-Size Key - Hash Key First')), '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
  ];
  for (const [key, data, mac] of cases) assert.is(toHex(new HmacSha256(fromHex(key)).mac([fromHex(data)])), mac);
});

test('PBKDF2-HMAC-SHA256 gives the published test vectors, and refuses nonsense counts', () => {
  // RFC 7914 section 11, and RFC 6070's inputs with SHA-256.
  assert.is(toHex(pbkdf2HmacSha256(utf8Encode('passwd'), utf8Encode('salt'), 1, 64)),
    '55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783');
  assert.is(toHex(pbkdf2HmacSha256(utf8Encode('password'), utf8Encode('salt'), 2, 32)),
    'ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43');
  assert.is(toHex(pbkdf2HmacSha256(utf8Encode('password'), utf8Encode('salt'), 4096, 32)),
    'c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a');
  assert.throws(() => pbkdf2HmacSha256(utf8Encode('p'), utf8Encode('s'), 0, 32), /iteration/);
  assert.throws(() => pbkdf2HmacSha256(utf8Encode('p'), utf8Encode('s'), 1, 0), /length/);
});

test.run();
