// Retention (privacy/retention.ts): records past the device's retentionDays are gone from the records
// table, the raw readings messages whose records all are are gone from the block store, the heads do
// not move, and a signed tombstone (retention-tombstone-v1) stands in for them, so `gridlet verify`
// still verifies what remains. A message removed without a tombstone is a hole verify reports.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { Body } from '../../firmware/core/wire/bodies.js';
import { cidOf as cidOfBytes, cidText, parseCidText } from '../../gateway/mesh/cid.js';
import { verifyMain } from '../../host/cli/mesh.js';
import { encodeGossip } from '../../gateway/mesh/mesh.js';
import { KeyGateway, operator } from './mesh-support.js';
import { openMessage } from '../../gateway/mesh/message.js';
import { protocols } from '../../gateway/mesh/pcid.js';
import { encodeMessage } from '../../gateway/mesh/message.js';
import { parseReadings, parseTombstone, readingsPayload, tombstonePayload } from '../../gateway/mesh/protocols.js';
import { httpSource, verifyHistory, type HistorySource } from '../../gateway/mesh/verify.js';
import pino from 'pino';
import { Retention } from '../../gateway/privacy/retention.js';
import { SqliteStore } from '../../gateway/store/sqlite.js';
import { eventually, metricValue, pairDevice, startTestGateway, tempDir, type TestGateway } from './support.js';
import type { WireDevice } from './wire-device.js';

let t: TestGateway;
const DAY_S = 86_400;
/** The gateway's clock runs `offset` ms behind: frames sent meanwhile were received that long ago. */
let offset = 0;
const clock = () => Date.now() - offset;

test.before(async () => {
  t = await startTestGateway({ clock });
});

test.after(async () => {
  await t.close();
});

/**
 * Sends one readings frame (one readings message), received `ago` seconds ago by the gateway's clock,
 * and returns the message's CID once it is signed.
 */
async function frame(d: WireDevice, first: number, records: [number, number, number][], ago = 0): Promise<string> {
  offset = ago * 1000;
  const signed = new Promise<string>((resolve) => {
    const f = (e: { protocol: string; deviceId: string; cid: string }) => {
      if (e.protocol === 'readings' && e.deviceId === d.id) {
        t.gw.events.off('mesh-message', f);
        resolve(e.cid);
      }
    };
    t.gw.events.on('mesh-message', f);
  });
  await d.send({ type: Body.readings, first, records });
  await d.waitAck(first + records.length - 1);
  try {
    return await signed;
  } finally {
    offset = 0;
  }
}

async function seqs(d: WireDevice): Promise<number[]> {
  return (await t.api('GET', `/api/devices/${d.id}/readings`)).json.records.map((r: number[]) => r[0]);
}

