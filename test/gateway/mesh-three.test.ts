// Three gateways on loopback forming a mesh (MESH.md), all enrolled by one operator key (MESH.md "Trust,
// version 2"): data accepted at one is fetchable and verifiable at the others; a revocation at any one
// takes effect at all three within 2 s; a partition and heal merges the histories of a device both
// sides accepted.
import '../../gateway/mesh/polyfill.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Body } from '../../firmware/core/wire/bodies.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR, MANIFEST_DIR } from '../../guests/build.js';
import { parseCidText } from '../../gateway/mesh/cid.js';
import { httpSource, verifyHistory } from '../../gateway/mesh/verify.js';
import { eventually, pairDevice, sleep, startTestGateway, type TestGateway } from './support.js';
import { WireDevice } from './wire-device.js';
import { operator } from './mesh-support.js';

const T0 = 1_700_000_000;
let A: TestGateway, B: TestGateway, C: TestGateway;
const all = () => [A, B, C];

const X = operator('x');
const mesh = (peers: string[] = []) => ({ operatorKey: X.file, meshListen: '/ip4/127.0.0.1/tcp/0', peers, meshSyncMs: 400 });

test.before(async () => {
  A = await startTestGateway(mesh());
  B = await startTestGateway(mesh([A.gw.meshAddr!]));
  C = await startTestGateway(mesh([A.gw.meshAddr!, B.gw.meshAddr!]));
  for (const t of all()) {
    assert.match(t.gw.meshAddr!, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW/);
    await eventually(async () => (await t.api('GET', '/api/mesh')).json.gateways.length === 3, 15_000, `${t.gw.id} knows all three identities`);
  }
});

test.after(async () => {
  for (const t of all()) await t?.close();
});

async function stored(t: TestGateway, deviceId: string, seq: number): Promise<void> {
  await eventually(async () => (await t.api('GET', `/api/devices/${deviceId}/readings?from=${seq}`)).json.records?.[0]?.[0] === seq,
    5000, `seq ${seq} stored at ${t.gw.id}`);
}

async function sameHeads(deviceId: string, ms = 10_000): Promise<string[]> {
  let heads: string[] = [];
  await eventually(async () => {
    const r = await Promise.all(all().map((t) => t.api('GET', `/api/mesh/heads/${deviceId}`)));
    if (r.some((x) => x.status !== 200)) return false;
    heads = r[0].json.heads.slice().sort();
    return r.every((x) => JSON.stringify(x.json.heads.slice().sort()) === JSON.stringify(heads));
  }, ms, `the same heads of ${deviceId} on all three gateways`);
  return heads;
}

/**
 * When each gateway's registry first says `deviceId` is revoked (Unix ms), watched in this process every
 * 2 ms so that no HTTP round trip or poll interval of the test lands in the measurement. Settles when all
 * three have it, or after 10 s with those that do.
 */
function whenRevoked(deviceId: string): Promise<Map<TestGateway, number>> {
  const at = new Map<TestGateway, number>();
  const deadline = Date.now() + 10_000;
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      for (const t of all()) if (!at.has(t) && t.gw.mesh.deviceState(deviceId)?.state === 'revoked') at.set(t, Date.now());
      if (at.size < all().length && Date.now() < deadline) return;
      clearInterval(timer);
      resolve(at);
    }, 2);
  });
}

