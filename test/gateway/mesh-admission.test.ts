// Admission to the mesh (docs/protocols/mesh-admission-v2.md): gateway A, of operator x, trusts operator
// y. A libp2p peer no operator admitted — a bare node with no identity, a gateway of an operator A does
// not trust — opens no stream A answers and receives not one gossip frame; it is refused at connection
// time once refused. An admitted peer of operator y receives, of A's meters, exactly what each meter's
// policy grants y. What an admitted peer sends that it may not — a pairing of A's meter, a squatted
// identity, readings in A's meter's chain — is refused and counted, and A never unpairs its meter.
import '../../gateway/mesh/polyfill.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { multiaddr } from '@multiformats/multiaddr';
import { Body } from '../../firmware/core/wire/bodies.js';
import { cidText } from '../../gateway/mesh/cid.js';
import { decodeGossip, encodeGossip } from '../../gateway/mesh/mesh.js';
import { BLOCKS_PROTOCOL, GOSSIP_PROTOCOL } from '../../gateway/mesh/node.js';
import { OFFLOAD_PROTOCOL } from '../../gateway/mesh/offload.js';
import { frame } from '../../gateway/mesh/frames.js';
import { decodeMessage } from '../../gateway/mesh/message.js';
import { parseReadings, readingsPayload, registryPayload } from '../../gateway/mesh/protocols.js';
import { eventually, pairDevice, sleep, startTestGateway, type TestGateway } from './support.js';
import { KeyGateway, operator, peerNode } from './mesh-support.js';
import type { WireDevice } from './wire-device.js';

const T0 = 1_700_000_000;
const SYNC_MS = 300;
const X = operator('x');
const Y = operator('y');
let A: TestGateway;
let shared: WireDevice;
let own: WireDevice;
const closers: (() => Promise<unknown>)[] = [];

test.before(async () => {
  A = await startTestGateway({
    operatorKey: X.file, trustOperators: [Y.pub], meshListen: '/ip4/127.0.0.1/tcp/0', meshSyncMs: SYNC_MS, meshAdmissionTimeoutMs: 1500,
  });
  // Two meters: one shares everything with operator y, one keeps the default (nothing for y).
  shared = await pairDevice(A);
  own = await pairDevice(A);
  assert.is((await A.api('PUT', `/api/devices/${shared.id}/privacy`, { peers: { y: { level: 'full' } } })).status, 200);
  for (const d of [shared, own]) {
    await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 10], [T0 + 1, 1, 11]] });
    await d.waitAck(2);
  }
  await A.gw.mesh.settled();
});

test.after(async () => {
  for (const c of closers.splice(0)) await c().catch(() => {});
  await A?.close();
});

/** A bare libp2p node (no gridlet protocol of its own but a gossip handler that counts what arrives). */
async function bare(): Promise<{ node: Libp2p; received: number[] }> {
  const received: number[] = [];
  const node = await createLibp2p({
    privateKey: await generateKeyPairFromSeed('Ed25519', randomBytes(32)),
    transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false },
  });
  await node.handle(GOSSIP_PROTOCOL, async (stream) => {
    for await (const chunk of stream) received.push(chunk.subarray().length);
  });
  closers.push(async () => node.stop());
  return { node, received };
}

const refused = (reason: string) => A.metric('gridlet_mesh_refused_total', { reason });