test('records and raw messages past retention go; heads stay; a signed tombstone keeps the chain verifiable', async () => {
  const d = await pairDevice(t);
  const now = Math.floor(Date.now() / 1000);
  const old1 = await frame(d, 1, [[now - 30 * DAY_S, 1, 100], [now - 30 * DAY_S + 10, 1, 101]], 30 * DAY_S);
  const old2 = await frame(d, 3, [[now - 20 * DAY_S, 1, 102], [now - 20 * DAY_S + 10, 1, 103]], 20 * DAY_S);
  const new1 = await frame(d, 5, [[now - 60, 1, 104]]);
  const new2 = await frame(d, 6, [[now, 1, 105]]);
  await t.gw.mesh.settled();
  const headsBefore = (await t.api('GET', `/api/mesh/heads/${d.id}`)).json.heads;
  assert.equal(headsBefore, [new2]);
  const before = await verifyHistory(d.id, httpSource(t.gw.httpUrl));
  assert.equal([before.problems, before.covered, before.removed], [[], [[1, 6]], []]);

  // Under the default policy (396 days) nothing is old enough.
  assert.equal((await t.api('POST', '/api/privacy/retention/run', {})).json.devices, []);

  assert.is((await t.api('PUT', `/api/devices/${d.id}/privacy`, { retentionDays: 7 })).status, 200);
  const run = await t.api('POST', '/api/privacy/retention/run', {});
  assert.is(run.status, 200, run.text);
  assert.is(run.json.devices.length, 1);
  const r = run.json.devices[0];
  assert.equal([r.deviceId, r.retentionDays, r.through, r.recordsDeleted, r.blocksDeleted], [d.id, 7, 4, 4, 2]);

  // Gone from the store and the block store; what is recent stays; the heads did not move.
  assert.equal(await seqs(d), [5, 6]);
  assert.is((await t.api('GET', `/api/mesh/blocks/${old1}`)).status, 404);
  assert.is((await t.api('GET', `/api/mesh/blocks/${old2}`)).status, 404);
  assert.is((await t.api('GET', `/api/mesh/blocks/${new1}`)).status, 200);
  assert.equal((await t.api('GET', `/api/mesh/heads/${d.id}`)).json.heads, headsBefore);
  assert.is((await t.api('GET', `/api/devices/${d.id}`)).json.ackedSeq, 6, 'the acked prefix is unchanged');

  // The tombstone: signed by this gateway, naming exactly the removed messages and seqs.
  const ts = (await t.api('GET', `/api/privacy/tombstones/${d.id}`)).json.tombstones;
  assert.equal(ts, [r.tombstone]);
  const bytes = new Uint8Array(await (await fetch(`${t.gw.httpUrl}/api/mesh/blocks/${ts[0]}`)).arrayBuffer());
  const m = openMessage(bytes);
  assert.equal(cidText(m.pcid), protocols().tombstone.text);
  const tomb = parseTombstone(m.payload);
  if (typeof tomb === 'string') throw new Error(tomb);
  assert.equal([tomb.device, tomb.gateway, tomb.from, tomb.through, tomb.reason, tomb.prev],
    [d.id, t.gw.id, 1, 4, 'retention', null]);
  assert.equal(tomb.removed.map(cidText).sort(), [old1, old2].sort());

  // verify: every remaining message holds, 1-4 are removed (not holes), the history is whole.
  const after = await verifyHistory(d.id, httpSource(t.gw.httpUrl));
  assert.equal(after.problems, []);
  assert.equal([after.covered, after.removed, after.holes], [[[5, 6]], [[1, 4]], []]);
  assert.equal(after.tombstones.map((x) => [x.cid, x.gateway, x.removed]), [[ts[0], t.gw.id, 2]]);
  const lines: string[] = [];
  const log = console.log;
  console.log = (s: string) => void lines.push(s);
  try {
    assert.is(await verifyMain([d.id, '--gateway', t.gw.httpUrl]), 0);
  } finally {
    console.log = log;
  }
  assert.ok(lines.some((l) => l.startsWith('removed by retention: 1-4 (1 signed tombstone(s): ')), lines.join('\n'));
  assert.is(lines.at(-1), 'ok: every message verifies and the history is whole');

  // A second run finds nothing new; a later one chains its tombstone to the first.
  assert.equal((await t.api('POST', '/api/privacy/retention/run', {})).json.devices, []);
});

test('a late backlog: its records go on time, its message once it too was received that long ago', async () => {
  const d = await pairDevice(t);
  const now = Math.floor(Date.now() / 1000);
  // Readings ten days old, arriving only now (the meter was offline), then fresh ones.
  const late = await frame(d, 1, [[now - 10 * DAY_S, 1, 1]]);
  await frame(d, 2, [[now, 1, 2]]);
  await t.gw.mesh.settled();
  assert.is((await t.api('PUT', `/api/devices/${d.id}/privacy`, { retentionDays: 7 })).status, 200);
  const r = (await t.api('POST', '/api/privacy/retention/run', {})).json.devices.find((x: any) => x.deviceId === d.id);
  assert.equal([r.through, r.recordsDeleted, r.blocksDeleted], [1, 1, 0]);
  assert.equal(await seqs(d), [2]);
  assert.is((await t.api('GET', `/api/mesh/blocks/${late}`)).status, 200, 'received today: kept for now');
  const v = await verifyHistory(d.id, httpSource(t.gw.httpUrl));
  assert.equal([v.problems, v.covered], [[], [[1, 2]]]);

  // Eight days later (the gateway's clock), the message is that old too: it goes, under a new tombstone.
  offset = -8 * DAY_S * 1000;
  try {
    const again = (await t.api('POST', '/api/privacy/retention/run', {})).json.devices.find((x: any) => x.deviceId === d.id);
    assert.equal([again.through, again.recordsDeleted, again.blocksDeleted], [2, 1, 2]);
  } finally {
    offset = 0;
  }
  assert.is((await t.api('GET', `/api/mesh/blocks/${late}`)).status, 404);
  const v2 = await verifyHistory(d.id, httpSource(t.gw.httpUrl));
  assert.equal([v2.problems, v2.removed, v2.messages > 0], [[], [[1, 2]], true]);
});