test('readings accepted at A are fetchable and verifiable at B and C; the registry answers the same everywhere', async () => {
  const d = await pairDevice(A);
  await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 100], [T0, 3, 250]] });
  await d.send({ type: Body.event, seq: 3, t: T0 + 1, kind: 'power-up' });
  await d.send({ type: Body.gap, first: 4, last: 5, reason: 'full' });
  await d.send({ type: Body.readings, first: 6, records: [[T0 + 2, 1, 101]] });
  await d.waitAck(6);
  const heads = await sameHeads(d.id);
  assert.is(heads.length, 1);
  for (const t of [B, C]) {
    const r = await verifyHistory(d.id, httpSource(t.gw.httpUrl));
    assert.equal(r.problems, [], `verify at ${t.gw.id}`);
    assert.is(r.messages, 4, 'one message per accepted frame that added records');
    assert.equal(r.covered, [[1, 6]]);
    assert.equal(r.declaredLost, [[4, 5]]);
    assert.equal(r.signers.map((s) => s.gateway), [A.gw.id]);
    const block = await fetch(`${t.gw.httpUrl}/api/mesh/blocks/${heads[0]}`);
    assert.is(block.headers.get('content-type'), 'application/cbor');
    const dev = (await t.api('GET', `/api/devices/${d.id}`)).json;
    assert.equal([dev.state, dev.gateway], ['paired', A.gw.id]);
  }
  const atA = await verifyHistory(d.id, httpSource(A.gw.httpUrl));
  assert.is(atA.ackedSeq, 6);
  assert.equal(atA.problems, []);
});

test('a guest published at A can be fetched by CID at C, from the peer that has it', async () => {
  const wasm = new Uint8Array(readFileSync(join(DIST_DIR, 'tou-cost.wasm')));
  const manifest = JSON.parse(readFileSync(join(MANIFEST_DIR, 'tou-cost.json'), 'utf8'));
  const r = await A.api('POST', '/api/guests', { wasm: Buffer.from(wasm).toString('base64'), manifest });
  assert.is(r.status, 201, r.text);
  await A.gw.mesh.publishGuests();
  const cid = r.json.cid as string;
  let got: Response | undefined;
  await eventually(async () => {
    const pubs = await Promise.all([B, C].map(async (t) => {
      const index = (await t.api('GET', '/api/mesh')).json;
      return index.received.accepted > 0 && (await t.gw.mesh.fetchBlock(parseCidText(cid)!)) !== undefined;
    }));
    return pubs.every(Boolean);
  }, 10_000, 'the publication and the module everywhere');
  got = await fetch(`${C.gw.httpUrl}/api/mesh/blocks/${cid}`);
  assert.is(got.headers.get('content-type'), 'application/wasm');
  assert.equal(new Uint8Array(await got.arrayBuffer()), wasm);
});

test('a revocation at any gateway takes effect at all three within 2 s', async () => {
  for (const [where, label] of [[C, 'at C, of a device paired at A'], [A, 'at A, its own device']] as const) {
    const d = await pairDevice(A);
    await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 1]] });
    await d.waitAck(1);
    await eventually(async () => {
      const s = await Promise.all(all().map((t) => t.api('GET', `/api/devices/${d.id}`)));
      return s.every((x) => x.json?.state === 'paired');
    }, 10_000, 'pairing known everywhere');
    const revokedAtA = new Promise<number>((r) => A.gw.events.once('revoked', () => r(Date.now())));
    const registries = whenRevoked(d.id);
    const r = await where.api('DELETE', `/api/devices/${d.id}`, undefined, { 'content-type': 'application/json' });
    assert.is(r.status, 200, r.text);
    const at = await registries;
    assert.equal(all().filter((t) => !at.has(t)).map((t) => t.gw.id), [], 'the revocation reached every gateway');
    // The clock starts when the revoking gateway holds its signed revocation: the HTTP request that asked
    // for it is not part of how long the revocation takes to reach the others.
    const t0 = at.get(where)!;
    const atA = (await Promise.race([revokedAtA, sleep(10_000).then(() => NaN)])) - t0;
    const took = all().map((t) => at.get(t)! - t0);
    console.log(`revocation ${label}: A refuses frames after ${atA} ms; revoked in the registries of A, B, C after ${took.join(', ')} ms`);
    assert.ok(atA < 2000 && Math.max(...took) < 2000, `within 2 s: A refuses frames after ${atA} ms; registries after ${took.join(', ')} ms`);
    for (const t of all()) assert.is((await t.api('GET', `/api/devices/${d.id}`)).json.state, 'revoked', `revoked at ${t.gw.id}`);
    // A refuses the device's frames from now on, and nobody takes new readings messages about it.
    const dropped = await A.metric('gridlet_frames_dropped_total', { reason: 'revoked' });
    await d.send({ type: Body.readings, first: 2, records: [[T0, 1, 2]] });
    await eventually(async () => (await A.metric('gridlet_frames_dropped_total', { reason: 'revoked' })) === dropped + 1, 3000, 'frame refused');
    assert.is(d.acked, 1);
  }
});

