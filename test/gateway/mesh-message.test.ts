// Grid messages (MESH.md "Envelope"): exact bytes, both pCID forms, strict decoding, signatures, and a
// seeded fuzz of the decoder: it never crashes and never accepts a forged or truncated message.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes as nodeRandom } from 'node:crypto';
import nacl from 'tweetnacl';
import { encode, Tagged } from '../../firmware/core/cbor.js';
import { base32, equal, toHex } from '../../firmware/core/bytes.js';
import { sha256 } from '../../firmware/core/crypto.js';
import { cidOf, cidText, link, parseCidText } from '../../gateway/mesh/cid.js';
import {
  decodeMessage, encodeMessage, encodeMessageGeneric, MessageError, openMessage, PROTECTED, sigStructure, signerFromSeed, TAG_GRID, verifySignature,
} from '../../gateway/mesh/message.js';
import { protocolOf, protocols } from '../../gateway/mesh/pcid.js';
import {
  base58btc, HybridClock, identityPayload, parseIdentity, parseIdentityV2, parseReadings, parseRegistry, peerIdOf, readingsPayload, registryPayload,
} from '../../gateway/mesh/protocols.js';
import { DeviceRegistryCrdt } from '../../gateway/mesh/device-registry.js';
import { IdentityBook, kidHex } from '../../gateway/mesh/identities.js';
import { checkEnrollment, checkPossession, newOperatorKey, parseOperatorId } from '../../gateway/mesh/operator.js';
import { edwardsOf, xeddsaSign, xeddsaVerify } from '../../gateway/mesh/xeddsa.js';
import { deviceKey, KeyGateway } from './mesh-support.js';
import { readFileSync } from 'node:fs';
import { mulberry32 as rng } from '../../firmware/core/prng.js';

function signer() {
  const seed = new Uint8Array(nodeRandom(32));
  return signerFromSeed(seed, nacl.sign.keyPair.fromSeed(seed).publicKey);
}

const P = protocols();
const DEVICE = 'abcdefghijklmnop';
const GATEWAY = 'qrstuvwxyz234567';

function sample(s = signer(), prev: Uint8Array[] = []) {
  return encodeMessage(P.readings.pcid, readingsPayload({
    device: DEVICE, gateway: GATEWAY, prev,
    records: [[1, 1_700_000_000, 1, 1234], [2, 1_700_000_000, 'event', 'power-up', {}], [3, 1_700_000_001, 'gap', 5, 'full']],
  }), s);
}

test('pCIDs are the CIDs of the protocol documents\' exact bytes', () => {
  const bytes = readFileSync('docs/protocols/meter-readings-v1.md');
  assert.is(P.readings.text, 'b' + base32(new Uint8Array([1, 0x55, 0x12, 0x20, ...sha256(bytes)])));
  assert.ok(P.readings.text.startsWith('bafkrei'), 'CIDv1 raw sha2-256 text starts with bafkrei');
  assert.is(new Set(Object.values(P).map((p) => p.text)).size, Object.keys(P).length, 'distinct protocols');
  assert.ok(Object.keys(P).length >= 4);
  assert.is(protocolOf(P.registry.pcid), 'registry');
  assert.is(protocolOf(cidOf(new Uint8Array([1]))), undefined);
});

test('a message is grid([42(0x00 ‖ pCID), payload, 18([h\'a10127\', {4: kid}, nil, sig])]) and verifies', () => {
  const s = signer();
  const m = sample(s);
  const head = [0xda, 0x67, 0x72, 0x69, 0x64, 0x83, 0xd8, 0x2a, 0x58, 0x25, 0x00, 0x01, 0x55, 0x12, 0x20];
  assert.equal([...m.bytes.subarray(0, head.length)], head);
  assert.equal(m.bytes.subarray(head.length, head.length + 32), P.readings.pcid.subarray(4));
  assert.equal(m.cid, cidOf(m.bytes));
  const d = openMessage(m.bytes);
  assert.equal(d.kid, s.publicKey);
  assert.equal(d.pcid, P.readings.pcid);
  assert.equal(d.signable, encode([link(P.readings.pcid), d.payload]));
  // Independently: Ed25519 (tweetnacl) over the Sig_structure.
  const sig = encode(['Signature1', PROTECTED, new Uint8Array(0), d.signable]);
  assert.ok(nacl.sign.detached.verify(sig, d.signature, s.publicKey));
  assert.equal(sigStructure(d.signable), sig);
  // The message written out by hand is what the generic encoder makes of the same parts.
  assert.equal(m.bytes, encodeMessageGeneric(P.readings.pcid, d.payload, d.kid, d.signature));
  for (const n of [0, 23, 24, 255, 256, 70_000]) {
    const big = new Uint8Array(n).fill(7);
    assert.equal(sigStructure(big), encode(['Signature1', PROTECTED, new Uint8Array(0), big]), `Sig_structure of ${n} bytes`);
  }
  const r = parseReadings(d.payload);
  assert.ok(typeof r !== 'string', String(r));
  if (typeof r !== 'string') {
    assert.is(r.first, 1);
    assert.is(r.last, 5, 'a gap covers seq to its last');
    assert.equal(r.prev, []);
  }
  assert.equal(parseCidText(cidText(m.cid)), m.cid);
});