test('more removed messages than one tombstone names: a chain of tombstones, and verify follows it', async () => {
  const d = await pairDevice(t);
  const now = Math.floor(Date.now() / 1000);
  const old: string[] = [];
  for (let i = 1; i <= 5; i++) old.push(await frame(d, i, [[now - (20 - i) * DAY_S, 1, i]], (20 - i) * DAY_S));
  await frame(d, 6, [[now, 1, 6]]);
  await t.gw.mesh.settled();
  assert.is((await t.api('PUT', `/api/devices/${d.id}/privacy`, { retentionDays: 7 })).status, 200);
  // The gateway's own retention, on a second connection to its database, two messages per tombstone.
  const s = new SqliteStore(join(t.dir, 'gridlet.sqlite'));
  try {
    const r = new Retention({ store: s, privacy: t.gw.privacy, gatewayId: t.gw.id, signer: t.gw.mesh.signer, log: pino({ level: 'silent' }), now: Date.now, maxRemoved: 2 });
    const done = await r.device(d.id, Date.now());
    assert.equal([done?.through, done?.recordsDeleted, done?.blocksDeleted], [5, 5, 5]);
  } finally {
    await s.close();
  }
  const ts = (await t.api('GET', `/api/privacy/tombstones/${d.id}`)).json.tombstones;
  assert.is(ts.length, 3);
  for (const c of old) assert.is((await t.api('GET', `/api/mesh/blocks/${c}`)).status, 404);
  const v = await verifyHistory(d.id, httpSource(t.gw.httpUrl));
  assert.equal([v.problems, v.covered, v.removed, v.tombstones.length], [[], [[6, 6]], [[1, 5]], 3]);
});

test('a message removed without a tombstone is a hole verify reports', async () => {
  const d = await pairDevice(t);
  const now = Math.floor(Date.now() / 1000);
  await frame(d, 1, [[now - 3 * DAY_S, 1, 1]]);
  const mid = await frame(d, 2, [[now - 2 * DAY_S, 1, 2]]);
  await frame(d, 3, [[now, 1, 3]]);
  await t.gw.mesh.settled();
  assert.equal((await verifyHistory(d.id, httpSource(t.gw.httpUrl))).problems, []);

  // Removed behind the gateway's back (a second connection to its database), no tombstone.
  const s = new SqliteStore(join(t.dir, 'gridlet.sqlite'));
  try {
    assert.is(await s.blocks.delete([parseCidText(mid)!]), 1);
  } finally {
    await s.close();
  }
  const r = await verifyHistory(d.id, httpSource(t.gw.httpUrl));
  // The walk stops at the missing message: it and what only it led to are holes.
  assert.equal(r.holes, [[1, 2]]);
  assert.ok(r.problems.includes(`message ${mid} is named but not served (a hole in the chain)`), r.problems.join('\n'));
  assert.equal(r.removed, []);
  const log = console.log;
  console.log = () => {};
  try {
    assert.is(await verifyMain([d.id, '--gateway', t.gw.httpUrl]), 1);
  } finally {
    console.log = log;
  }
});

