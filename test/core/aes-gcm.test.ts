// AES-128 and GCM in the core (firmware/core/aes-gcm.ts) against published test vectors: FIPS 197
// appendix C.1 and the AES-128 cases 1–4 of McGrew & Viega, "The Galois/Counter Mode of Operation"
// (the GCM specification NIST adopted). Runs inside XS too; test/host/aes-gcm-node.test.ts compares
// random vectors with Node's crypto.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Aes128, AesGcm } from '../../firmware/core/aes-gcm.js';
import { fromHex, toHex } from '../../firmware/core/bytes.js';

test('AES-128: FIPS 197 C.1', () => {
  const aes = new Aes128(fromHex('000102030405060708090a0b0c0d0e0f'));
  const out = new Uint8Array(16);
  aes.encryptBlock(fromHex('00112233445566778899aabbccddeeff'), 0, out, 0);
  assert.is(toHex(out), '69c4e0d86a7b0430d8cdb78070b4c55a');
  // In place.
  const block = fromHex('00112233445566778899aabbccddeeff');
  aes.encryptBlock(block, 0, block, 0);
  assert.is(toHex(block), '69c4e0d86a7b0430d8cdb78070b4c55a');
  assert.throws(() => new Aes128(new Uint8Array(24)), /16 bytes, not 24/);
});

const K3 = 'feffe9928665731c6d6a8f9467308308';
const IV3 = 'cafebabefacedbaddecaf888';
const P3 = 'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255';
const C3 = '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985';
const CASES: Array<{ name: string; key: string; iv: string; plain: string; aad: string; cipher: string; tag: string }> = [
  { name: 'case 1', key: '00000000000000000000000000000000', iv: '000000000000000000000000', plain: '', aad: '', cipher: '', tag: '58e2fccefa7e3061367f1d57a4e7455a' },
  { name: 'case 2', key: '00000000000000000000000000000000', iv: '000000000000000000000000', plain: '00000000000000000000000000000000', aad: '', cipher: '0388dace60b6a392f328c2b971b2fe78', tag: 'ab6e47d42cec13bdf53a67b21257bddf' },
  { name: 'case 3', key: K3, iv: IV3, plain: P3, aad: '', cipher: C3, tag: '4d5c2af327cd64a62cf35abd2ba6fab4' },
  { name: 'case 4', key: K3, iv: IV3, plain: P3.slice(0, 120), aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2', cipher: C3.slice(0, 120), tag: '5bc94fbc3221a5db94fae95ae7121a47' },
];

test('GCM: seal gives the published ciphertext and tag', () => {
  for (const c of CASES) {
    const g = new AesGcm(fromHex(c.key));
    const plain = fromHex(c.plain);
    const aad = fromHex(c.aad);
    const out = new Uint8Array(plain.length);
    const tag = new Uint8Array(16);
    g.seal(fromHex(c.iv), aad, 0, aad.length, plain, 0, plain.length, out, 0, tag, 0, 16);
    assert.is(toHex(out), c.cipher, c.name);
    assert.is(toHex(tag), c.tag, c.name);
  }
});

test('GCM: open checks the tag (full or truncated to 12 bytes, as DLMS sends it) and decrypts', () => {
  for (const c of CASES) {
    const g = new AesGcm(fromHex(c.key));
    const cipher = fromHex(c.cipher);
    const aad = fromHex(c.aad);
    const tag = fromHex(c.tag);
    for (const length of [16, 12]) {
      const out = new Uint8Array(cipher.length);
      assert.ok(g.open(fromHex(c.iv), aad, 0, aad.length, cipher, 0, cipher.length, tag, 0, length, out, 0), `${c.name} ${length}`);
      assert.is(toHex(out), c.plain, c.name);
    }
    // Any changed bit of ciphertext, tag or additional data is refused.
    const flips: Array<[Uint8Array, string]> = [[tag, 'tag']];
    if (cipher.length) flips.push([cipher, 'ciphertext']);
    if (aad.length) flips.push([aad, 'aad']);
    for (const [bytes, what] of flips) {
      for (const at of [0, bytes.length - 1]) {
        if (bytes === tag && at >= 12) continue; // beyond the 12 bytes checked
        bytes[at] ^= 0x01;
        assert.not.ok(g.open(fromHex(c.iv), aad, 0, aad.length, cipher, 0, cipher.length, tag, 0, 12, new Uint8Array(cipher.length), 0), `${c.name}: ${what}[${at}]`);
        bytes[at] ^= 0x01;
      }
    }
  }
});

test('GCM: the keystream alone decrypts in place, and GMAC authenticates without encrypting', () => {
  const g = new AesGcm(fromHex(K3));
  const text = fromHex(C3);
  g.decryptOnly(fromHex(IV3), text, 0, text.length, text, 0);
  assert.is(toHex(text), P3);
  // GMAC: the tag over additional data only equals a seal of nothing with that data.
  const aad = fromHex('feedfacedeadbeeffeedfacedeadbeefabaddad2');
  const tag = new Uint8Array(16);
  g.seal(fromHex(IV3), aad, 0, aad.length, new Uint8Array(0), 0, 0, new Uint8Array(0), 0, tag, 0, 16);
  assert.ok(g.verify(fromHex(IV3), aad, 0, 4, aad, 4, aad.length, tag, 0, 16), 'the additional data may come in two parts');
  tag[0] ^= 0x80;
  assert.not.ok(g.verify(fromHex(IV3), aad, 0, 4, aad, 4, aad.length, tag, 0, 16));
  assert.throws(() => g.decryptOnly(new Uint8Array(16), text, 0, 1, text, 0), /12 bytes, not 16/);
});

test.run();
