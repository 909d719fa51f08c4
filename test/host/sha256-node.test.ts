// The core's SHA-256, HMAC and PBKDF2 (firmware/core/sha256.ts) against Node's OpenSSL on random inputs.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { toHex } from '../../firmware/core/bytes.js';
import { HmacSha256, pbkdf2HmacSha256, Sha256 } from '../../firmware/core/sha256.js';

test('SHA-256 and HMAC-SHA256 agree with node:crypto on 2,000 random inputs of 0–300 bytes', () => {
  for (let i = 0; i < 2000; i++) {
    const data = randomBytes(i % 301);
    const key = randomBytes(i % 97);
    const ours = new Sha256().update(data).digest();
    assert.is(toHex(ours), createHash('sha256').update(data).digest('hex'), `sha256 of ${data.length} bytes`);
    assert.is(toHex(new HmacSha256(key).mac([data])), createHmac('sha256', key).update(data).digest('hex'));
  }
});

test('PBKDF2 agrees with node:crypto for random passwords, salts, counts and lengths', () => {
  for (let i = 0; i < 40; i++) {
    const password = randomBytes(1 + (i % 70));
    const salt = randomBytes(i % 33);
    const iterations = 1 + ((i * 37) % 300);
    const length = 1 + ((i * 13) % 100);
    assert.is(toHex(pbkdf2HmacSha256(password, salt, iterations, length)),
      pbkdf2Sync(password, salt, iterations, length, 'sha256').toString('hex'));
  }
});

test.run();
