import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { useRandom, boxKeyPair, randomBytes } from '../../firmware/core/crypto.js';
import { Body, decodeBody, encodeBody, BodyError, UPLINK_TYPES, DOWNLINK_TYPES } from '../../firmware/core/wire/bodies.js';
import { Direction, ReplayWindow, openBox, parseFrame, sealFrame } from '../../firmware/core/wire/frame.js';
import {
  buildPairAccept, decodeHello, decodePairAccept, encodeHello, encodePairAccept, formatPairCode, idFromPublicKey,
  normalizePairCode, pairKey, pairSecretFromRandom, sessionKey, verifyPairAccept,
} from '../../firmware/core/wire/pairing.js';
import { sha256 } from '../../firmware/core/crypto.js';
import { parseTopic, topics, TopicKind } from '../../firmware/core/wire/topics.js';
import { base32, toHex, utf8Encode } from '../../firmware/core/bytes.js';

// A deterministic Random for tests (xorshift32): the same seed gives the same keys on Node and XS.
let state = 0x9e3779b9;
useRandom({ fill(b: Uint8Array) { for (let i = 0; i < b.length; i++) { state ^= state << 13; state ^= state >>> 17; state ^= state << 5; b[i] = state & 0xff; } } });

test('base32 follows RFC 4648 test vectors, lower case, no padding', () => {
  const vec: [string, string][] = [['', ''], ['f', 'my'], ['fo', 'mzxq'], ['foo', 'mzxw6'], ['foob', 'mzxw6yq'], ['fooba', 'mzxw6ytb'], ['foobar', 'mzxw6ytboi']];
  for (const [a, b] of vec) assert.is(base32(utf8Encode(a)), b);
});

test('device id is 16 base32 characters of sha256(public key)', () => {
  const kp = boxKeyPair();
  const id = idFromPublicKey(kp.publicKey);
  assert.is(id.length, 16);
  assert.is(id, base32(sha256(kp.publicKey).subarray(0, 10)));
  assert.equal(parseTopic('gl', topics.up('gl', id)), { kind: TopicKind.up, id });
  assert.is(parseTopic('gl', 'gl/v1/d/NOTANID/up'), undefined);
  assert.is(parseTopic('gl', 'gl/v1/hello/' + id + '/x'), undefined);
});

test('pair code: 10 characters, shown grouped, accepted in any case with or without the dash', () => {
  const secret = pairSecretFromRandom(randomBytes(7));
  assert.match(secret, /^[a-z2-7]{10}$/);
  const shown = formatPairCode(secret);
  assert.match(shown, /^[A-Z2-7]{5}-[A-Z2-7]{5}$/);
  assert.is(normalizePairCode(shown), secret);
  assert.is(normalizePairCode(shown.toLowerCase().replace('-', '')), secret);
  assert.is(normalizePairCode('12345-67890'), undefined);
});

test('every body type round-trips and malformed bodies are refused with a reason', () => {
  const cid = new Uint8Array(36).fill(7);
  const bodies = [
    { type: Body.readings, first: 1, records: [[1700000000, 1, 123456], [1700000000, 3, -5]] },
    { type: Body.event, seq: 9, t: 0, kind: 'power-up', data: { off_s: 12 } },
    { type: Body.event, seq: 10, t: 5, kind: 'clock-set' },
    { type: Body.status, t: 1, uptime: 2, buffered: 3, dropped: 0, heap: 5000, guests: [['peak-guard', cid, 'running']], link: 'primary' },
    { type: Body.job, job: 1, kind: 'llm.generate', input: { prompt: 'hi', max_tokens: 20 } },
    { type: Body.paired, firmware: '0.1.0', model: 'sim' },
    { type: Body.guestAck, cid, state: 'rejected', reason: 'hash mismatch' },
    { type: Body.gap, first: 3, last: 7, reason: 'full' },
    { type: Body.downAck, counter: 4 },
    { type: Body.ack, seq: 100 },
    { type: Body.config, values: { tz: 'CET-1CEST,M3.5.0,M10.5.0/3' } },
    { type: Body.guestOffer, name: 'peak-guard', cid, manifest: { name: 'peak-guard' }, size: 1000 },
    { type: Body.guestChunk, cid, offset: 0, bytes: new Uint8Array(10) },
    { type: Body.guestRemove, name: 'x' },
    { type: Body.drEvent, id: 'e1', start: 10, duration: 60, level: 2, modification: 0, window: 30 },
    { type: Body.jobResult, job: 1, index: 0, text: 'ok', final: true },
    { type: Body.time, time: 1700000000 },
    { type: Body.unpair },
    { type: Body.tariff, price: 25000, currency: 'EUR', from: 1, until: 2 },
  ];
  for (const b of bodies) {
    const bytes = encodeBody(b as never);
    assert.equal(decodeBody(bytes), b, `type ${b.type}`);
    const dir = UPLINK_TYPES.includes(b.type) ? UPLINK_TYPES : DOWNLINK_TYPES;
    assert.ok(decodeBody(bytes, dir));
  }
  assert.throws(() => decodeBody(encodeBody({ type: Body.ack, seq: 1 }), UPLINK_TYPES), (e: Error) => e instanceof BodyError);
  // readings with a float, a missing field, a wrong record shape
  assert.throws(() => decodeBody(Uint8Array.from([0xa2, 0x00, 0x01, 0x01, 0x01])), /lacks field 2/);
  assert.throws(() => decodeBody(Uint8Array.from([0xa3, 0x00, 0x01, 0x01, 0x01, 0x02, 0x81, 0x82, 0x01, 0x01])), /must be \[t, channel, value\]/);
  assert.throws(() => decodeBody(Uint8Array.from([0xa1, 0x00, 0x18, 0x63])), /unknown body type 99/);
  assert.throws(() => decodeBody(Uint8Array.from([0x83, 0x01, 0x02, 0x03])), /CBOR map/);
});

