// One gateway's mesh side: a readings message per accepted frame that added records, chained through
// prev; blocks and heads over HTTP; what it does with messages from peers (verified, counted, never
// trusted blindly); records that no message carries (a crash, a store older than the mesh) get one at
// startup; `gridlet verify` reports what is wrong. The gateway is enrolled by operator x and trusts
// operator y (MESH.md "Trust, version 2").
import '../../gateway/mesh/polyfill.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import Database from 'better-sqlite3';
import { Body } from '../../firmware/core/wire/bodies.js';
import { cidOf, cidText } from '../../gateway/mesh/cid.js';
import { decodeMessage, encodeMessage, signerFromSeed } from '../../gateway/mesh/message.js';
import nacl from 'tweetnacl';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteStore } from '../../gateway/store/sqlite.js';
import { protocols } from '../../gateway/mesh/pcid.js';
import { identityPayload, parseReadings, peerIdOf, readingsPayload, registryPayload } from '../../gateway/mesh/protocols.js';
import { httpSource, verifyHistory, type HistorySource } from '../../gateway/mesh/verify.js';
import { verifyMain } from '../../host/cli/mesh.js';
import { emitRecords } from '../../gateway/records.js';
import { pairDevice, startTestGateway, tempDir, type TestGateway } from './support.js';
import { deviceKey, KeyGateway, operator } from './mesh-support.js';

const T0 = 1_700_000_000;
const P = protocols();
let t: TestGateway;
const X = operator('x');
const Y = operator('y');

test.before(async () => {
  t = await startTestGateway({ operatorKey: X.file, trustOperators: [Y.pub] });
});
test.after(async () => {
  await t.close();
});

async function block(cid: string): Promise<Uint8Array> {
  const r = await fetch(`${t.gw.httpUrl}/api/mesh/blocks/${cid}`);
  assert.is(r.status, 200);
  assert.is(r.headers.get('content-type'), 'application/cbor');
  return new Uint8Array(await r.arrayBuffer());
}

/** The device's readings messages from its first to its head, following the first parent. */
async function chainOf(deviceId: string) {
  const chain = [];
  for (let c: string | null = (await t.api('GET', `/api/mesh/heads/${deviceId}`)).json.cid; c;) {
    const r = parseReadings(decodeMessage(await block(c)).payload);
    if (typeof r === 'string') throw new Error(r);
    chain.unshift(r);
    c = r.prev.length ? cidText(r.prev[0]) : null;
  }
  return chain;
}

test('one signed message per frame that added records, hash-chained through prev', async () => {
  const d = await pairDevice(t);
  await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 10], [T0, 3, 20]] });
  await d.waitAck(2);
  await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 10], [T0, 3, 20]] }); // a resend adds nothing
  await d.send({ type: Body.event, seq: 3, t: T0, kind: 'relay', data: { id: 'r1', on: true, by: 'guest', blob: new Uint8Array([9]) } });
  await d.send({ type: Body.gap, first: 4, last: 6, reason: 'full' });
  await d.waitAck(6);
  await t.gw.mesh.settled();
  const head = (await t.api('GET', `/api/mesh/heads/${d.id}`)).json;
  assert.equal(head.heads, [head.cid]);
  const chain = [];
  for (let c: string | null = head.cid; c;) {
    const bytes = await block(c);
    assert.is(cidText(cidOf(bytes)), c, 'a block hashes to its CID');
    const m = decodeMessage(bytes);
    assert.equal(m.pcid, P.readings.pcid);
    assert.equal(m.kid, (t.gw.mesh.signer.publicKey));
    const r = parseReadings(m.payload);
    if (typeof r === 'string') throw new Error(r);
    chain.push(r);
    c = r.prev.length ? cidText(r.prev[0]) : null;
  }
  chain.reverse();
  assert.equal(chain.map((r) => [r.first, r.last]), [[1, 2], [3, 3], [4, 6]], 'three frames added records: three messages');
  assert.equal(chain[1].records, [[3, T0, 'event', 'relay', { blob: new Uint8Array([9]), by: 'guest', id: 'r1', on: true }]]);
  assert.equal(chain[2].records, [[4, chain[2].records[0][1], 'gap', 6, 'full']]);
  assert.ok(chain.every((r) => r.gateway === t.gw.id && r.device === d.id));

  assert.is((await t.api('GET', '/api/mesh/blocks/nonsense')).status, 400);
  assert.is((await t.api('GET', `/api/mesh/blocks/${cidText(cidOf(new Uint8Array([1])))}`)).status, 404);
  assert.is((await t.api('GET', '/api/mesh/heads/abcdefghijklmnop')).status, 404);
  const index = (await t.api('GET', '/api/mesh')).json;
  assert.is(index.protocols.readings.pcid, P.readings.text);
  assert.is(index.peer, peerIdOf(t.gw.mesh.signer.publicKey));
  assert.equal(index.heads[d.id], [head.cid]);
  const pairing = decodeMessage(await block(index.registry[0]));
  assert.equal([pairing.payload.op, pairing.payload.device, pairing.payload.gateway], ['pair', d.id, t.gw.id]);

  const lines: string[] = [];
  const log = console.log;
  console.log = (l: string) => lines.push(l);
  try {
    assert.is(await verifyMain([d.id, '--gateway', t.gw.httpUrl]), 0);
  } finally {
    console.log = log;
  }
  assert.match(lines.join('\n'), /3 message\(s\), 1 head\(s\)[\s\S]*seqs covered: 1-6; declared lost by the meter: 4-6; holes: none[\s\S]*acked by this gateway up to seq 6[\s\S]*ok:/);
});

