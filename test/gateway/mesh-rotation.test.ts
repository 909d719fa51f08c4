// Rotating a gateway's mesh key (docs/operator.md "Rotate a gateway's key"): gateway B of operator x gets a
// new Ed25519 key and peer id, keeps its gateway id and its meter. Gateway A takes the new enrollment as
// B's key, B's meter stays paired and its history whole; what the old key signs from then on — a
// revocation, readings, a connection — is refused.
import '../../gateway/mesh/polyfill.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { toHex } from '../../firmware/core/bytes.js';
import { Body } from '../../firmware/core/wire/bodies.js';
import { rotateMeshKey } from '../../gateway/identity.js';
import { encodeMessage, signerFromSeed } from '../../gateway/mesh/message.js';
import { protocols } from '../../gateway/mesh/pcid.js';
import { readingsPayload, registryPayload } from '../../gateway/mesh/protocols.js';
import { httpSource, verifyHistory } from '../../gateway/mesh/verify.js';
import { eventually, pairDevice, startTestGateway, tempDir, type TestGateway } from './support.js';
import { KeyGateway, operator, peerNode } from './mesh-support.js';

const T0 = 1_700_000_000;
const X = operator('x');
const opts = (peers: string[] = []) => ({ operatorKey: X.file, meshListen: '/ip4/127.0.0.1/tcp/0', peers, meshSyncMs: 300 });

test('a rotated key: the same gateway and meter, a new peer id; the old key signs nothing that counts', async () => {
  const A = await startTestGateway(opts());
  const dirB = tempDir();
  let B: TestGateway = await startTestGateway({ ...opts([A.gw.meshAddr!]), dataDir: dirB });
  try {
    const d = await pairDevice(B);
    await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 1]] });
    await d.waitAck(1);
    await eventually(async () => (await A.gw.mesh.blocks.list('readings', d.id)).length === 1, 10_000, 'A holds the readings');
    const before = JSON.parse(readFileSync(join(dirB, 'identity.json'), 'utf8'));
    const oldSeed = Uint8Array.from(Buffer.from(before.ed25519Seed, 'hex'));
    const oldSigner = signerFromSeed(oldSeed, nacl.sign.keyPair.fromSeed(oldSeed).publicKey);
    const oldPeer = B.gw.mesh.peerId;
    const pairing = A.gw.mesh.deviceState(d.id)!.pairing;

    B.devices.splice(B.devices.indexOf(d), 1);
    await B.stop();
    const rotated = rotateMeshKey(dirB);
    assert.is(rotated.id, B.gw.id);
    B = await startTestGateway({ ...opts([A.gw.meshAddr!]), dataDir: dirB });
    B.devices.push(d);
    assert.is.not(B.gw.mesh.peerId, oldPeer, 'a new peer id');
    await eventually(() => A.gw.mesh.identities.currentKey(B.gw.id) === toHex(rotated.sign.publicKey), 10_000, 'A takes the new key');
    // The meter reconnects to its gateway, which its gateway id still names.
    await d.connect(B.gw.mqttUrl, { credentials: true });
    await d.send({ type: Body.readings, first: 2, records: [[T0 + 1, 1, 2]] });
    await d.waitAck(2);
    await eventually(async () => (await A.gw.mesh.blocks.list('readings', d.id)).length === 2, 10_000, 'A holds the new readings');
    const st = A.gw.mesh.deviceState(d.id)!;
    assert.equal([st.state, st.gateway, st.operator], ['paired', B.gw.id, X.id]);
    assert.equal(st.conflicts, []);
    const v = await verifyHistory(d.id, httpSource(A.gw.httpUrl));
    assert.equal([v.problems, v.covered], [[], [[1, 2]]], 'history signed by both keys verifies');

    // The old key, from now on: a revocation, new readings.
    const P = protocols();
    const rev = encodeMessage(P.registry2.pcid, registryPayload({ op: 'revoke', device: d.id, pairing, gateway: B.gw.id, hlc: [Date.now(), 0] }), oldSigner);
    assert.is(await A.gw.mesh.receive(rev.bytes), 'superseded');
    const head = (await A.gw.mesh.heads(d.id))!.cid;
    const late = encodeMessage(P.readings.pcid, readingsPayload({ device: d.id, gateway: B.gw.id, prev: [head], records: [[3, T0 + 2, 1, 9]] }), oldSigner);
    assert.is(await A.gw.mesh.receive(late.bytes), 'superseded');
    assert.is(A.gw.mesh.deviceState(d.id)!.state, 'paired');
    assert.ok(await A.metric('gridlet_mesh_refused_total', { reason: 'superseded' }) >= 2);
    // Whoever holds the old key cannot connect as B with it.
    const oldIdentity = await A.gw.mesh.blocks.get(A.gw.mesh.identities.signed(oldSigner.publicKey)!.cid);
    const thief = await peerNode({ seed: oldSeed, identityMessage: { bytes: oldIdentity! } } as unknown as KeyGateway, [A.gw.meshAddr!]);
    try {
      await eventually(async () => (await A.metric('gridlet_mesh_refused_total', { reason: 'superseded' })) >= 3, 5000, 'the old key refused at admission');
      assert.equal(thief.node.admittedPeers(), []);
      assert.equal(thief.gossip, []);
    } finally {
      await thief.node.close();
    }
  } finally {
    await B.close();
    await A.close();
  }
});

test.run();
