// Mesh summaries at scale (sync.ts announceSummary, summary.ts): between full summaries a gateway names
// only what changed; a peer gets everything when it is admitted; a summary over the size limit goes out
// in parts; a widened sharing policy announces the heads another operator may now have. What A sends is
// watched on the wire by bare libp2p nodes that present identities of A's operator (mesh-support.ts).
import '../../gateway/mesh/polyfill.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { Body } from '../../firmware/core/wire/bodies.js';
import { cidText } from '../../gateway/mesh/cid.js';
import { decodeGossip, encodeGossip } from '../../gateway/mesh/mesh.js';
import type { MeshNode } from '../../gateway/mesh/node.js';
import { KeyGateway, operator, peerNode } from './mesh-support.js';
import { partition, SUMMARY_MAX_BYTES } from '../../gateway/mesh/summary.js';
import { eventually, pairDevice, sleep, startTestGateway, type TestGateway } from './support.js';
import type { WireDevice } from './wire-device.js';

const T0 = 1_700_000_000;
const SYNC_MS = 300;
/** Small enough that A's summaries of DEVICES devices need several messages in both parts. */
const LIMIT = 1200;
const DEVICES = 40;

interface Seen {
  /** 'public' (identities, registry, consents: it carries A's identity and capabilities) or 'heads'. */
  topic: 'public' | 'heads';
  bytes: number;
  have: string[];
  blocks: number;
  caps: boolean;
}
const PUBLIC = 'public';
const HEADS = 'heads';

const X = operator('x');
const Y = operator('y');

/** A bare mesh node of operator x connected to A: it records every gossip frame A sends it. */
async function listener(): Promise<{ node: MeshNode; seen: Seen[] }> {
  const seen: Seen[] = [];
  const { node, gossip } = await peerNode(new KeyGateway(X.key), [A.gw.meshAddr!]);
  const push = gossip.push.bind(gossip);
  gossip.push = (...items) => {
    for (const { from, data } of items) {
      if (from !== A.gw.mesh.peerId) continue;
      const g = decodeGossip(data);
      seen.push({ topic: g.caps ? PUBLIC : HEADS, bytes: data.length, have: (g.have ?? []).map(cidText), blocks: g.blocks?.length ?? 0, caps: g.caps !== undefined });
    }
    return push(...items);
  };
  return { node, seen };
}

let A: TestGateway;
const others: TestGateway[] = [];
const nodes: MeshNode[] = [];
const devices: WireDevice[] = [];
const heads = async (t: TestGateway) => Object.values(await t.gw.mesh.allHeads()).flat().sort();

test.before(async () => {
  // No anti-entropy during the test: every full summary seen is one a subscription asked for.
  A = await startTestGateway({ operatorKey: X.file, trustOperators: [Y.pub], meshListen: '/ip4/127.0.0.1/tcp/0', meshSyncMs: SYNC_MS, meshAntiEntropyMs: 3_600_000, meshSummaryBytes: LIMIT });
  for (let i = 0; i < DEVICES; i++) devices.push(await pairDevice(A));
  for (const [i, d] of devices.entries()) await d.send({ type: Body.readings, first: 1, records: [[T0 + i, 1, i]] });
  for (const d of devices) await d.waitAck(1);
  await A.gw.mesh.settled();
  assert.is((await heads(A)).length, DEVICES);
});

test.after(async () => {
  for (const n of nodes) await n.close();
  for (const t of others) await t.close();
  await A?.close();
});

test('a summary of 20,000 CIDs goes out in parts of at most 256 KiB that hold every CID once, in order', () => {
  const have = Array.from({ length: 20_000 }, () => new Uint8Array(randomBytes(36)));
  const rest = { blocks: [new Uint8Array(600)], caps: new Uint8Array(200) };
  const parts = partition(have, encodeGossip({ ...rest, have: [] }).length, SUMMARY_MAX_BYTES);
  const sizes = parts.map((p) => encodeGossip({ ...rest, have: p }).length);
  assert.ok(parts.length >= 3, `${parts.length} parts`);
  assert.ok(sizes.every((n) => n <= SUMMARY_MAX_BYTES), `largest part ${Math.max(...sizes)} bytes`);
  assert.ok(sizes[0] > SUMMARY_MAX_BYTES - 100, 'parts are filled');
  assert.equal(parts.flat(), have);
  assert.equal(partition([], 600, SUMMARY_MAX_BYTES), [[]], 'no CIDs: one message, for the identity and capabilities');
});

