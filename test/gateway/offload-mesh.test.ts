// Offload over the mesh (MESH.md "Capabilities"): gateway B has an LLM backend and announces
// `llm.generate`; gateway A, of the same operator, has none and routes a device's job to B over
// /gridlet/offload/1, and the device gets exactly the model's text as ordered job-result chunks. A
// gateway of another operator (admitted: its operator is trusted) is neither served nor routed to, and
// a peer over its quota is told so. With B gone, A answers with a clear error within its time limits.
import '../../gateway/mesh/polyfill.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Body } from '../../firmware/core/wire/bodies.js';
import { openCapabilities, signCapabilities } from '../../gateway/mesh/offload.js';
import { answer } from './job-results.js';
import { startFakeLlm, streamText, type FakeLlm } from './fake-llm.js';
import { eventually, pairDevice, sleep, startTestGateway, type TestGateway } from './support.js';
import type { WireDevice } from './wire-device.js';
import { operator } from './mesh-support.js';
import { OFFLOAD_PROTOCOL, PeerBackend } from '../../gateway/mesh/offload.js';

const T0 = 1_700_000_000;
const ANSWER = Array.from({ length: 6 }, (_, i) => `Line ${i}: via the mesh — Ünïcödé 漢字 😀⚡ ok.\n`).join('');
const QUEUE = { firstTokenTimeoutMs: 2000, idleTimeoutMs: 2000, jobTimeoutMs: 5000, rateBurst: 1000, rateIntervalMs: 1, chunkIntervalMs: 20 };
const X = operator('x');
const Y = operator('y');
const mesh = (peers: string[] = [], op = X) => ({
  operatorKey: op.file, trustOperators: [(op === X ? Y : X).pub], meshListen: '/ip4/127.0.0.1/tcp/0', peers, meshSyncMs: 300,
  meshPeerQuota: { concurrent: 2, burst: 3, intervalMs: 60_000 },
});

let fake: FakeLlm;
let A: TestGateway, B: TestGateway, C: TestGateway;

test.before(async () => {
  fake = await startFakeLlm(async (req, res) => {
    if (req.body.messages[1]?.content !== 'trickle') return streamText(ANSWER)(req, res);
    res.start();
    for (let i = 0; !res.closed(); i++) {
      await res.token(`t${i} `);
      await sleep(30);
    }
  });
  B = await startTestGateway({ ...mesh(), llmUrl: fake.url, llmModel: 'gpu-model', offload: { queue: QUEUE } });
  A = await startTestGateway({ ...mesh([B.gw.meshAddr!]), offload: { queue: QUEUE } });
  // C: a gateway of operator y, which x trusts (admitted), without a backend of its own.
  C = await startTestGateway({ ...mesh([B.gw.meshAddr!], Y), offload: { queue: QUEUE } });
});

test.after(async () => {
  await A?.close();
  await B?.close();
  await C?.close();
  await fake?.close();
});

const job = (d: WireDevice, id: number, prompt: string) => d.send({ type: Body.job, job: id, kind: 'llm.generate', input: { prompt, max_tokens: 64 } });

test('a capability announcement is signed and opens to what was signed', () => {
  const sign = B.gw.mesh.signer;
  const bytes = signCapabilities({ capabilities: ['llm.generate'], gateway: B.gw.id, peer: B.gw.mesh.peerId, t: 1 }, sign);
  const r = openCapabilities(bytes);
  assert.ok(typeof r !== 'string', String(r));
  if (typeof r !== 'string') assert.equal(r.caps, { capabilities: ['llm.generate'], gateway: B.gw.id, peer: B.gw.mesh.peerId, t: 1 });
  const bad = new Uint8Array(bytes);
  bad[bad.length - 1] ^= 1;
  assert.is(openCapabilities(bad), 'signature');
});

test('a gateway without a backend gets the answer from a peer that announced llm.generate', async () => {
  assert.equal(A.gw.offload.capabilities(), []);
  assert.equal(B.gw.offload.capabilities(), ['llm.generate']);
  const t0 = Date.now();
  await eventually(() => A.gw.mesh.peerCapabilities()[B.gw.mesh.peerId]?.includes('llm.generate'), 10_000, 'A learns what B offers');
  console.log(`A learned B's capabilities after ${Date.now() - t0} ms`);
  // Each side learns the other's summary on its own schedule: wait for B to hear A, then check what it heard.
  await eventually(() => B.gw.mesh.peerCapabilities()[A.gw.mesh.peerId] !== undefined, 10_000, 'B hears from A');
  assert.equal(B.gw.mesh.peerCapabilities()[A.gw.mesh.peerId], [], 'A announces nothing to offer');

  const d = await pairDevice(A);
  await d.send({ type: Body.readings, first: 1, records: [[T0, 3, 4321]] });
  await d.waitAck(1);
  const t1 = Date.now();
  await job(d, 1, 'what does my meter draw?');
  const a = await answer(d, 1, 10_000);
  console.log(`job via the mesh answered in ${Date.now() - t1} ms, ${a.parts.length} chunks`);
  assert.is(a.error, undefined);
  assert.is(a.text, ANSWER, 'exactly the model output, as B\'s server streamed it');
  const req = fake.requests.find((r) => r.body.messages[1]?.content === 'what does my meter draw?')!;
  assert.ok(req, 'B\'s backend got the job');
  assert.is(req.body.model, 'gpu-model');
  assert.is(req.body.max_tokens, 64);
  assert.match(req.body.messages[0].content, d.id, 'the context A built for its device travels with the job');
  assert.match(req.body.messages[0].content, /4321/);
});