test('a partition and heal keep both branches of a device two sides accepted, then merge them', async () => {
  const g = await pairDevice(B);
  await g.send({ type: Body.readings, first: 1, records: [[T0, 1, 1], [T0, 1, 2], [T0, 1, 3]] });
  await g.waitAck(3);
  const base = await sameHeads(g.id);

  // A alone | B and C. The meter's buffered frames still reach B under its old session (a clone), while
  // it is re-paired at A and goes on there.
  await A.gw.mesh.isolate();
  const old = new WireDevice(B.prefix);
  Object.assign(old, { keys: g.keys, id: g.id, secret: g.secret, code: g.code, ks: g.ks, gatewayId: g.gatewayId, upCounter: g.upCounter });
  B.devices.push(old);
  await g.close();
  g.ks = undefined;
  g.reboot();
  await pairDevice(A, g);
  A.devices.push(g);
  await g.send({ type: Body.readings, first: 4, records: [[T0 + 10, 1, 4], [T0 + 10, 1, 5]] });
  // A acks only a contiguous prefix it holds (seqs 1-3 live at B), so wait for the records instead.
  await stored(A, g.id, 5);
  await old.connect(B.gw.mqttUrl, { credentials: true });
  await old.send({ type: Body.readings, first: 4, records: [[T0 + 11, 1, 40], [T0 + 11, 1, 50], [T0 + 11, 1, 60]] });
  await old.waitAck(6);
  await sleep(300);
  assert.equal((await A.api('GET', `/api/mesh/heads/${g.id}`)).json.heads.length, 1, 'A sees only its side');
  assert.is.not((await A.api('GET', `/api/mesh/heads/${g.id}`)).json.cid, (await B.api('GET', `/api/mesh/heads/${g.id}`)).json.cid);

  const healed = Date.now();
  A.gw.mesh.rejoin();
  const heads = await sameHeads(g.id, 15_000);
  assert.is(heads.length, 2, 'both branches are kept: two heads everywhere');
  console.log(`partition healed: both branches on all three after ${Date.now() - healed} ms`);
  for (const t of all()) {
    const r = await verifyHistory(g.id, httpSource(t.gw.httpUrl));
    assert.equal(r.problems, [], `verify at ${t.gw.id}`);
    assert.equal(r.covered, [[1, 6]]);
    assert.is(r.branches.length, 1);
    assert.equal(r.branches[0].at, base[0], 'the fork is at the last message both sides had');
    await eventually(async () => {
      const dev = (await t.api('GET', `/api/devices/${g.id}`)).json;
      return dev.state === 'paired' && dev.gateway === A.gw.id;
    }, 5000, `the later pairing (at A) holds at ${t.gw.id}`);
  }
  // B no longer holds the current pairing: it refuses the old session's frames.
  const droppedAtB = await B.metric('gridlet_frames_dropped_total', { reason: 'revoked' });
  await old.send({ type: Body.readings, first: 7, records: [[T0 + 12, 1, 70]] });
  await eventually(async () => (await B.metric('gridlet_frames_dropped_total', { reason: 'revoked' })) > droppedAtB, 3000, 'B refuses the superseded session');

  // The next frame at A names both heads: the branches merge.
  await g.send({ type: Body.readings, first: 7, records: [[T0 + 20, 1, 7]] });
  await stored(A, g.id, 7);
  // The readings message is signed and kept after the ack (records.ts): wait for it at A.
  await eventually(async () => (await A.api('GET', `/api/mesh/heads/${g.id}`)).json.heads?.length === 1, 5000, 'A merges the branches');
  const merged = await sameHeads(g.id);
  assert.is(merged.length, 1);
  const r = await verifyHistory(g.id, httpSource(C.gw.httpUrl));
  assert.equal(r.problems, []);
  assert.equal(r.merges, merged);
  assert.equal(r.covered, [[1, 7]]);
});

test.run();