test('frames seal and open; forged, replayed and stale counters are refused', () => {
  const key = randomBytes(32);
  const body = encodeBody({ type: Body.ack, seq: 5 });
  const f = sealFrame(body, 7, randomBytes(8), key, Direction.down);
  const p = parseFrame(f);
  if (typeof p === 'string') throw new Error(p);
  assert.is(p.counter, 7);
  assert.equal(openBox(p, key, Direction.down), body);
  assert.is(openBox(p, key, Direction.up), undefined, 'direction is bound into the nonce');
  assert.is(openBox(p, randomBytes(32), Direction.down), undefined);
  const tampered = f.slice();
  tampered[tampered.length - 1] ^= 1;
  const pt = parseFrame(tampered);
  assert.ok(typeof pt !== 'string' && openBox(pt, key, Direction.down) === undefined);
  assert.is(parseFrame(f.subarray(0, f.length - 3)), 'malformed');
  assert.is(parseFrame(new Uint8Array(3000)), 'oversized');

  const w = new ReplayWindow();
  assert.ok(w.check(1)); w.accept(1);
  assert.not.ok(w.check(1));
  w.accept(3);
  assert.ok(w.check(2), 'out-of-order counter inside the window');
  w.accept(2);
  assert.not.ok(w.check(2));
  w.accept(100);
  assert.ok(w.check(36), '64 below highest is still inside');
  assert.not.ok(w.check(35), 'below the window');
  assert.not.ok(w.check(3), 'old counters are refused');
  w.accept(164);
  assert.not.ok(w.check(100), 'previous highest exactly 64 below is remembered');
  const copy = ReplayWindow.from(w.highest, w.bits);
  assert.not.ok(copy.check(100));
  assert.ok(copy.check(101));
});

test('pairing: the device accepts the right code and rejects a wrong one', () => {
  const dev = boxKeyPair();
  const gw = boxKeyPair();
  const deviceId = idFromPublicKey(dev.publicKey);
  const gatewayId = idFromPublicKey(gw.publicKey);
  const secret = pairSecretFromRandom(randomBytes(7));
  const hello = encodeHello({ version: 1, publicKey: dev.publicKey, model: 'm', firmware: 'f', capabilities: ['relay:1'], bootNonce: randomBytes(16) });
  const decoded = decodeHello(hello);
  assert.is(idFromPublicKey(decoded.publicKey), deviceId);
  const n = randomBytes(24);
  const mk = (code: string) => buildPairAccept({
    helloBytes: hello, devicePublicKey: decoded.publicKey, deviceId, gatewayPublicKey: gw.publicKey,
    gatewaySecretKey: gw.secretKey, gatewayId, pairKey: pairKey(code), nonce: n,
  });
  const good = decodePairAccept(encodePairAccept(mk(secret).accept));
  const res = verifyPairAccept({ accept: good, helloHashes: [sha256(hello)], deviceId, deviceSecretKey: dev.secretKey, pairKey: pairKey(secret) });
  assert.ok(res.ok);
  if (res.ok) {
    const ksDevice = sessionKey(res.k, decoded.bootNonce, n);
    const ksGateway = sessionKey(mk(secret).k, decoded.bootNonce, n);
    assert.is(toHex(ksDevice), toHex(ksGateway));
  }
  const bad = verifyPairAccept({ accept: mk('aaaaaaaaaa').accept, helloHashes: [sha256(hello)], deviceId, deviceSecretKey: dev.secretKey, pairKey: pairKey(secret) });
  assert.not.ok(bad.ok);
  const pinned = verifyPairAccept({ accept: good, helloHashes: [sha256(hello)], deviceId, deviceSecretKey: dev.secretKey, pairKey: pairKey(secret), pinnedGatewayId: 'aaaaaaaaaaaaaaaa' });
  assert.not.ok(pinned.ok);
});

test.run();