test('a gateway of another operator is neither served nor routed to, even admitted', async () => {
  await eventually(() => C.gw.mesh.peerCapabilities()[B.gw.mesh.peerId]?.includes('llm.generate'), 10_000, 'C learns what B offers');
  // C's router never picks B: a job carries the meter's readings as context.
  assert.is(C.gw.mesh.offloadPeer('llm.generate'), undefined);
  const d = await pairDevice(C);
  await job(d, 1, 'may I?');
  assert.match((await answer(d, 1)).error!, /has no LLM backend/);
  // Asked directly, B refuses it.
  const refused = await B.metric('gridlet_mesh_refused_total', { reason: 'operator' });
  const direct = new PeerBackend(B.gw.mesh.peerId, B.gw.id, (p, proto, signal) => C.gw.mesh.node!.dialProtocol(p, proto, signal));
  const err = await direct.generate({ system: 's', prompt: 'p', maxTokens: 5, deviceId: d.id }, AbortSignal.timeout(5000), () => {}).catch((e: Error) => e);
  assert.match(String(err), /runs jobs for gateways of its own operator only/);
  assert.is(await B.metric('gridlet_mesh_refused_total', { reason: 'operator' }), refused + 1);
  assert.ok(!fake.requests.some((r) => r.body.messages[1]?.content === 'p'), 'B\'s backend never saw it');
  void OFFLOAD_PROTOCOL;
});

test('cancelling the job at A closes the stream, and B stops its backend', async () => {
  const d = await pairDevice(A);
  await job(d, 1, 'trickle');
  await d.until(() => d.bodies(Body.jobResult).length > 0, 5000, 'the first chunk via B');
  await d.send({ type: Body.job, job: 2, kind: 'job.cancel', input: { job: 1 } });
  const a = await answer(d, 1);
  assert.is(a.error, 'cancelled');
  assert.match(a.text, /^t0 /);
  const req = fake.requests.find((r) => r.body.messages[1]?.content === 'trickle')!;
  await eventually(() => req.aborted, 3000, 'B\'s request to its LLM server aborted');
});

test('a peer of the same operator over its quota is told so; the backend sees only what the quota lets through', async () => {
  const direct = new PeerBackend(B.gw.mesh.peerId, B.gw.id, (p, proto, signal) => A.gw.mesh.node!.dialProtocol(p, proto, signal));
  const before = fake.requests.length;
  const results = [];
  // A's earlier jobs took from its bucket of 3 already: at most 3 in all per minute.
  for (let i = 0; i < 4; i++) {
    results.push(await direct.generate({ system: 's', prompt: `quota ${i}`, maxTokens: 5, deviceId: 'aaaaaaaaaaaaaaaa' }, AbortSignal.timeout(5000), () => {})
      .then(() => 'ok', (e: Error) => e.message));
  }
  assert.ok(results.some((r) => /quota/.test(r)), results.join('; '));
  assert.ok(await B.metric('gridlet_mesh_refused_total', { reason: 'quota' }) >= 1);
  assert.is(fake.requests.length - before, results.filter((r) => r === 'ok').length);
});

test('with the peer gone, the job ends with a clear error within the time limit', async () => {
  const d = await pairDevice(A);
  await B.stop();
  const t0 = Date.now();
  await job(d, 1, 'anyone there?');
  const a = await answer(d, 1, QUEUE.jobTimeoutMs + 2000);
  console.log(`without B: "${a.error}" after ${Date.now() - t0} ms`);
  assert.is(a.text, '');
  assert.match(a.error!, /has no LLM backend|mesh peer .* cannot be reached/);
  // Once A sees B is gone it says so at once.
  await eventually(() => A.gw.mesh.node!.connectedPeers().length === 0, 5000, 'A sees B gone');
  await job(d, 2, 'still nobody?');
  assert.match((await answer(d, 2)).error!, /has no LLM backend: start it with --llm-url URL or --llm-gguf PATH, or peer it with a gateway that offers llm\.generate/);
});

test.run();