test('the pCID without its 0x00 prefix is accepted; the signature covers the bytes as received', () => {
  const s = signer();
  const payload = readingsPayload({ device: DEVICE, gateway: GATEWAY, prev: [], records: [[7, 1, 3, -5]] });
  const pcidItem = new Tagged(42, P.readings.pcid);
  const signable = encode([pcidItem, payload]);
  const sig = s.sign(sigStructure(signable));
  const bytes = encode(new Tagged(TAG_GRID, [pcidItem, payload, new Tagged(18, [PROTECTED, new Map([[4, s.publicKey]]), null, sig])]));
  const m = openMessage(bytes);
  assert.equal(m.pcid, P.readings.pcid);
  // Signing the 0x00 form and sending the bare form fails: verifiers never re-encode.
  const sig0 = s.sign(sigStructure(encode([link(P.readings.pcid), payload])));
  const swapped = encode(new Tagged(TAG_GRID, [pcidItem, payload, new Tagged(18, [PROTECTED, new Map([[4, s.publicKey]]), null, sig0])]));
  assert.not.ok(verifySignature(decodeMessage(swapped)));
});

function fault(bytes: Uint8Array): string {
  try {
    openMessage(bytes);
    return 'accepted';
  } catch (e) {
    if (e instanceof MessageError) return e.fault;
    throw e;
  }
}

test('refused: non-deterministic encodings, wrong tags, floats, bad proofs, tampering', () => {
  const s = signer();
  const m = sample(s);
  // A long-form integer for `first` (0x01 → 0x18 0x01) is not deterministic.
  const payload = encode(m.payload);
  const i = toHex(m.bytes).indexOf(toHex(encode('first')) + '01');
  assert.ok(i > 0);
  const longForm = new Uint8Array([...m.bytes.subarray(0, i / 2 + 6), 0x18, ...m.bytes.subarray(i / 2 + 6)]);
  assert.is(fault(longForm), 'malformed');
  assert.ok(payload.length > 0);
  // Unsorted keys.
  const unsorted = new Uint8Array(m.bytes);
  unsorted.set(encode('prev'), toHex(m.bytes).indexOf(toHex(encode('last'))) / 2);
  assert.is(fault(unsorted), 'malformed');
  // Another outer tag, a 2-element array, a float, trailing bytes.
  assert.is(fault(encode(new Tagged(1735551333, [1, 2, 3]))), 'envelope');
  assert.is(fault(encode(new Tagged(TAG_GRID, [1, 2]))), 'envelope');
  assert.is(fault(new Uint8Array([0xda, 0x67, 0x72, 0x69, 0x64, 0x83, 0xf9, 0x3c, 0x00, 0xa0, 0xa0])), 'malformed');
  assert.is(fault(new Uint8Array([...m.bytes, 0x00])), 'malformed');
  // A pCID that is not a CID; a payload that is not a map; a tag other than 42 in the payload.
  const bad = (pc: unknown, pl: unknown, proof?: unknown) => encode(new Tagged(TAG_GRID, [pc as never, pl as never,
    (proof ?? new Tagged(18, [PROTECTED, new Map([[4, s.publicKey]]), null, new Uint8Array(64)])) as never]));
  assert.is(fault(bad(new Tagged(42, new Uint8Array([0, 1, 2])), {})), 'pcid');
  assert.is(fault(bad(link(P.readings.pcid), [1])), 'payload');
  assert.is(fault(bad(link(P.readings.pcid), { a: new Tagged(1, 5) })), 'payload');
  assert.is(fault(bad(link(P.readings.pcid), {}, new Tagged(18, [new Uint8Array([0xa1, 0x01, 0x26]), new Map([[4, s.publicKey]]), null, new Uint8Array(64)]))), 'proof');
  assert.is(fault(bad(link(P.readings.pcid), {}, new Tagged(18, [PROTECTED, new Map([[4, s.publicKey]]), new Uint8Array(1), new Uint8Array(64)]))), 'proof');
  assert.is(fault(bad(link(P.readings.pcid), {})), 'signature');
  // Another key in kid, or one changed record value.
  const other = signer();
  const kidSwapped = new Uint8Array(m.bytes);
  kidSwapped.set(other.publicKey, toHex(m.bytes).lastIndexOf(toHex(s.publicKey)) / 2);
  assert.is(fault(kidSwapped), 'signature');
  const tampered = new Uint8Array(m.bytes);
  const at = toHex(m.bytes).indexOf(toHex(encode(1234))) / 2;
  tampered[at + 2] ^= 1;
  assert.is(fault(tampered), 'signature');
});