test('a burst of frames still gets one message per frame, in order, each naming the one before', async () => {
  const d = await pairDevice(t);
  const events: { frames: unknown[][] }[] = [];
  const seen = (e: { deviceId: string; frames: unknown[][] }) => void (e.deviceId === d.id && events.push(e));
  t.gw.events.on('records', seen);
  const N = 40;
  await Promise.all(Array.from({ length: N }, (_, i) => d.send({ type: Body.readings, first: i + 1, records: [[T0 + i, 1, i]] })));
  await d.waitAck(N);
  await t.gw.mesh.settled();
  t.gw.events.off('records', seen);
  const chain = await chainOf(d.id);
  assert.equal(chain.map((r) => [r.first, r.last]), Array.from({ length: N }, (_, i) => [i + 1, i + 1]), 'one message per frame');
  assert.ok(chain.slice(1).every((r) => r.prev.length === 1), 'a single chain');
  assert.is(events.flatMap((e) => e.frames).length, N, 'the records events carry every frame separately');
});

test('frames that waited together for the mesh still become one message each', async () => {
  const d = await pairDevice(t);
  const got: { records: unknown[]; frames: unknown[][] }[] = [];
  const seen = (e: { deviceId: string; records: unknown[]; frames: unknown[][] }) => void (e.deviceId === d.id && got.push(e));
  t.gw.events.on('records', seen);
  // Three frames queued in the same turn, as under load: one records event carrying three frames.
  for (let i = 1; i <= 3; i++) emitRecords(t.gw.events, d.id, [[i, T0 + i, 1, i * 10]]);
  await new Promise((r) => setImmediate(r));
  t.gw.events.off('records', seen);
  assert.is(got.length, 1);
  assert.equal(got[0].frames, [[[1, T0 + 1, 1, 10]], [[2, T0 + 2, 1, 20]], [[3, T0 + 3, 1, 30]]]);
  assert.equal(got[0].records, got[0].frames.flat());
  await t.gw.mesh.settled();
  const chain = await chainOf(d.id);
  assert.equal(chain.map((r) => r.records), [[[1, T0 + 1, 1, 10]], [[2, T0 + 2, 1, 20]], [[3, T0 + 3, 1, 30]]]);
});

