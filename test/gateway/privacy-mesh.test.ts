// Sharing policies on the mesh (docs/protocols/meter-aggregates-v1.md, sharing-consent-v1.md):
// four gateways — A and B of operator x, C of operator y, D of operator z. A meter paired at A shares
// with operator y at each level; C receives exactly what the level allows (raw readings messages,
// 15-minute or daily aggregates, or nothing), can verify it, and is refused anything finer. A withdrawn
// consent reaches every gateway within 2 s: nobody discloses the meter's data to y or z any more, and C
// deletes what it may no longer keep.
import '../../gateway/mesh/polyfill.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { toHex } from '../../firmware/core/bytes.js';
import { Body } from '../../firmware/core/wire/bodies.js';
import { cidText } from '../../gateway/mesh/cid.js';
import { openMessage } from '../../gateway/mesh/message.js';
import { protocols } from '../../gateway/mesh/pcid.js';
import { parseAggregate, parseReadings, type Aggregate } from '../../gateway/mesh/protocols.js';
import { httpSource, verifyAggregates, verifyHistory } from '../../gateway/mesh/verify.js';
import { checkSources } from '../../gateway/privacy/aggregate.js';
import { verifyMain } from '../../host/cli/mesh.js';
import { eventually, pairDevice, sleep, startTestGateway, tempDir, type TestGateway } from './support.js';
import { rmSync } from 'node:fs';
import type { WireDevice } from './wire-device.js';
import { KeyGateway, operator } from './mesh-support.js';

/** A UTC midnight: the two frames below fall in two 15-minute windows of one day. */
const DAY = 1_700_006_400;
const SYNC_MS = 400;
let A: TestGateway, B: TestGateway, C: TestGateway, D: TestGateway;
const all = () => [A, B, C, D];

// Operators are keys (MESH.md "Trust, version 2"): each gateway trusts the other two operators, by their
// public files, which name them x, y and z (the policies below name operator y so).
const ops = { x: operator('x'), y: operator('y'), z: operator('z') };
const mesh = (name: 'x' | 'y' | 'z', peers: string[] = []) => ({
  operatorKey: ops[name].file, trustOperators: Object.entries(ops).filter(([n]) => n !== name).map(([, o]) => o.pub),
  meshListen: '/ip4/127.0.0.1/tcp/0', peers, meshSyncMs: SYNC_MS,
});

test.before(async () => {
  A = await startTestGateway(mesh('x'));
  B = await startTestGateway(mesh('x', [A.gw.meshAddr!]));
  C = await startTestGateway(mesh('y', [A.gw.meshAddr!, B.gw.meshAddr!]));
  D = await startTestGateway(mesh('z', [A.gw.meshAddr!, B.gw.meshAddr!, C.gw.meshAddr!]));
  for (const t of all()) {
    await eventually(async () => (await t.api('GET', '/api/mesh')).json.gateways.length === 4, 15_000, `${t.gw.id} knows all four identities`);
  }
});

test.after(async () => {
  for (const t of all()) await t?.close();
});

async function setPolicy(t: TestGateway, id: string, policy: unknown): Promise<void> {
  const r = await t.api('PUT', `/api/devices/${id}/privacy`, policy);
  assert.is(r.status, 200, r.text);
}

/** Waits until every gateway holds the device's latest consent as signed at A. */
async function consentEverywhere(id: string, ms = 5000): Promise<string> {
  const cid = A.gw.mesh.consentOf(id).cid;
  assert.ok(cid, 'A signed a consent message');
  for (const t of all()) await eventually(() => t.gw.mesh.consentOf(id).cid === cid, ms, `the consent of ${id} at ${t.gw.id}`);
  return cid!;
}

async function sendDay(d: WireDevice): Promise<void> {
  // One readings frame spanning two 15-minute windows (seqs 1-8), then an event (seq 9): two readings messages.
  await d.send({ type: Body.readings, first: 1, records: [
    [DAY + 10, 1, 1000], [DAY + 10, 3, 500], [DAY + 20, 1, 1003], [DAY + 20, 3, 700],
    [DAY + 910, 1, 1010], [DAY + 910, 3, 600], [DAY + 920, 1, 1012], [DAY + 920, 3, 601],
  ] });
  await d.send({ type: Body.event, seq: 9, t: DAY + 930, kind: 'power-up' });
  await d.waitAck(9);
}