test('a peer that is admitted gets every head and registry entry, in messages within the size limit', async () => {
  const { node, seen } = await listener();
  nodes.push(node);
  const all = await heads(A);
  const named = (topic: string) => new Set(seen.filter((s) => s.topic === topic).flatMap((s) => s.have));
  await eventually(() => all.every((h) => named(HEADS).has(h)), 10_000, 'every head named');
  const registry = A.gw.mesh.crdt.cids().map(cidText);
  await eventually(() => registry.every((c) => named(PUBLIC).has(c)), 10_000, 'every registry entry named in the public part');
  for (const topic of [PUBLIC, HEADS]) {
    const full = seen.filter((s) => s.topic === topic && s.have.length > 0);
    assert.ok(full.length >= 2, `the full summary's ${topic} part came in several messages (${full.length})`);
  }
  assert.ok(seen.every((s) => s.bytes <= LIMIT), `every message within ${LIMIT} bytes (largest ${Math.max(...seen.map((s) => s.bytes))})`);
  assert.ok(seen.filter((s) => s.topic === PUBLIC).every((s) => s.blocks === 1 && s.caps), 'each public message carries A\'s identity and capabilities');

  // A gateway that joins late learns every head and every pairing, fetched by CID from what the parts named.
  const C = await startTestGateway({ operatorKey: X.file, meshListen: '/ip4/127.0.0.1/tcp/0', peers: [A.gw.meshAddr!], meshSyncMs: SYNC_MS, meshSummaryBytes: LIMIT });
  others.push(C);
  await eventually(async () => JSON.stringify(await heads(C)) === JSON.stringify(all), 15_000, 'C holds every head of A');
  await eventually(() => devices.every((d) => C.gw.mesh.deviceState(d.id)?.state === 'paired'), 10_000, 'C knows every pairing');
});

test('in steady state a summary names only the new head', async () => {
  const { node, seen } = await listener();
  nodes.push(node);
  const before = await heads(A);
  await eventually(() => before.every((h) => seen.some((s) => s.have.includes(h))), 10_000, 'the full summary for the listener');
  await sleep(4 * SYNC_MS);
  const quiet = seen.length;
  await sleep(4 * SYNC_MS);
  const idle = seen.slice(quiet);
  assert.ok(idle.some((s) => s.topic === PUBLIC && s.blocks === 1 && s.caps), 'A still announces its identity and capabilities');
  assert.equal(idle.flatMap((s) => s.have), [], 'nothing changed: no CID named');

  const d = devices[5];
  const from = seen.length;
  await d.send({ type: Body.readings, first: 2, records: [[T0 + 100, 1, 42]] });
  await d.waitAck(2);
  await A.gw.mesh.settled();
  const head = (await A.gw.mesh.allHeads())[d.id];
  assert.is(head.length, 1);
  await eventually(() => seen.slice(from).some((s) => s.have.includes(head[0])), 5000, 'the new head named');
  await sleep(3 * SYNC_MS);
  const later = seen.slice(from);
  assert.equal(later.filter((s) => s.topic === HEADS).flatMap((s) => s.have), head, 'the new head named, once, and nothing else');
  assert.equal(later.filter((s) => s.topic === PUBLIC).flatMap((s) => s.have), [], 'the registry did not change');
  await eventually(async () => (await heads(others[0])).includes(head[0]), 5000, 'C holds the new head');
});

test('peers admitted at once get one full summary each, and the peers already there get none', async () => {
  const head = (await A.gw.mesh.allHeads())[devices[0].id][0];
  const old = await listener();
  nodes.push(old.node);
  await eventually(() => old.seen.some((s) => s.have.includes(head)), 10_000, 'the full summary for the first listener');
  const from = old.seen.length;
  const ls = await Promise.all(Array.from({ length: 5 }, () => listener()));
  nodes.push(...ls.map((l) => l.node));
  await eventually(() => ls.every((l) => l.seen.some((s) => s.have.includes(head))), 10_000, 'a full summary for every listener');
  await sleep(4 * SYNC_MS);
  const fulls = ls.map((l) => l.seen.filter((s) => s.topic === HEADS && s.have.includes(head)).length);
  console.log(`5 peers admitted at once: full summaries each ${fulls.join(', ')}; to the peer already there: ${old.seen.slice(from).filter((s) => s.have.includes(head)).length}`);
  assert.equal(fulls, [1, 1, 1, 1, 1]);
  assert.equal(old.seen.slice(from).filter((s) => s.topic === HEADS).flatMap((s) => s.have), [], 'no head named again to the peer already admitted');
});

test('a widened sharing policy announces the heads the other operator may now have', async () => {
  const D = await startTestGateway({ operatorKey: Y.file, trustOperators: [X.pub], meshListen: '/ip4/127.0.0.1/tcp/0', peers: [A.gw.meshAddr!], meshSyncMs: SYNC_MS });
  others.push(D);
  const knows = (t: TestGateway, of: TestGateway) => [...t.gw.mesh.identities.identities.values()].some((s) => s.entry.gateway === of.gw.id);
  await eventually(() => knows(A, D) && knows(D, A), 10_000, 'A and D know each other');
  const d = devices[7];
  await eventually(() => D.gw.mesh.deviceState(d.id)?.state === 'paired', 10_000, 'D knows the pairing');
  await sleep(4 * SYNC_MS);
  assert.is((await D.gw.mesh.blocks.list('readings', d.id)).length, 0, 'by default operator y gets no readings');

  // No new readings: the head D may now have is an old one, named again because the policy changed.
  const r = await A.api('PUT', `/api/devices/${d.id}/privacy`, { peers: { y: { level: 'full' } } });
  assert.is(r.status, 200, r.text);
  const head = (await A.gw.mesh.allHeads())[d.id];
  await eventually(async () => (await D.gw.mesh.blocks.list('readings', d.id)).map((b) => cidText(b.cid)).includes(head[0]), 5000, 'D holds the head');
  assert.is((await D.gw.mesh.blocks.list('readings', devices[8].id)).length, 0, 'and nothing of a device whose policy did not change');
});

test.run();