test('messages from peers are verified before anything is kept or trusted, and counted', async () => {
  const mesh = t.gw.mesh;
  const p = new KeyGateway(X.key);
  const dev = deviceKey();
  const pairing = (g: KeyGateway, d = dev, hlc: [number, number] = [Date.now(), 0]) =>
    g.sign('registry2', registryPayload({ op: 'pair', device: d.id, key: d.key, gateway: g.gateway, model: 'm', firmware: 'f', hlc }));
  const readings = (g: KeyGateway, prev: Uint8Array[] = [], first = 1, d = dev.id) =>
    g.sign('readings', readingsPayload({ device: d, gateway: g.gateway, prev, records: [[first, T0, 1, 1]] }));
  const pair = pairing(p);
  assert.is(await mesh.receive(pair.bytes), 'untrusted', 'no identity binds the key yet');
  assert.is((await t.api('GET', `/api/devices/${dev.id}`)).status, 404);
  assert.is(await mesh.receive(p.identityMessage.bytes), 'accepted', 'a gateway of this gateway\'s operator');
  assert.is((await t.api('GET', `/api/devices/${dev.id}`)).json.state, 'paired', 'held aside, then accepted with the identity');
  assert.is(await mesh.receive(pair.bytes), 'duplicate');
  const first = readings(p);
  assert.is(await mesh.receive(first.bytes), 'accepted');
  assert.is((await t.api('GET', `/api/mesh/heads/${dev.id}`)).json.cid, cidText(first.cid));

  const forged = new Uint8Array(readings(p, [first.cid], 2).bytes);
  forged[forged.length - 5] ^= 0x40;
  assert.is(await mesh.receive(forged), 'signature');
  assert.is(await mesh.receive(readings(p, [first.cid], 2).bytes, { expect: first.cid }), 'cid', 'not the block that was asked for');
  assert.is(await mesh.receive(forged.subarray(0, 50)), 'malformed');
  const liar = p.sign('readings', readingsPayload({ device: dev.id, gateway: t.gw.id, prev: [], records: [[9, T0, 1, 1]] }));
  assert.is(await mesh.receive(liar.bytes), 'untrusted', 'signed by a key bound to another gateway');
  const unknown = p.sign('readings', { anything: 1 });
  const opaque = encodeMessage(cidOf(new TextEncoder().encode('a protocol nobody here knows')), { anything: 1 }, p.signer);
  assert.is(await mesh.receive(opaque.bytes), 'opaque');
  assert.is(await mesh.receive(unknown.bytes), 'payload');
  assert.equal(await block(cidText(opaque.cid)), opaque.bytes, 'kept as opaque bytes and served');

  // Identities: of an operator nobody trusts, squatting another gateway's id, a forged enrollment, version 1.
  const stranger = new KeyGateway(operator('stranger').key);
  assert.is(await mesh.receive(stranger.identityMessage.bytes), 'operator');
  const squatter = new KeyGateway(Y.key, { squat: { gateway: p.gateway, x25519: p.box.publicKey } });
  assert.is(await mesh.receive(squatter.identityMessage.bytes), 'squat', 'a trusted operator cannot bind another gateway\'s id without its X25519 key');
  const impostor = new KeyGateway(X.key);
  const bad = new KeyGateway(operator('x').key);
  // Same name "x", another key: its enrollment holds for its own key only; a trust list of keys ignores names.
  assert.is(await mesh.receive(bad.identityMessage.bytes), 'operator', 'an operator called x is not operator x');
  const v1 = encodeMessage(P.identity.pcid, identityPayload({
    gateway: impostor.gateway, x25519: impostor.box.publicKey, ed25519: impostor.signer.publicKey, operator: X.key.name, peer: impostor.peer, t: 1,
  }), impostor.signer);
  assert.is(await mesh.receive(v1.bytes), 'unenrolled', 'a version-1 identity binds nothing');
  assert.is(await mesh.receive(readings(impostor, [first.cid], 2).bytes), 'untrusted');
  assert.ok(await t.metric('gridlet_mesh_refused_total', { reason: 'squat' }) >= 1);
  assert.ok(await t.metric('gridlet_mesh_refused_total', { reason: 'operator' }) >= 2);
  assert.ok(await t.metric('gridlet_mesh_refused_total', { reason: 'unenrolled' }) >= 1);

  // A gateway of a trusted partner (operator y) may not write a device of operator x, nor take it over.
  const q = new KeyGateway(Y.key);
  assert.is(await mesh.receive(q.identityMessage.bytes), 'accepted');
  assert.is(await mesh.receive(readings(q, [first.cid], 2).bytes), 'foreign', 'readings in another operator\'s chain');
  const takeover = pairing(q, dev, [Date.now() + 10, 0]);
  assert.is(await mesh.receive(takeover.bytes), 'conflict', 'a later pairing by another operator displaces nothing');
  const st = (await t.api('GET', `/api/devices/${dev.id}`)).json;
  assert.equal([st.state, st.gateway], ['paired', p.gateway]);
  assert.equal(st.conflicts.map((c: { gateway: string; operator: string }) => [c.gateway, c.operator]), [[q.gateway, Y.id]], 'the conflict is shown');
  const revByY = q.sign('registry2', registryPayload({ op: 'revoke', device: dev.id, pairing: pair.cid, gateway: q.gateway, hlc: [Date.now() + 20, 0] }));
  assert.is(await mesh.receive(revByY.bytes), 'unauthorized', 'kept (the registry holds every message), but it does not count');
  assert.is((await t.api('GET', `/api/devices/${dev.id}`)).json.state, 'paired');
  assert.ok(await t.metric('gridlet_mesh_refused_total', { reason: 'foreign' }) >= 1);
  assert.ok(await t.metric('gridlet_mesh_refused_total', { reason: 'conflict' }) >= 1);

  // Registry: a future stamp is refused; a revocation by the same operator stops new readings messages.
  const future = pairing(p, deviceKey(), [Date.now() + 600_000, 0]);
  assert.is(await mesh.receive(future.bytes), 'future');
  assert.is((await t.api('DELETE', `/api/devices/${dev.id}`, undefined, { 'content-type': 'application/json' })).json.state, 'revoked',
    'this gateway (same operator as the pairing gateway) may revoke it');
  assert.is(await mesh.receive(readings(p, [first.cid], 2).bytes), 'revoked');
  assert.is(await t.metric('gridlet_mesh_messages_received_total', { result: 'signature' }), 1);
  assert.ok(mesh.counts.received.untrusted >= 2 && mesh.counts.received.opaque === 1);

  // A partner's gateway may not revoke a pairing of this operator.
  const dev2 = deviceKey();
  const pair2 = pairing(p, dev2);
  assert.is(await mesh.receive(pair2.bytes), 'accepted');
  const rev2 = q.sign('registry2', registryPayload({ op: 'revoke', device: dev2.id, pairing: pair2.cid, gateway: q.gateway, hlc: [Date.now(), 5] }));
  assert.is(await mesh.receive(rev2.bytes), 'unauthorized');
  assert.is((await t.api('GET', `/api/devices/${dev2.id}`)).json.state, 'paired', 'it does not count');
  assert.is((await t.api('DELETE', `/api/devices/${deviceKey().id}`, undefined, { 'content-type': 'application/json' })).status, 404);
});

