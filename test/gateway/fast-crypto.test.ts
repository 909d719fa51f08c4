// The gateway's fast crypto (gateway/sodium.ts, hash.ts, random.ts, mesh/cid.ts) gives exactly the bytes of the
// portable implementations it stands in for: a frame sealed by one opens with the other, a signature
// is the same signature, a CID the same CID; and salts from the pool never repeat.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPrivateKey, randomFillSync, sign as edSign } from 'node:crypto';
import nacl from 'tweetnacl';
import { sodium, sodiumSecretbox, sodiumSigner } from '../../gateway/sodium.js';
import { randomBytes } from '../../gateway/random.js';
import { cidOf } from '../../gateway/mesh/cid.js';
import { guestCid } from '../../firmware/core/guests/cid.js';
import { boxKeyPairFromSecret, hmac, secretbox, secretboxOpen, sha256, useHash, useSecretbox } from '../../firmware/core/crypto.js';
import { nodeHash, sha256Once } from '../../gateway/hash.js';
import { mqttPassword } from '../../firmware/core/wire/pairing.js';
import { concat } from '../../firmware/core/bytes.js';

const rand = (n: number) => randomFillSync(new Uint8Array(n));

test('sodium-native loads on this machine (else the gateway silently runs on tweetnacl)', () => {
  assert.ok(sodium, 'sodium-native did not load');
});

test('secretbox: libsodium and tweetnacl seal the same bytes and open each other\'s boxes', () => {
  const port = sodiumSecretbox!;
  for (const len of [0, 1, 31, 32, 33, 200, 1000]) {
    const m = rand(len);
    const nonce = rand(24);
    const key = rand(32);
    const theirs = nacl.secretbox(m, nonce, key);
    assert.equal(port.seal(m, nonce, key), theirs);
    assert.equal(port.open(theirs, nonce, key), m);
    const forged = theirs.slice();
    forged[forged.length - 1] ^= 1;
    assert.is(port.open(forged, nonce, key), undefined, 'a forged box does not open');
    assert.is(port.open(theirs, nonce, rand(32)), undefined, 'nor under another key');
  }
  assert.is(port.open(new Uint8Array(15), rand(24), rand(32)), undefined, 'too short for a MAC');
});

test('box.before: libsodium\'s shared key is tweetnacl\'s', () => {
  for (let i = 0; i < 5; i++) {
    const a = nacl.box.keyPair();
    const b = nacl.box.keyPair();
    assert.equal(sodiumSecretbox!.before!(b.publicKey, a.secretKey), nacl.box.before(b.publicKey, a.secretKey));
  }
  const lowOrder = new Uint8Array(32);
  const a = nacl.box.keyPair();
  assert.equal(sodiumSecretbox!.before!(lowOrder, a.secretKey), nacl.box.before(lowOrder, a.secretKey), 'a low-order key as tweetnacl answers it');
});

test('X25519 key pairs: libsodium\'s public key is tweetnacl\'s, and the core makes its pairs with the port', () => {
  for (let i = 0; i < 5; i++) {
    const sk = rand(32);
    assert.equal(sodiumSecretbox!.publicKey!(sk), nacl.box.keyPair.fromSecretKey(sk).publicKey);
  }
  const sk = rand(32);
  let asked = 0;
  useSecretbox({ ...sodiumSecretbox!, publicKey: (s) => (asked++, sodiumSecretbox!.publicKey!(s)) });
  try {
    const pair = boxKeyPairFromSecret(sk);
    assert.is(asked, 1);
    assert.equal(pair.publicKey, nacl.box.keyPair.fromSecretKey(sk).publicKey);
    assert.equal(pair.secretKey, sk);
  } finally {
    useSecretbox(undefined);
  }
  assert.equal(boxKeyPairFromSecret(sk).publicKey, nacl.box.keyPair.fromSecretKey(sk).publicKey, 'tweetnacl again without a port');
});