test('every truncation of a message is refused', () => {
  const m = sample();
  for (let n = 0; n < m.bytes.length; n++) assert.is.not(fault(m.bytes.subarray(0, n)), 'accepted', `prefix of ${n} bytes`);
});


test('fuzz: mutated messages never crash the decoder and are never accepted as anything but the original', () => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
  const rand = rng(seed);
  const s = signer();
  const originals = [sample(s), sample(s, [cidOf(new Uint8Array([1]))]), sample(s, [cidOf(new Uint8Array([1])), cidOf(new Uint8Array([2]))])];
  const iterations = 5000;
  let refused = 0;
  for (let i = 0; i < iterations; i++) {
    const o = originals[i % originals.length].bytes;
    let b: Uint8Array = new Uint8Array(o);
    const kind = Math.floor(rand() * 5);
    const pos = Math.floor(rand() * b.length);
    if (kind === 0) b[pos] ^= 1 << Math.floor(rand() * 8);
    else if (kind === 1) b[pos] = Math.floor(rand() * 256);
    else if (kind === 2) b = new Uint8Array([...b.subarray(0, pos), Math.floor(rand() * 256), ...b.subarray(pos)]);
    else if (kind === 3) b = new Uint8Array([...b.subarray(0, pos), ...b.subarray(pos + 1 + Math.floor(rand() * 8))]);
    else for (let k = 0; k < 1 + Math.floor(rand() * 6); k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    let r: string;
    try {
      r = fault(b);
    } catch (e) {
      assert.unreachable(`seed ${seed} iteration ${i}: the decoder threw ${(e as Error).stack}`);
      return;
    }
    if (r === 'accepted') assert.ok(equal(b, o), `seed ${seed} iteration ${i}: a changed message was accepted`);
    else refused++;
  }
  // Random garbage and random CBOR under the grid tag.
  for (let i = 0; i < 2000; i++) {
    const n = Math.floor(rand() * 200);
    const b = new Uint8Array(n);
    for (let k = 0; k < n; k++) b[k] = Math.floor(rand() * 256);
    if (i % 2) b.set([0xda, 0x67, 0x72, 0x69, 0x64, 0x83].slice(0, n));
    assert.is.not(fault(b), 'accepted', `seed ${seed} garbage ${i}`);
  }
  console.log(`fuzz seed ${seed}: ${iterations} mutations (${refused} refused, the rest no-ops), 2000 garbage inputs`);
});

test('gateway identity v1 still reads: binds gateway id, Ed25519 key, operator name and peer id', () => {
  const s = signer();
  const x = nacl.box.keyPair();
  const gateway = base32(sha256(x.publicKey).subarray(0, 10));
  const payload = identityPayload({ gateway, x25519: x.publicKey, ed25519: s.publicKey, operator: 'acme', peer: peerIdOf(s.publicKey), t: 1 });
  const m = openMessage(encodeMessage(P.identity.pcid, payload, s).bytes);
  const i = parseIdentity(m.payload, m.kid);
  assert.ok(typeof i !== 'string', String(i));
  assert.match(peerIdOf(s.publicKey), /^12D3KooW/);
  assert.is(base58btc(new Uint8Array([0, 0, 1])), '112');
  assert.type(parseIdentity(m.payload, signer().publicKey), 'string', 'signed by another key');
  assert.type(parseIdentity({ ...payload, gateway: GATEWAY }, s.publicKey), 'string', 'a gateway id not from the X25519 key');
  assert.type(parseIdentity({ ...payload, peer: peerIdOf(signer().publicKey) }, s.publicKey), 'string', 'another key\'s peer id');
});