test('records no message carries (a crash, or a store from before the mesh) get messages at startup', async () => {
  const d = await pairDevice(t);
  await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 1], [T0, 1, 2]] });
  await d.send({ type: Body.readings, first: 3, records: [[T0, 1, 3]] });
  await d.waitAck(3);
  await t.stop();
  const db = new Database(`${t.dir}/gridlet.sqlite`);
  db.exec(`DELETE FROM mesh_log WHERE kind = 'readings'; DELETE FROM mesh_readings; DELETE FROM mesh_dangling; DELETE FROM mesh_chains;`);
  db.close();
  const again = await startTestGateway({ dataDir: t.dir });
  try {
    const src: HistorySource = {
      heads: async (id) => (await again.api('GET', `/api/mesh/heads/${id}`)).json?.heads ?? [],
      block: async (c) => {
        const res = await fetch(`${again.gw.httpUrl}/api/mesh/blocks/${c}`);
        return res.status === 200 ? new Uint8Array(await res.arrayBuffer()) : undefined;
      },
      identities: async () => (await again.api('GET', '/api/mesh')).json.gateways.map((g: { cid: string }) => g.cid),
      ackedSeq: async () => 3,
    };
    const r = await verifyHistory(d.id, src);
    assert.equal(r.problems, []);
    assert.equal(r.covered, [[1, 3]]);
    // A history with a tampered message and a missing one is reported, not trusted.
    const good = await src.heads(d.id);
    const bytes = await src.block(good[0]);
    const bad = new Uint8Array(bytes!);
    bad[bad.length - 1] ^= 1;
    const broken = await verifyHistory(d.id, { ...src, block: async (c) => (c === good[0] ? bad : src.block(c)), ackedSeq: async () => 5 });
    assert.match(broken.problems.join('\n'), /signature does not verify[\s\S]*acked seqs 1-5 are carried by no message/);
    const fake = cidText(cidOf(new Uint8Array([7])));
    const missing = await verifyHistory(d.id, { ...src, heads: async () => [fake] });
    assert.match(missing.problems[0], /named but not served/);
  } finally {
    await again.close();
  }
});