async function held(t: TestGateway, id: string): Promise<{ readings: Uint8Array[]; aggregates: { cid: Uint8Array; bytes: Uint8Array; a: Aggregate }[] }> {
  const readings = (await t.gw.mesh.blocks.list('readings', id)).map((b) => b.cid);
  const aggregates = (await t.gw.mesh.blocks.list('aggregate', id)).map((b) => {
    const a = parseAggregate(openMessage(b.bytes).payload);
    if (typeof a === 'string') throw new Error(a);
    return { cid: b.cid, bytes: b.bytes, a };
  });
  return { readings, aggregates };
}

async function quietly<T>(f: () => Promise<T>): Promise<T> {
  const log = console.log;
  console.log = () => {};
  try {
    return await f();
  } finally {
    console.log = log;
  }
}

const shape = (x: { a: Aggregate }) => [x.a.resolution, x.a.start, x.a.channels, x.a.values];

const LEVELS = [
  { name: 'none', share: { level: 'none' } },
  { name: 'daily', share: { level: 'daily', purposes: ['billing'] } },
  { name: '15min', share: { level: '15min', purposes: ['grid-operations', 'research'] } },
  { name: 'full', share: { level: 'full', purposes: ['grid-operations'] } },
  { name: 'full, channels 1', share: { level: 'full', purposes: ['billing'], channels: [1] } },
] as const;

/** What operator y may receive at each level: raw messages, and the aggregates [resolution, start, channels, values]. */
const EXPECT: { [name: string]: { raw: boolean; aggregates: unknown[] } } = {
  none: { raw: false, aggregates: [] },
  daily: { raw: false, aggregates: [[86400, DAY, null, [[1, 'last', 1012, 4], [3, 'mean', 600, 4]]]] },
  // (600 + 601) / 2 = 600.5 rounds half to even: 600.
  '15min': { raw: false, aggregates: [[900, DAY, null, [[1, 'last', 1003, 2], [3, 'mean', 600, 2]]], [900, DAY + 900, null, [[1, 'last', 1012, 2], [3, 'mean', 600, 2]]]] },
  full: { raw: true, aggregates: [] },
  'full, channels 1': { raw: false, aggregates: [[900, DAY, [1], [[1, 'last', 1003, 2]]], [900, DAY + 900, [1], [[1, 'last', 1012, 2]]]] },
};