test('a bare libp2p peer: every stream it opens is reset, it receives nothing, and it is cut off when it does not present itself', async () => {
  const { node, received } = await bare();
  const addr = multiaddr(A.gw.meshAddr!);
  const conn = await node.dial(addr);
  assert.is(conn.status, 'open', 'the connection itself opens (it may still present itself)');
  const before = await refused('not-admitted');
  for (const protocol of [BLOCKS_PROTOCOL, GOSSIP_PROTOCOL, OFFLOAD_PROTOCOL]) {
    const outcome = await (async () => {
      const s = await conn.newStream(protocol, { signal: AbortSignal.timeout(3000) });
      if (protocol === BLOCKS_PROTOCOL) s.send((await A.gw.mesh.heads(shared.id))!.cid);
      else s.send(frame({ blocks: [] }));
      await s.close().catch(() => {});
      const got: number[] = [];
      for await (const c of s) got.push(c.subarray().length);
      return got.length ? `answered ${got.length} chunk(s)` : 'nothing';
    })().catch((e: Error) => `reset: ${e.message}`);
    assert.ok(outcome === 'nothing' || outcome.startsWith('reset'), `${protocol}: ${outcome}`);
  }
  // Blocks and gossip are refused and counted; A has no LLM backend, so offload is not even spoken.
  await eventually(async () => (await refused('not-admitted')) >= before + 2, 3000, 'each stream refused and counted');
  // No identify, no ping: A speaks nothing that tells a stranger anything.
  for (const protocol of ['/ipfs/id/1.0.0', '/ipfs/ping/1.0.0', '/meshsub/1.1.0']) {
    const e = await conn.newStream(protocol, { signal: AbortSignal.timeout(3000) }).then(() => 'opened', (x: Error) => x.message);
    assert.is.not(e, 'opened', protocol);
  }
  // It never presents itself: cut off, and refused at connection time from then on.
  await eventually(() => node.getConnections().length === 0, 5000, 'A closed the connection');
  assert.ok(await refused('admission-timeout') >= 1);
  const again = await node.dial(addr, { signal: AbortSignal.timeout(3000) }).then((c) => c.status, (e: Error) => `refused: ${e.message}`);
  await sleep(200);
  assert.ok(again.startsWith('refused') || node.getConnections().length === 0, `a second connection: ${again}`);
  assert.ok(await refused('refused-recently') >= 1, 'refused at connection time');
  // Meanwhile A went on announcing to its peers: this one got not one byte.
  await sleep(3 * SYNC_MS);
  assert.equal(received, []);
});

test('a gateway of an operator A does not trust is refused at admission, receives nothing, and is refused at connection time after', async () => {
  const stranger = new KeyGateway(operator('z').key);
  const { node, gossip } = await peerNode(stranger, [A.gw.meshAddr!]);
  closers.push(async () => node.close());
  await eventually(async () => (await refused('operator')) >= 1, 5000, 'refused: operator');
  await sleep(4 * SYNC_MS);
  assert.equal(gossip, [], 'not one gossip frame');
  assert.equal(node.admittedPeers(), []);
  assert.is(await node.fetchAnswer(A.gw.mesh.peerId, (await A.gw.mesh.heads(shared.id))!.cid), undefined);
  // Its next dials are refused before any handshake.
  const early = await refused('refused-recently') + await refused('operator');
  await sleep(2500);
  assert.ok(await refused('refused-recently') + await refused('operator') >= early, 'still refused');
  assert.ok(!(await A.api('GET', '/api/mesh')).json.gateways.some((g: { gateway: string }) => g.gateway === stranger.gateway), 'its identity is not kept');
});

test('an admitted peer of operator y receives of each meter exactly what its policy grants y', async () => {
  const partner = new KeyGateway(Y.key);
  const { node, gossip } = await peerNode(partner, [A.gw.meshAddr!]);
  closers.push(async () => node.close());
  await eventually(() => node.admittedPeers().includes(A.gw.mesh.peerId), 5000, 'admitted by A');
  const sharedHead = cidText((await A.gw.mesh.heads(shared.id))!.cid);
  const ownHead = cidText((await A.gw.mesh.heads(own.id))!.cid);
  const named = () => new Set(gossip.flatMap((g) => (decodeGossip(g.data).have ?? []).map(cidText)));
  await eventually(() => named().has(sharedHead), 5000, 'the shared meter\'s head named');
  // New readings of both: the shared one's come whole, the other's never.
  for (const d of [shared, own]) {
    await d.send({ type: Body.readings, first: 3, records: [[T0 + 2, 1, 12]] });
    await d.waitAck(3);
  }
  await A.gw.mesh.settled();
  const sharedNew = cidText((await A.gw.mesh.heads(shared.id))!.cid);
  await eventually(() => gossip.some((g) => (decodeGossip(g.data).blocks ?? []).some((b) => cidText(decodeMessage(b).cid) === sharedNew)), 5000, 'the new readings message');
  await sleep(4 * SYNC_MS);
  const devicesSeen = new Set<string>();
  for (const g of gossip) {
    for (const b of decodeGossip(g.data).blocks ?? []) {
      const r = parseReadings(decodeMessage(b).payload);
      if (typeof r !== 'string') devicesSeen.add(r.device);
    }
  }
  assert.equal([...devicesSeen], [shared.id], 'readings messages of the shared meter only');
  assert.not.ok(named().has(ownHead), 'the other meter\'s heads never named');
  assert.is(await node.fetchAnswer(A.gw.mesh.peerId, (await A.gw.mesh.heads(own.id))!.cid), 'refused', 'nor served');
  assert.instance(await node.fetchAnswer(A.gw.mesh.peerId, (await A.gw.mesh.heads(shared.id))!.cid), Uint8Array);
});

