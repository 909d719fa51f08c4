// The core's AES-128-GCM (firmware/core/aes-gcm.ts) against Node's crypto on random keys, IVs,
// plaintexts and additional data of every length from 0 to 300 bytes, sealing and opening both ways.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { AesGcm } from '../../firmware/core/aes-gcm.js';
import { mulberry32 } from '../../firmware/core/prng.js';

function bytes(rnd: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

test('seal and open agree with Node on 600 random vectors (lengths 0–300, tags of 16 and 12 bytes)', () => {
  const rnd = mulberry32(0x6c6d73);
  for (let n = 0; n < 600; n++) {
    const len = n % 301;
    const key = bytes(rnd, 16), iv = bytes(rnd, 12), plain = bytes(rnd, len), aad = bytes(rnd, Math.floor(rnd() * 40));
    const tagLength = n % 2 ? 12 : 16;
    const c = createCipheriv('aes-128-gcm', key, iv, { authTagLength: tagLength });
    c.setAAD(aad);
    const nodeCipher = Buffer.concat([c.update(plain), c.final()]);
    const nodeTag = c.getAuthTag();

    const g = new AesGcm(key);
    const cipher = new Uint8Array(len);
    const tag = new Uint8Array(tagLength);
    g.seal(iv, aad, 0, aad.length, plain, 0, len, cipher, 0, tag, 0, tagLength);
    assert.is(Buffer.from(cipher).toString('hex'), nodeCipher.toString('hex'), `vector ${n}`);
    assert.is(Buffer.from(tag).toString('hex'), nodeTag.toString('hex'), `vector ${n}`);

    // Ours opens Node's, Node opens ours.
    const back = new Uint8Array(len);
    assert.ok(g.open(iv, aad, 0, aad.length, nodeCipher, 0, len, nodeTag, 0, tagLength, back, 0), `vector ${n}`);
    assert.is(Buffer.from(back).toString('hex'), Buffer.from(plain).toString('hex'));
    const d = createDecipheriv('aes-128-gcm', key, iv, { authTagLength: tagLength });
    d.setAAD(aad);
    d.setAuthTag(tag);
    assert.is(Buffer.concat([d.update(cipher), d.final()]).toString('hex'), Buffer.from(plain).toString('hex'));
  }
});

test('the keystream alone is AES-128-CTR from J0 + 1, as Node computes it', () => {
  const rnd = mulberry32(7);
  for (let n = 0; n < 50; n++) {
    const key = bytes(rnd, 16), iv = bytes(rnd, 12), plain = bytes(rnd, n * 7);
    const counter = Buffer.concat([Buffer.from(iv), Buffer.from([0, 0, 0, 2])]);
    const c = createCipheriv('aes-128-ctr', key, counter);
    const expected = Buffer.concat([c.update(plain), c.final()]);
    const out = new Uint8Array(plain.length);
    new AesGcm(key).decryptOnly(iv, plain, 0, plain.length, out, 0);
    assert.is(Buffer.from(out).toString('hex'), expected.toString('hex'));
  }
});

test.run();