test('SHA-256 and HMAC: node:crypto gives the core\'s bytes for every length and split, and the core uses the port once installed', () => {
  const lengths = [0, 1, 31, 32, 55, 56, 63, 64, 65, 119, 120, 128, 200, 1000];
  const portable: [Uint8Array[], Uint8Array, Uint8Array, Uint8Array][] = [];
  for (const len of lengths) {
    const m = rand(len);
    const cut = Math.floor(len / 3);
    const parts = [m.subarray(0, cut), m.subarray(cut)];
    // Keys shorter, as long as and longer than a block (hashed first), and empty.
    const key = rand([0, 16, 32, 64, 65, 100][len % 6]);
    portable.push([parts, key, sha256(...parts), hmac(key, ...parts)]);
    assert.equal(sha256(...parts), sha256(m), 'split or whole, the same hash');
  }
  let asked = 0;
  useHash({ sha256: (p) => (asked++, nodeHash.sha256(p)), hmac: (k, p) => (asked++, nodeHash.hmac(k, p)) });
  try {
    for (const [parts, key, h, mac] of portable) {
      assert.equal(sha256(...parts), h);
      assert.equal(hmac(key, ...parts), mac);
      assert.is(sha256(...parts).constructor, Uint8Array, 'not a Buffer (whose slice() shares its bytes)');
    }
    assert.is(asked, 3 * portable.length);
    const ks = rand(32);
    const viaPort = mqttPassword(ks);
    useHash(undefined);
    assert.is(mqttPassword(ks), viaPort, 'the MQTT password a meter computes is the one the gateway expects');
  } finally {
    useHash(undefined);
  }
});

test('secretbox: the core uses the installed port, and tweetnacl again without one', () => {
  const m = rand(50);
  const nonce = rand(24);
  const key = rand(32);
  let sealed = 0;
  useSecretbox({ seal: (a, b, c) => (sealed++, sodiumSecretbox!.seal(a, b, c)), open: sodiumSecretbox!.open });
  try {
    const box = secretbox(m, nonce, key);
    assert.is(sealed, 1);
    assert.equal(box, nacl.secretbox(m, nonce, key));
    assert.equal(secretboxOpen(box, nonce, key), m);
  } finally {
    useSecretbox(undefined);
  }
  assert.equal(secretbox(m, nonce, key), nacl.secretbox(m, nonce, key));
  assert.is(sealed, 1);
});

test('Ed25519: libsodium signs exactly what node:crypto signs, under the public key of the seed', () => {
  const pkcs8 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
  for (let i = 0; i < 5; i++) {
    const seed = rand(32);
    const s = sodiumSigner(seed)!;
    assert.equal(s.publicKey, nacl.sign.keyPair.fromSeed(seed).publicKey);
    const data = rand(100 + i);
    const key = createPrivateKey({ key: Buffer.from(concat(pkcs8, seed)), format: 'der', type: 'pkcs8' });
    assert.equal(s.sign(data), new Uint8Array(edSign(null, data, key)));
  }
});

test('CIDs: SHA-256 of node:crypto gives the core\'s CID (its one-shot hash on this Node)', () => {
  assert.ok(sha256Once, 'node:crypto hash() is missing: CIDs take the slower Hash object');
  for (const len of [0, 1, 55, 56, 63, 64, 65, 300, 1000, 100_000]) {
    const b = rand(len);
    assert.equal(cidOf(b), guestCid(b));
  }
});

test('salts from the pool: the length asked, never the same twice, large draws straight from the system', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 3000; i++) {
    const s = randomBytes(8);
    assert.is(s.length, 8);
    const hex = Buffer.from(s).toString('hex');
    assert.not.ok(seen.has(hex));
    seen.add(hex);
  }
  const a = randomBytes(8);
  a.fill(0);
  assert.not.equal(randomBytes(8), new Uint8Array(8), 'a draw does not alias another');
  assert.is(randomBytes(100).length, 100);
});

test.run();