test('retention by the policy of a group; a later run chains its tombstone to the previous one', async () => {
  const d = await pairDevice(t);
  assert.is((await t.api('PUT', `/api/devices/${d.id}/labels`, { labels: { tier: 'short' } })).status, 200);
  assert.is((await t.api('PUT', '/api/privacy/groups', { selector: 'tier=short', policy: { retentionDays: 2 } })).status, 200);
  const now = Math.floor(Date.now() / 1000);
  await frame(d, 1, [[now - 5 * DAY_S, 1, 1]], 5 * DAY_S);
  await frame(d, 2, [[now - 1 * DAY_S, 1, 2]], DAY_S);
  await frame(d, 3, [[now, 1, 3]]);
  await t.gw.mesh.settled();
  const first = (await t.api('POST', '/api/privacy/retention/run', {})).json.devices.find((x: any) => x.deviceId === d.id);
  assert.equal([first.through, first.blocksDeleted], [1, 1]);
  assert.equal(await seqs(d), [2, 3]);

  assert.is((await t.api('PUT', '/api/privacy/groups', { selector: 'tier=short', policy: { retentionDays: 0.5 } })).status, 200);
  const second = (await t.api('POST', '/api/privacy/retention/run', {})).json.devices.find((x: any) => x.deviceId === d.id);
  assert.equal([second.through, second.blocksDeleted], [2, 1]);
  assert.equal(await seqs(d), [3]);
  const bytes = new Uint8Array(await (await fetch(`${t.gw.httpUrl}/api/mesh/blocks/${second.tombstone}`)).arrayBuffer());
  const tomb = parseTombstone(openMessage(bytes).payload);
  if (typeof tomb === 'string') throw new Error(tomb);
  assert.equal([tomb.from, tomb.through, tomb.prev && cidText(tomb.prev)], [2, 2, first.tombstone]);
  const v = await verifyHistory(d.id, httpSource(t.gw.httpUrl));
  assert.equal([v.problems, v.removed, v.covered], [[], [[1, 2]], [[3, 3]]]);
  await t.api('DELETE', '/api/privacy/groups?selector=tier%3Dshort', {});
});

/**
 * Gateways A and B on one mesh; a device paired at A sends one reading 10 days old (by A's clock) and one
 * now, and B holds the whole chain. `oldCid` is the old reading's message, which retention will remove.
 */
/** The device's history at `g` verifies: reading 2 covered, reading 1 removed by a tombstone. */
async function assertRemovedAndWhole(g: TestGateway, deviceId: string): Promise<void> {
  const v = await verifyHistory(deviceId, httpSource(g.gw.httpUrl));
  assert.equal([v.problems, v.covered, v.removed], [[], [[2, 2]], [[1, 1]]], `the history at ${g.gw.id}`);
}

async function withTwoGateways(f: (g: { A: TestGateway; B: TestGateway; d: Awaited<ReturnType<typeof pairDevice>>; oldCid: Uint8Array }) => Promise<void>): Promise<void> {
  const X = operator('x');
  const mesh = (peers: string[] = []) => ({ operatorKey: X.file, meshListen: '/ip4/127.0.0.1/tcp/0', peers, meshSyncMs: 300 });
  let aOffset = 0;
  const A = await startTestGateway({ ...mesh(), clock: () => Date.now() - aOffset });
  const B = await startTestGateway(mesh([A.gw.meshAddr!]));
  try {
    for (const g of [A, B]) await eventually(async () => (await g.api('GET', '/api/mesh')).json.gateways.length === 2, 15_000, 'both identities');
    const d = await pairDevice(A);
    const now = Math.floor(Date.now() / 1000);
    aOffset = 10 * DAY_S * 1000;
    await d.send({ type: Body.readings, first: 1, records: [[now - 10 * DAY_S, 1, 1]] });
    await d.waitAck(1);
    await A.gw.mesh.settled();
    aOffset = 0;
    await d.send({ type: Body.readings, first: 2, records: [[now, 1, 2]] });
    await d.waitAck(2);
    await A.gw.mesh.settled();
    const head = (await A.api('GET', `/api/mesh/heads/${d.id}`)).json.cid;
    await eventually(async () => (await B.api('GET', `/api/mesh/heads/${d.id}`)).json?.cid === head, 10_000, 'B has the head');
    await eventually(async () => {
      const v = await verifyHistory(d.id, httpSource(B.gw.httpUrl));
      return v.problems.length === 0 && v.covered.length === 1 && v.covered[0][0] === 1 && v.covered[0][1] === 2;
    }, 10_000, 'B holds the whole chain');
    const headMsg = parseReadings(openMessage(new Uint8Array(await (await fetch(`${A.gw.httpUrl}/api/mesh/blocks/${head}`)).arrayBuffer())).payload);
    if (typeof headMsg === 'string') throw new Error(headMsg);
    await f({ A, B, d, oldCid: headMsg.prev[0] });
    // What remains at A still verifies, with the old reading accounted for as removed.
    await assertRemovedAndWhole(A, d.id);
  } finally {
    await B.close();
    await A.close();
  }
}