test('for each sharing level, a peer of another operator receives exactly what the level allows, and can verify it', async () => {
  const devices: { level: (typeof LEVELS)[number]; d: WireDevice }[] = [];
  for (const level of LEVELS) {
    const d = await pairDevice(A);
    await setPolicy(A, d.id, { peers: { y: level.share } });
    devices.push({ level, d });
  }
  for (const { d } of devices) await consentEverywhere(d.id);
  await Promise.all(devices.map(({ d }) => sendDay(d)));

  for (const { level, d } of devices) {
    const want = EXPECT[level.name];
    // The operator's other gateway holds the whole chain; A signed the aggregates y needs.
    await eventually(async () => (await held(B, d.id)).readings.length === 2, 10_000, `B holds the readings of ${d.id}`);
    await eventually(async () => (await held(A, d.id)).aggregates.length === want.aggregates.length, 10_000, `A signed ${want.aggregates.length} aggregates (${level.name})`);
    await eventually(async () => {
      const h = await held(C, d.id);
      return h.aggregates.length === want.aggregates.length && h.readings.length === (want.raw ? 2 : 0);
    }, 10_000, `C holds what ${level.name} allows`);
  }
  // A few more summary rounds: nothing else arrives.
  await sleep(4 * SYNC_MS);

  const pc = protocols();
  for (const { level, d } of devices) {
    const want = EXPECT[level.name];
    const atA = await held(A, d.id);
    const atC = await held(C, d.id);
    const atD = await held(D, d.id);
    assert.is(atC.readings.length, want.raw ? 2 : 0, `${level.name}: readings messages at C`);
    assert.equal(atC.aggregates.map(shape).sort(), [...want.aggregates].sort(), `${level.name}: aggregates at C`);
    assert.equal([atD.readings.length, atD.aggregates.length], [0, 0], `${level.name}: operator z (mesh: none) gets nothing`);

    // Verifiable at C: signature, signer bound to A, one chain through prev, sources that are A's readings messages.
    for (const x of atC.aggregates) {
      const m = openMessage(x.bytes);
      assert.equal(toHex(m.pcid), toHex(pc.aggregates.pcid));
      assert.ok(C.gw.mesh.identities.bound(m.kid, A.gw.id), 'signed by A');
      assert.equal(x.a.gateway, A.gw.id);
      const mine = atA.aggregates.find((y) => toHex(y.cid) === toHex(x.cid));
      assert.ok(mine, 'the same message A signed');
      // The link to the raw chain holds: A recomputes every value from the named readings messages.
      const sources = await Promise.all(x.a.sources.map((s) => A.gw.mesh.blocks.get(s)));
      assert.equal(checkSources(x.a, sources), [], 'values match their sources');
      for (const s of sources) assert.is(parseReadings(openMessage(s!).payload) instanceof Object, true);
      // ... but C may not see the sources themselves.
      for (const s of x.a.sources) assert.is(await C.gw.mesh.node!.fetchAnswer(A.gw.mesh.peerId, s), 'refused', 'a raw source is refused to C');
    }
    if (atC.aggregates.length) {
      const r = await verifyAggregates(d.id, httpSource(C.gw.httpUrl));
      assert.equal(r.problems, [], `${level.name}: gridlet verify of the aggregates at C`);
      assert.is(r.messages, atC.aggregates.length);
      assert.equal(r.signers.map((s) => s.gateway), [A.gw.id]);
      assert.equal(r.chains.length, 1, 'one chain');
      assert.equal([r.sourcesChecked, r.sourcesWithheld], [0, atC.aggregates.length], 'C cannot see the readings behind them');
      // At the operator's own gateway, `gridlet verify` recomputes every value from the readings.
      const atOwn = await verifyAggregates(d.id, httpSource(A.gw.httpUrl));
      assert.equal([atOwn.problems, atOwn.sourcesChecked], [[], atA.aggregates.length]);
      assert.is(await quietly(() => verifyMain([d.id, '--gateway', C.gw.httpUrl])), 0, 'gridlet verify at C exits 0');
    }

    // Raw readings: C may fetch them at full level only; B always; D never.
    const raw = atA.readings[0];
    const cAsk = await C.gw.mesh.node!.fetchAnswer(A.gw.mesh.peerId, raw);
    if (want.raw) assert.instance(cAsk, Uint8Array, `${level.name}: C gets a raw block`);
    else assert.is(cAsk, 'refused', `${level.name}: C is refused a raw block`);
    assert.is(await D.gw.mesh.node!.fetchAnswer(A.gw.mesh.peerId, raw), 'refused', 'D is refused a raw block');
    assert.is(await D.gw.mesh.node!.fetchAnswer(B.gw.mesh.peerId, raw), 'refused', 'B refuses D too');
    assert.instance(await B.gw.mesh.node!.fetchAnswer(A.gw.mesh.peerId, raw), Uint8Array, 'the operator\'s own gateway gets it');
    if (want.raw) {
      const r = await verifyHistory(d.id, httpSource(C.gw.httpUrl));
      assert.equal(r.problems, [], 'verify the raw chain at C');
      assert.equal(r.covered, [[1, 9]]);
    }

    // The audit log at A: every disclosure to operator y, what and why.
    const audit = (await A.api('GET', `/api/audit?device=${d.id}&limit=1000`)).json.entries as any[];
    const toY = audit.filter((e) => e.operator === ops.y.id);
    assert.ok(audit.every((e) => e.operator === ops.y.id), `${level.name}: nothing disclosed to anyone else`);
    const announced = toY.filter((e) => e.via === 'announce');
    assert.is(announced.length, want.raw ? 2 : want.aggregates.length, `${level.name}: one announce entry per message`);
    for (const e of announced) {
      assert.equal(e.purposes, [...(level.share as { purposes?: string[] }).purposes ?? []]);
      assert.is(e.kind, want.raw ? 'readings' : 'aggregate');
    }
    if (want.raw) assert.ok(toY.some((e) => e.via === 'serve' && e.cid === cidText(raw)), 'the block served to C is in the audit log');
  }
});