test('a forged pairing, a squatted identity and foreign readings from an admitted peer are refused, and A never unpairs its meter', async () => {
  const partner = new KeyGateway(Y.key);
  const { node } = await peerNode(partner, [A.gw.meshAddr!]);
  closers.push(async () => node.close());
  await eventually(() => node.admittedPeers().includes(A.gw.mesh.peerId), 5000, 'admitted by A');
  const downlinks = shared.downlinks.length;
  const before = { conflict: await refused('conflict'), squat: await refused('squat'), foreign: await refused('foreign') };
  const devicePub = (await A.api('GET', `/api/mesh/devices/${shared.id}`)).json;
  assert.ok(devicePub.registry.length >= 1);
  const key = shared.keys.publicKey;
  const takeover = partner.sign('registry2', registryPayload({
    op: 'pair', device: shared.id, key, gateway: partner.gateway, model: 'm', firmware: 'f', hlc: [Date.now() + 1000, 0],
  }));
  const victim = (await A.api('GET', '/api/mesh')).json.gateways.find((g: { gateway: string }) => g.gateway === A.gw.id);
  const squatter = new KeyGateway(Y.key, { squat: { gateway: A.gw.id, x25519: A.gw.mesh.identities.identity(A.gw.mesh.signer.publicKey)!.x25519 } });
  assert.ok(victim);
  const head = (await A.gw.mesh.heads(shared.id))!.cid;
  const forged = partner.sign('readings', readingsPayload({ device: shared.id, gateway: partner.gateway, prev: [head], records: [[4, T0 + 3, 1, 999]] }));
  node.send(A.gw.mesh.peerId, encodeGossip({ blocks: [takeover.bytes, squatter.identityMessage.bytes, forged.bytes] }));
  await eventually(async () => (await refused('conflict')) > before.conflict && (await refused('squat')) > before.squat && (await refused('foreign')) > before.foreign,
    5000, 'all three refused and counted');
  const dev = (await A.api('GET', `/api/devices/${shared.id}`)).json;
  assert.equal([dev.state, dev.gateway], ['paired', A.gw.id], 'the meter stays paired at A');
  assert.equal(dev.conflicts.map((c: { gateway: string; operator: string; operatorName: string }) => [c.gateway, c.operator, c.operatorName]), [[partner.gateway, Y.id, 'y']]);
  assert.not.ok(await A.gw.mesh.blocks.has(forged.cid), 'the foreign message is not kept');
  // A's own identity is still the one bound to its gateway id.
  assert.equal(A.gw.mesh.identities.currentKey(A.gw.id), Buffer.from(A.gw.mesh.signer.publicKey).toString('hex'));
  // No unpair went to the meter, and its frames are still taken.
  await shared.send({ type: Body.readings, first: 4, records: [[T0 + 4, 1, 13]] });
  await shared.waitAck(4);
  assert.is(shared.downlinks.slice(downlinks).filter((x) => x.body.type === Body.unpair).length, 0);
  assert.is((await A.api('GET', `/api/devices/${shared.id}/readings?from=4`)).json.records[0][3], 13);
});

test.run();