test('a peer that holds the removed messages drops them when the tombstone reaches it, and still verifies', async () => {
  await withTwoGateways(async ({ A, B, d, oldCid: old }) => {
    const oldCid = cidText(old);
    assert.is((await B.api('GET', `/api/mesh/blocks/${oldCid}`)).status, 200);

    assert.is((await A.api('PUT', `/api/devices/${d.id}/privacy`, { retentionDays: 5 })).status, 200);
    const run = (await A.api('POST', '/api/privacy/retention/run', {})).json.devices;
    assert.equal(run.map((x: any) => [x.through, x.blocksDeleted]), [[1, 1]]);

    // The tombstone travels on the mesh; B keeps it and deletes its copy of what A removed.
    await eventually(async () => (await B.api('GET', `/api/privacy/tombstones/${d.id}`)).json.tombstones.length === 1, 10_000, 'the tombstone at B');
    assert.equal((await B.api('GET', `/api/privacy/tombstones/${d.id}`)).json.tombstones, [run[0].tombstone]);
    assert.is((await B.api('GET', `/api/mesh/blocks/${oldCid}`)).status, 404);
    await assertRemovedAndWhole(B, d.id);
  });
});

test('a peer that still serves and announces a removed message does not bring it back', async () => {
  await withTwoGateways(async ({ A, B, d, oldCid }) => {
    const oldBytes = new Uint8Array(await (await fetch(`${B.gw.httpUrl}/api/mesh/blocks/${cidText(oldCid)}`)).arrayBuffer());

    // B is cut off while A removes the old message: the tombstone never reaches it, and B keeps its copy.
    await B.gw.mesh.isolate();
    assert.is((await A.api('PUT', `/api/devices/${d.id}/privacy`, { retentionDays: 5 })).status, 200);
    assert.equal((await A.api('POST', '/api/privacy/retention/run', {})).json.devices.map((x: any) => x.blocksDeleted), [1]);
    B.gw.mesh.rejoin();
    await eventually(async () => (await A.api('GET', '/api/mesh')).json.peers.length === 1, 15_000, 'B back');
    assert.is((await B.api('GET', `/api/mesh/blocks/${cidText(oldCid)}`)).status, 200, 'B still serves it');

    // Asked by CID (HTTP, as a prev walk or an announcement would), A does not fetch it from B.
    assert.is((await A.api('GET', `/api/mesh/blocks/${cidText(oldCid)}`)).status, 404);
    assert.is(await A.gw.mesh.fetchBlock(oldCid, undefined, true), undefined);
    // Announced and pushed by B, it is refused; so is the message handed over directly.
    const removed = () => A.gw.mesh.counts.received.removed ?? 0;
    const before = removed();
    await eventually(async () => {
      B.gw.mesh.node!.send(A.gw.mesh.peerId, encodeGossip({ have: [oldCid], blocks: [oldBytes] }));
      return removed() > before;
    }, 10_000, 'A refused the pushed message');
    assert.is(await A.gw.mesh.receive(oldBytes, { ancestor: true }), 'removed');
    assert.is(await A.gw.mesh.blocks.has(oldCid), false);
    assert.is((await A.api('GET', `/api/mesh/blocks/${cidText(oldCid)}`)).status, 404);
    const metrics = (await A.api('GET', '/metrics')).text;
    assert.ok(metricValue(metrics, 'gridlet_mesh_messages_received_total', { result: 'removed' }) >= 3, metrics);
  });
});