test('gateway identity v2: the operator\'s enrollment and the XEdDSA proof of the X25519 key hold, and each breaks alone', () => {
  const X = newOperatorKey('acme').key;
  const g = new KeyGateway(X);
  const m = openMessage(g.identityMessage.bytes);
  assert.equal(m.pcid, P.identity2.pcid);
  const i = parseIdentityV2(m.payload, m.kid);
  if (typeof i === 'string') throw new Error(i);
  assert.is(i.operatorId, X.id);
  assert.match(X.id, /^op[a-z2-7]{52}$/);
  assert.equal(parseOperatorId(X.id), X.publicKey);
  assert.is(checkEnrollment({ ...i, signature: i.enrollment }), undefined);
  assert.ok(checkPossession(i, i.possession));
  // The operator's signature covers the name: renaming the operator breaks it.
  assert.match(checkEnrollment({ ...i, name: 'other', signature: i.enrollment })!, /signature/);
  // Another operator cannot reuse the enrollment.
  assert.match(checkEnrollment({ ...i, operator: newOperatorKey('acme').key.publicKey, signature: i.enrollment })!, /signature/);
  // The possession proof is bound to the mesh key and the enrollment time.
  assert.not.ok(checkPossession({ ...i, ed25519: signer().publicKey }, i.possession));
  assert.not.ok(checkPossession({ ...i, enrolled: i.enrolled + 1 }, i.possession));
  // XEdDSA: as Ed25519 under the Edwards form of the X25519 key; nothing else verifies.
  const msg = new TextEncoder().encode('gridlet');
  const sig = xeddsaSign(g.box.secretKey, msg);
  assert.ok(xeddsaVerify(g.box.publicKey, msg, sig));
  assert.not.ok(xeddsaVerify(nacl.box.keyPair().publicKey, msg, sig));
  assert.not.ok(xeddsaVerify(g.box.publicKey, new TextEncoder().encode('gridlet!'), sig));
  const flipped = new Uint8Array(sig);
  flipped[40] ^= 1;
  assert.not.ok(xeddsaVerify(g.box.publicKey, msg, flipped));
  assert.ok(nacl.sign.detached.verify(msg, sig, edwardsOf(g.box.publicKey)!), 'an Ed25519 verifier (tweetnacl) agrees');
  assert.is(edwardsOf(new Uint8Array(32).fill(0xff)), undefined, 'u ≥ p is refused');
  // A squatter's identity: another gateway's id and X25519 key, enrolled by a real operator, no proof.
  const squat = new KeyGateway(X, { squat: { gateway: g.gateway, x25519: g.box.publicKey } });
  const si = parseIdentityV2(openMessage(squat.identityMessage.bytes).payload, squat.signer.publicKey);
  if (typeof si === 'string') throw new Error(si);
  assert.is(checkEnrollment({ ...si, signature: si.enrollment }), undefined, 'its operator signed it');
  assert.not.ok(checkPossession(si, si.possession), 'but it cannot prove the key');
  const book = new IdentityBook(X, []);
  assert.is(book.add({ cid: squat.identityMessage.cid, kid: squat.signer.publicKey, entry: si }), 'squat');
  assert.is(book.add({ cid: g.identityMessage.cid, kid: g.signer.publicKey, entry: i }), undefined);
  assert.is(new IdentityBook(newOperatorKey('acme').key, []).add({ cid: g.identityMessage.cid, kid: g.signer.publicKey, entry: i }), 'operator',
    'an operator of the same name is another operator');
});