test('a withdrawn consent stops disclosures to other operators on every gateway within 2 s', async () => {
  const d = await pairDevice(A);
  await setPolicy(A, d.id, { peers: { y: { level: 'full' } }, mesh: { level: 'full' } });
  await consentEverywhere(d.id);
  await d.send({ type: Body.readings, first: 1, records: [[DAY + 10, 1, 1000]] });
  await d.send({ type: Body.readings, first: 2, records: [[DAY + 20, 1, 1001]] });
  await d.waitAck(2);
  for (const t of [B, C, D]) await eventually(async () => (await held(t, d.id)).readings.length === 2, 10_000, `${t.gw.id} holds both messages`);
  const cached = (await held(C, d.id)).readings[0];
  assert.instance(await D.gw.mesh.node!.fetchAnswer(C.gw.mesh.peerId, cached), Uint8Array, 'before: C serves its cached copy to D');

  // Watched in this process every 2 ms, so that no HTTP round trip or poll interval of the test lands in
  // the measurement; the clock starts when A holds the withdrawal it signed.
  const before = A.gw.mesh.consentOf(d.id).cid;
  const at = new Map<TestGateway, number>();
  const watch = setInterval(() => {
    for (const t of all()) if (!at.has(t) && t.gw.mesh.consentOf(d.id).cid !== before) at.set(t, Date.now());
  }, 2);
  // ... and C deletes what it may no longer keep.
  const deleted = (async () => {
    for (const end = Date.now() + 10_000; Date.now() < end; await sleep(2)) if ((await held(C, d.id)).readings.length === 0) return Date.now();
    return NaN;
  })();
  await setPolicy(A, d.id, { peers: { y: { level: 'none' } }, mesh: { level: 'none' } });
  const tPut = Date.now();
  const cid = A.gw.mesh.consentOf(d.id).cid;
  const gone = await deleted;
  await eventually(() => at.size === all().length, 10_000, 'the withdrawal on every gateway');
  clearInterval(watch);
  for (const t of all()) assert.is(t.gw.mesh.consentOf(d.id).cid, cid, `the withdrawal at ${t.gw.id}`);
  assert.ok(!Number.isNaN(gone), 'C deleted its copies');
  const t0 = at.get(A)!;
  const took = all().map((t) => at.get(t)! - t0);
  console.log(`consent withdrawn: held by A, B, C, D after ${took.join(', ')} ms; C's copies deleted after ${gone - t0} ms`);
  assert.ok(Math.max(...took, gone - t0) < 2000, `within 2 s: held after ${took.join(', ')} ms, deleted at C after ${gone - t0} ms`);
  // Nobody gives the meter's data to y or z any more.
  assert.is.not(await D.gw.mesh.node!.fetchAnswer(C.gw.mesh.peerId, cached) instanceof Uint8Array, true, 'C no longer serves it');
  for (const from of [A, B]) {
    assert.is(await D.gw.mesh.node!.fetchAnswer(from.gw.mesh.peerId, cached), 'refused', `${from.gw.id} refuses D`);
    assert.is(await C.gw.mesh.node!.fetchAnswer(from.gw.mesh.peerId, cached), 'refused', `${from.gw.id} refuses C`);
  }

  // New readings reach the operator's own gateway only.
  const seen: string[] = [];
  const spy = (e: { deviceId: string; cid: string }) => void (e.deviceId === d.id && seen.push(e.cid));
  C.gw.events.on('mesh-message', spy);
  D.gw.events.on('mesh-message', spy);
  await d.send({ type: Body.readings, first: 3, records: [[DAY + 30, 1, 1002]] });
  await d.waitAck(3);
  await eventually(async () => (await held(B, d.id)).readings.length === 3, 5000, 'B holds the new message');
  await sleep(4 * SYNC_MS);
  C.gw.events.off('mesh-message', spy);
  D.gw.events.off('mesh-message', spy);
  assert.equal(seen, [], 'C and D received nothing new');
  assert.equal([(await held(C, d.id)).readings.length, (await held(D, d.id)).readings.length], [0, 0]);
  const after = ((await A.api('GET', `/api/audit?device=${d.id}&limit=1000`)).json.entries as any[]).filter((e) => Date.parse(e.at) > tPut);
  assert.equal(after, [], 'no disclosure recorded after the withdrawal');
});