test('tombstones kept by an older gridlet (their CIDs not noted): after a restart their messages are refused too', async () => {
  const dir = tempDir();
  let aOffset = 0;
  const A = await startTestGateway({ dataDir: dir, clock: () => Date.now() - aOffset });
  let oldBytes: Uint8Array;
  let id: string;
  try {
    const d = await pairDevice(A);
    id = d.id;
    const now = Math.floor(Date.now() / 1000);
    aOffset = 10 * DAY_S * 1000;
    await d.send({ type: Body.readings, first: 1, records: [[now - 10 * DAY_S, 1, 1]] });
    await d.waitAck(1);
    await A.gw.mesh.settled();
    aOffset = 0;
    const old = (await A.api('GET', `/api/mesh/heads/${d.id}`)).json.cid;
    oldBytes = new Uint8Array(await (await fetch(`${A.gw.httpUrl}/api/mesh/blocks/${old}`)).arrayBuffer());
    assert.is((await A.api('PUT', `/api/devices/${d.id}/privacy`, { retentionDays: 5 })).status, 200);
    assert.equal((await A.api('POST', '/api/privacy/retention/run', {})).json.devices.map((x: any) => x.blocksDeleted), [1]);
    assert.is(await A.gw.mesh.receive(oldBytes), 'removed');
  } finally {
    await A.stop();
  }
  // What an older gridlet left: the tombstone, but no note of the CIDs it names.
  const Database = (await import('better-sqlite3')).default;
  const db = new Database(join(dir, 'gridlet.sqlite'));
  assert.is(db.prepare('DELETE FROM mesh_removed').run().changes, 1);
  db.close();
  const B = await startTestGateway({ dataDir: dir });
  try {
    assert.is(await B.gw.mesh.receive(oldBytes), 'removed');
    assert.is(await B.gw.mesh.blocks.has(cidOfBytes(oldBytes)), false);
    const v = await verifyHistory(id, httpSource(B.gw.httpUrl));
    assert.equal([v.problems, v.removed], [[], [[1, 1]]]);
  } finally {
    await B.close();
  }
});

test('verify accepts a tombstone only from the device\'s gateway (or the writer of the message naming the removed one), signed', async () => {
  const P = protocols();
  const op = operator('local').key;
  const gateway = () => {
    const g = new KeyGateway(op);
    return { signer: g.signer, id: g.gateway, identity: g.identityMessage };
  };
  const G = gateway();
  const X = gateway();
  const device = 'dddddddddddddddd';
  const m1 = encodeMessage(P.readings.pcid, readingsPayload({ device, gateway: G.id, records: [[1, 100, 1, 1]], prev: [] }), G.signer);
  const m2 = encodeMessage(P.readings.pcid, readingsPayload({ device, gateway: G.id, records: [[2, 200, 1, 2]], prev: [m1.cid] }), G.signer);
  const tomb = (by: ReturnType<typeof gateway>) => encodeMessage(P.tombstone.pcid, tombstonePayload({
    device, gateway: by.id, removed: [m1.cid], from: 1, through: 1, at: 1, reason: 'retention', prev: null,
  }), by.signer);
  const source = (tombstones: Uint8Array[], deviceGateway?: string): HistorySource => {
    const blocks = new Map([G.identity, X.identity, m2].map((m) => [cidText(m.cid), m.bytes]));
    for (const b of tombstones) blocks.set(cidText(cidOfBytes(b)), b);
    return {
      heads: async () => [cidText(m2.cid)],
      block: async (c) => blocks.get(c),
      identities: async () => [cidText(G.identity.cid), cidText(X.identity.cid)],
      ackedSeq: async () => 0,
      tombstones: async () => tombstones.map((b) => cidText(cidOfBytes(b))),
      gateway: async () => deviceGateway,
    };
  };
  const ok = await verifyHistory(device, source([tomb(G).bytes], G.id));
  assert.equal([ok.problems, ok.removed, ok.covered], [[], [[1, 1]], [[2, 2]]]);
  // Unknown device gateway: the writer of m2 (which names m1) may remove m1 too.
  assert.equal((await verifyHistory(device, source([tomb(G).bytes]))).problems, []);

  const other = await verifyHistory(device, source([tomb(X).bytes], G.id));
  assert.equal(other.removed, []);
  assert.match(other.problems.join('\n'), new RegExp(`message ${cidText(m1.cid)} is removed by tombstone \\S+ of gateway ${X.id}, which is neither the device's gateway nor the writer`));

  // A tombstone whose signature does not hold is no tombstone.
  const forged = new Uint8Array(tomb(G).bytes);
  forged[forged.length - 1] ^= 1;
  const bad = await verifyHistory(device, source([forged], G.id));
  assert.match(bad.problems.join('\n'), /tombstone \S+: the Ed25519 signature does not verify/);
  assert.match(bad.problems.join('\n'), /named but not served \(a hole in the chain\)/);
  // Nor is one that names the gateway but is signed by another key.
  const lying = encodeMessage(P.tombstone.pcid, tombstonePayload({
    device, gateway: G.id, removed: [m1.cid], from: 1, through: 1, at: 1, reason: 'retention', prev: null,
  }), X.signer);
  assert.match((await verifyHistory(device, source([lying.bytes], G.id))).problems.join('\n'), /names gateway \S+ but its key is bound to/);
});

test.run();