test('a store from before trust v2 (a version-1 identity and registry): the gateway enrols its key, and its old pairings count', async () => {
  const dir = tempDir();
  const old = await startTestGateway({ dataDir: dir });
  const d = await pairDevice(old);
  await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 1]] });
  await d.waitAck(1);
  await old.stop();
  // What version 1 kept: the identity and the registry messages, as v1 messages signed by the same key.
  const keys = JSON.parse(readFileSync(join(dir, 'identity.json'), 'utf8'));
  const seed = Uint8Array.from(Buffer.from(keys.ed25519Seed, 'hex'));
  const signer = signerFromSeed(seed, nacl.sign.keyPair.fromSeed(seed).publicKey);
  const box = nacl.box.keyPair.fromSecretKey(Uint8Array.from(Buffer.from(keys.x25519SecretKey, 'hex')));
  const store = new SqliteStore(join(dir, 'gridlet.sqlite'));
  const rows = [...await store.blocks.list('identity'), ...await store.blocks.list('registry')];
  await store.blocks.delete(rows.map((r) => r.cid));
  const v1id = encodeMessage(P.identity.pcid, identityPayload({
    gateway: old.gw.id, x25519: box.publicKey, ed25519: signer.publicKey, operator: 'local', peer: peerIdOf(signer.publicKey), t: 1,
  }), signer);
  await store.blocks.put({ cid: v1id.cid, bytes: v1id.bytes, kind: 'identity', deviceId: null, receivedAt: 1 });
  const v1registry: string[] = [];
  for (const r of rows.filter((x) => x.kind === 'registry')) {
    const m = encodeMessage(P.registry.pcid, decodeMessage(r.bytes).payload, signer);
    await store.blocks.put({ cid: m.cid, bytes: m.bytes, kind: 'registry', deviceId: d.id, receivedAt: 1 });
    v1registry.push(cidText(m.cid));
  }
  await store.close();
  const again = await startTestGateway({ dataDir: dir });
  try {
    const dev = (await again.api('GET', `/api/devices/${d.id}`)).json;
    assert.equal([dev.state, dev.gateway], ['paired', again.gw.id]);
    const registry = (await again.api('GET', `/api/mesh/devices/${d.id}`)).json;
    assert.equal(registry.registry, v1registry, 'the version-1 pairing counts: no new pairing message was needed');
    assert.is(cidText(again.gw.mesh.deviceState(d.id)!.pairing), v1registry[0]);
    const mesh = (await again.api('GET', '/api/mesh')).json;
    assert.equal(mesh.gateways.map((g: { gateway: string }) => g.gateway), [again.gw.id], 'one enrolled identity: its own');
    const v = await verifyHistory(d.id, httpSource(again.gw.httpUrl));
    assert.equal([v.problems, v.covered], [[], [[1, 1]]]);
  } finally {
    await again.close();
  }
});

test('gridlet verify counts only messages of gateways whose operator held the device; a foreign one in the chain is a hole', async () => {
  const holder = new KeyGateway(X.key);
  const partner = new KeyGateway(Y.key);
  const dev = deviceKey();
  const pair = holder.sign('registry2', registryPayload({ op: 'pair', device: dev.id, key: dev.key, gateway: holder.gateway, model: 'm', firmware: 'f', hlc: [1000, 0] }));
  const m1 = holder.sign('readings', readingsPayload({ device: dev.id, gateway: holder.gateway, prev: [], records: [[1, T0, 1, 1]] }));
  // The partner writes seq 2 into the holder's chain, and the holder builds on it (as a lying server would serve).
  const m2 = partner.sign('readings', readingsPayload({ device: dev.id, gateway: partner.gateway, prev: [m1.cid], records: [[2, T0, 1, 2]] }));
  const m3 = holder.sign('readings', readingsPayload({ device: dev.id, gateway: holder.gateway, prev: [m2.cid], records: [[3, T0, 1, 3]] }));
  const blocks = new Map([holder.identityMessage, partner.identityMessage, pair, m1, m2, m3].map((m) => [cidText(m.cid), m.bytes]));
  const src: HistorySource = {
    heads: async () => [cidText(m3.cid)],
    block: async (c) => blocks.get(c),
    identities: async () => [cidText(holder.identityMessage.cid), cidText(partner.identityMessage.cid)],
    ackedSeq: async () => 3,
    registry: async () => [cidText(pair.cid)],
  };
  const r = await verifyHistory(dev.id, src);
  assert.equal(r.covered, [[1, 1], [3, 3]], 'seq 2 is not covered: its message is the partner\'s');
  assert.equal(r.holes, [[2, 2]]);
  assert.equal(r.foreign, [cidText(m2.cid)]);
  assert.equal(r.holders, [{ operator: X.id, name: 'x' }]);
  assert.match(r.problems.join('\n'), /signed by gateway .* of operator op[a-z2-7]+ \("y"\), which never held the device's pairing/);
  // An identity whose proof of its X25519 key fails is reported, and binds nothing.
  const squat = new KeyGateway(Y.key, { squat: { gateway: holder.gateway, x25519: holder.box.publicKey } });
  blocks.set(cidText(squat.identityMessage.cid), squat.identityMessage.bytes);
  const r2 = await verifyHistory(dev.id, { ...src, identities: async () => [...(await src.identities()), cidText(squat.identityMessage.cid)] });
  assert.match(r2.problems.join('\n'), /does not prove it holds the X25519 key/);
});

test.run();