test('registry CRDT v2: any order gives the same state; another operator\'s pairing is a conflict, never a takeover', () => {
  const X = newOperatorKey('x').key;
  const Y = newOperatorKey('y').key;
  const dk = deviceKey();
  const device = dk.id;
  const [a, b, c] = [new KeyGateway(X), new KeyGateway(X), new KeyGateway(Y)];
  const msg = (g: KeyGateway, e: Parameters<typeof registryPayload>[0]) => {
    const m = g.sign('registry2', registryPayload(e));
    const parsed = parseRegistry(openMessage(m.bytes).payload);
    assert.ok(typeof parsed !== 'string', String(parsed));
    return { m, e: parsed as ReturnType<typeof parseRegistry> & object };
  };
  const pair = (g: KeyGateway, ms: number) => msg(g, { op: 'pair', device, key: dk.key, gateway: g.gateway, model: 'm', firmware: 'f', hlc: [ms, 0] });
  const pairA = pair(a, 1000);
  const revByB = msg(b, { op: 'revoke', device, pairing: pairA.m.cid, gateway: b.gateway, hlc: [1000, 1] });
  const revByC = msg(c, { op: 'revoke', device, pairing: pairA.m.cid, gateway: c.gateway, hlc: [1000, 2] });
  const staleRev = msg(a, { op: 'revoke', device, pairing: pairA.m.cid, gateway: a.gateway, hlc: [999, 0] });
  const pairC = pair(c, 2000);
  const pairB = pair(b, 3000);
  const build = (items: typeof pairA[], order = items.map((_, i) => i)) => {
    const book = new IdentityBook(X, [{ id: Y.id, publicKey: Y.publicKey }]);
    for (const g of [a, b, c]) {
      const i = parseIdentityV2(openMessage(g.identityMessage.bytes).payload, g.signer.publicKey);
      if (typeof i === 'string') throw new Error(i);
      assert.is(book.add({ cid: g.identityMessage.cid, kid: g.signer.publicKey, entry: i }), undefined);
    }
    const r = new DeviceRegistryCrdt(book);
    for (const k of order) {
      const x = items[k];
      const signed = { cid: x.m.cid, kid: x.m.kid, entry: x.e } as never;
      if (x.e.op === 'pair') r.addPairing(signed);
      else r.addRevocation(signed);
    }
    return r;
  };
  assert.is(build([pairA]).state(device)?.state, 'paired');
  assert.is(build([pairA, staleRev]).state(device)?.state, 'paired', 'a revocation stamped before the pairing does not count');
  assert.is(build([pairA, revByC]).state(device)?.state, 'paired', 'another operator may not revoke');
  const full = build([pairA, revByB, revByC, staleRev]).state(device);
  assert.is(full?.state, 'revoked', 'the same operator may revoke');
  for (const order of [[3, 2, 1, 0], [1, 0, 3, 2], [2, 3, 0, 1]]) assert.equal(build([pairA, revByB, revByC, staleRev], order).state(device), full);
  // A later pairing by another operator while A's stands: a conflict, A stays.
  const conflict = build([pairA, pairC]).state(device)!;
  assert.equal([conflict.state, conflict.gateway, conflict.operator], ['paired', a.gateway, X.id]);
  assert.equal(conflict.conflicts.map((x) => [x.gateway, x.operator]), [[c.gateway, Y.id]]);
  assert.equal(build([pairC, pairA], [1, 0]).state(device), conflict, 'in any order');
  // The same operator moves it: B's later pairing takes over (A's gateway then refuses the device).
  const moved = build([pairA, pairC, pairB]).state(device)!;
  assert.equal([moved.gateway, moved.operator], [b.gateway, X.id]);
  // Revoked by its operator first, then paired by another: that pairing holds.
  const after = build([pairA, revByB, pair(c, 5000)]).state(device)!;
  assert.equal([after.state, after.gateway, after.conflicts.length], ['paired', c.gateway, 0]);
  assert.ok(build([pairA, revByB, pair(c, 5000)]).holders(device).has(X.id), 'X held it before: its history is X\'s');
  // A pairing made while A's stood stays a conflict even after A is revoked later.
  const late = build([pairA, pairC, msg(b, { op: 'revoke', device, pairing: pairA.m.cid, gateway: b.gateway, hlc: [2500, 0] })]).state(device)!;
  assert.equal([late.state, late.gateway, late.conflicts.length], ['revoked', a.gateway, 1]);
  const clock = new HybridClock(() => 5);
  clock.observe([10, 3]);
  assert.equal(clock.now(), [10, 4], 'an HLC stamp is later than every stamp seen');
});

test('a key id\'s hex is remembered per array and follows its bytes when they change', () => {
  const kid = new Uint8Array(nodeRandom(32));
  assert.is(kidHex(kid), toHex(kid));
  assert.is(kidHex(kid), toHex(kid), 'again, from what was remembered');
  kid[0] ^= 0xff;
  assert.is(kidHex(kid), toHex(kid), 'the same array with other bytes');
  const view = kid.subarray(0, 16);
  assert.is(kidHex(view), toHex(view));
});

test('`gridlet mesh pcids` prints each protocol\'s pCID and document', async () => {
  const { meshMain } = await import('../../host/cli/mesh.js');
  const lines: string[] = [];
  const log = console.log;
  console.log = (l: string) => lines.push(l);
  try {
    assert.is(await meshMain(['pcids']), 0);
    assert.is(await meshMain(['pcids', '--json']), 0);
  } finally {
    console.log = log;
  }
  assert.is(lines[0], `readings   ${P.readings.text}  docs/protocols/meter-readings-v1.md`);
  assert.ok(lines.some((l) => l.startsWith('identity2 ') && l.endsWith('docs/protocols/gateway-identity-v2.md')));
  assert.equal(lines.slice(0, 4).map((l) => l.split(/\s+/)[0]), ['readings', 'registry', 'identity', 'guest']);
  assert.is(JSON.parse(lines[Object.keys(P).length]).registry.pcid, P.registry.text);
});

test.run();