test('readings of a window that arrive after its aggregate was signed make a later message that supersedes it', async () => {
  const d = await pairDevice(A);
  await setPolicy(A, d.id, { peers: { y: { level: '15min' } } });
  await consentEverywhere(d.id);
  await d.send({ type: Body.readings, first: 1, records: [[DAY + 10, 3, 100], [DAY + 20, 3, 200]] });
  await d.waitAck(2);
  await eventually(async () => (await held(C, d.id)).aggregates.length === 1, 10_000, 'the first aggregate at C');
  // The meter had buffered a reading of the same window.
  await d.send({ type: Body.readings, first: 3, records: [[DAY + 30, 3, 600]] });
  await d.waitAck(3);
  await eventually(async () => (await held(C, d.id)).aggregates.length === 2, 10_000, 'the second aggregate at C');
  const [first, second] = (await held(C, d.id)).aggregates;
  assert.equal([first.a.start, second.a.start], [DAY, DAY]);
  assert.equal(first.a.values, [[3, 'mean', 150, 2]]);
  assert.equal(second.a.values, [[3, 'mean', 300, 3]], 'the later message covers every reading of the window');
  assert.is(toHex(second.a.prev!), toHex(first.cid), 'and follows the first in the chain');
  assert.ok(first.a.sources.every((s) => second.a.sources.some((x) => toHex(x) === toHex(s))), 'its sources include the earlier ones');
  assert.is(second.a.sources.length, 2);
  const r = await verifyAggregates(d.id, httpSource(A.gw.httpUrl));
  assert.equal([r.problems, r.messages, r.chains[0].windows], [[], 2, 1]);
});

test('windows left unsigned by a restart are signed after it; the consent is not signed twice', async () => {
  const dir = tempDir();
  // A long sync interval: no window is signed before the restart.
  const slow = await startTestGateway({ dataDir: dir, meshListen: '/ip4/127.0.0.1/tcp/0', meshSyncMs: 60_000 });
  let again: TestGateway | undefined;
  try {
    const d = await pairDevice(slow);
    await setPolicy(slow, d.id, { mesh: { level: 'daily', purposes: ['research'] } });
    const consent = slow.gw.mesh.consentOf(d.id).cid;
    assert.ok(consent);
    await d.send({ type: Body.readings, first: 1, records: [[DAY + 10, 1, 5], [DAY + 4000, 1, 9]] });
    await d.waitAck(2);
    assert.is((await held(slow, d.id)).aggregates.length, 0);
    await slow.stop();
    again = await startTestGateway({ dataDir: dir, meshListen: '/ip4/127.0.0.1/tcp/0', meshSyncMs: SYNC_MS });
    await eventually(async () => (await held(again!, d.id)).aggregates.length === 1, 5000, 'the day signed after the restart');
    assert.equal((await held(again, d.id)).aggregates.map(shape), [[86400, DAY, null, [[1, 'last', 9, 2]]]]);
    assert.is(again.gw.mesh.consentOf(d.id).cid, consent, 'the same consent holds');
    assert.is((await again.gw.mesh.blocks.list('consent', d.id)).length, 1);
    await sleep(3 * SYNC_MS);
    assert.is((await held(again, d.id)).aggregates.length, 1, 'signed once');
  } finally {
    await again?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a consent for a device is refused from a gateway of another operator; one naming operators by name means nothing', async () => {
  const d = await pairDevice(A);
  await setPolicy(A, d.id, { mesh: { level: 'daily' } });
  await consentEverywhere(d.id);
  // C (operator y) cannot speak for A's device: its consent would count nowhere.
  const { encodeMessage } = await import('../../gateway/mesh/message.js');
  const { consentPayload } = await import('../../gateway/mesh/protocols.js');
  const { consentOf } = await import('../../gateway/privacy/consent.js');
  const { parsePolicy } = await import('../../gateway/privacy/policy.js');
  const open = consentOf(parsePolicy({ mesh: { level: 'full' } }));
  const forged = encodeMessage(protocols().consent2.pcid, consentPayload({ device: d.id, gateway: C.gw.id, ...open, hlc: [Date.now(), 0] }), C.gw.mesh.signer);
  assert.is(await A.gw.mesh.receive(forged.bytes), 'foreign');
  assert.is(await B.gw.mesh.receive(forged.bytes), 'foreign');
  // A gateway that claims to be of operator "x" by name, enrolled by another key, is not even admitted.
  const pretender = new KeyGateway(operator('x').key);
  assert.is(await A.gw.mesh.receive(pretender.identityMessage.bytes), 'operator');
  // Version 1 (operators by name): read, never acted on, even from the device's own operator.
  const v1 = encodeMessage(protocols().consent.pcid, consentPayload({
    device: d.id, gateway: B.gw.id, ...consentOf(parsePolicy({ peers: { y: { level: 'full' } } })), hlc: [Date.now(), 1],
  }), B.gw.mesh.signer);
  assert.is(await A.gw.mesh.receive(v1.bytes), 'obsolete');
  assert.is(A.gw.mesh.consentOf(d.id).policy.mesh.level, 'daily');
  assert.equal(A.gw.mesh.consentOf(d.id).policy.peers, {});
});

test.run();
