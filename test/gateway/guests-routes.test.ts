// Guests through the gateway (GUESTS.md "Deployment", WIRE.md guest-offer / guest-chunk / guest-ack):
// upload by JSON (admitted, instrumented when needed, kept by CID), deploy to a test-double device
// (offer + chunks that reassemble to the CID's bytes), kept and resent until a down-ack, guest-acks
// recorded per device, removal, and `gridlet guest deploy`.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_DIR, MANIFEST_DIR } from '../../guests/build.js';
import { cidFromText, cidMatches, cidToText, guestCid, worldCid } from '../../firmware/core/guests/cid.js';
import { decodeWorld, encodeWorld, worldManifestToMap } from '../../firmware/core/guests/world.js';
import { manifestToMap, parseManifest } from '../../firmware/core/guests/manifest.js';
import { Body, type GuestChunk, type GuestOffer } from '../../firmware/core/wire/bodies.js';
import { MAX_FRAME_BYTES } from '../../firmware/core/wire/frame.js';
import { guestDeployMain } from '../../host/cli/ops.js';
import type { Io } from '../../host/cli/args.js';
import { frameSize } from '../../gateway/http/device-ops.js';
import { assemble, f64c, guest, i32c, T } from '../core/support/guests.js';
import { helloSeen, pairDevice, sleep, startTestGateway, type TestGateway } from './support.js';
import type { WireDevice } from './wire-device.js';

const peakGuard = new Uint8Array(readFileSync(join(DIST_DIR, 'peak-guard.wasm')));
const peakManifest = JSON.parse(readFileSync(join(MANIFEST_DIR, 'peak-guard.json'), 'utf8'));
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

let t: TestGateway;

test.before(async () => {
  t = await startTestGateway({ tuning: { resendIntervalMs: 300 } });
});

test.after(async () => {
  await t.close();
});

function capture(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
}

/** The guest bodies the device received for a CID, offer first. */
function guestBodies(d: WireDevice, cid: Uint8Array) {
  const same = (x: Uint8Array) => cidToText(x) === cidToText(cid);
  const offers = d.bodies(Body.guestOffer).filter((b) => same((b as GuestOffer).cid)) as GuestOffer[];
  const chunks = d.bodies(Body.guestChunk).filter((b) => same((b as GuestChunk).cid)) as GuestChunk[];
  return { offers, chunks };
}

function reassemble(size: number, chunks: GuestChunk[]): Uint8Array {
  const out = new Uint8Array(size);
  for (const c of chunks) out.set(c.bytes, c.offset);
  return out;
}

test('a built guest is kept by its CID; listing, metadata and the bytes are served', async () => {
  const r = await t.api('POST', '/api/guests', { wasm: b64(peakGuard), manifest: peakManifest });
  assert.is(r.status, 201, r.text);
  const cid = cidToText(guestCid(peakGuard));
  assert.equal(r.json, { cid, name: 'peak-guard', version: '1.0.0', size: peakGuard.length, instrumented: false });
  const again = await t.api('POST', '/api/guests', { wasm: b64(peakGuard), manifest: peakManifest });
  assert.is(again.status, 200, 'the same bytes and manifest again: already there');
  assert.is(again.json.cid, cid);

  const list = await t.api('GET', '/api/guests');
  assert.is(list.status, 200);
  assert.ok(list.json.some((g: { cid: string }) => g.cid === cid));
  const meta = await t.api('GET', `/api/guests/${cid}`);
  assert.is(meta.status, 200);
  assert.is(meta.json.manifest.fuel_per_call, peakManifest.fuel_per_call);
  const res = await fetch(`${t.gw.httpUrl}/api/guests/${cid}/wasm`);
  assert.is(res.status, 200);
  assert.is(res.headers.get('content-type'), 'application/wasm');
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.ok(cidMatches(cidFromText(cid)!, bytes), 'the bytes served hash to their CID');
  assert.ok(Buffer.from(bytes).equals(Buffer.from(peakGuard)));

  assert.is((await t.api('GET', '/api/guests/bnotacid')).status, 404);
  assert.is((await t.api('GET', `/api/guests/${cidToText(guestCid(new Uint8Array([1])))}`)).status, 404);
});

test('a module without metering is instrumented by the gateway: the CID names the instrumented bytes', async () => {
  const plain = guest();
  const manifest = { name: 'plain', version: '1.0.0', period_s: 5, fuel_per_call: 50_000, memory_bytes: 4096, capabilities: [] };
  const r = await t.api('POST', '/api/guests', { wasm: b64(plain), manifest });
  assert.is(r.status, 201, r.text);
  assert.is(r.json.instrumented, true);
  assert.is.not(r.json.cid, cidToText(guestCid(plain)));
  const res = await fetch(`${t.gw.httpUrl}/api/guests/${r.json.cid}/wasm`);
  const kept = new Uint8Array(await res.arrayBuffer());
  assert.is(cidToText(guestCid(kept)), r.json.cid);
  assert.is(r.json.size, kept.length);
});

test('a hostile or malformed upload is refused with the reason', async () => {
  const evil = guest({ otherImports: [['env', 'abort', [], []]] });
  const manifest = { ...peakManifest, name: 'evil' };
  const r = await t.api('POST', '/api/guests', { wasm: b64(evil), manifest });
  assert.is(r.status, 422);
  assert.match(r.json.error, /guest refused: .*env\.abort.*"gridlet"/);
  assert.match(r.json.reason, /env\.abort/);

  const twoPages = await t.api('POST', '/api/guests', { wasm: b64(guest({ memory: { min: 2, max: 2 } })), manifest });
  assert.is(twoPages.status, 422);
  assert.match(twoPages.json.error, /at most 1 page/);

  const badManifest = await t.api('POST', '/api/guests', { wasm: b64(peakGuard), manifest: { ...peakManifest, period_s: 0 } });
  assert.is(badManifest.status, 422);
  assert.match(badManifest.json.error, /manifest: "period_s"/);

  const cases: [unknown, RegExp][] = [
    [{ manifest: peakManifest }, /^wasm: required/],
    [{ wasm: 'not base64!', manifest: peakManifest }, /^wasm: not valid base64/],
    [{ wasm: b64(peakGuard) }, /^manifest: required/],
    [{ wasm: b64(peakGuard), manifest: peakManifest, name: 'x' }, /^name: unknown field/],
    [[1, 2], /body must be a JSON object/],
  ];
  for (const [body, re] of cases) {
    const x = await t.api('POST', '/api/guests', body);
    assert.is(x.status, 400, JSON.stringify(body).slice(0, 80));
    assert.match(x.json.error, re);
  }
});

test('a world: its bundle is kept by its world CID (members instrumented when they need it) and deployed as one offer', async () => {
  const shedWorld = new Uint8Array(readFileSync(join(DIST_DIR, 'shed-world.world')));
  const up = await t.api('POST', '/api/guests', { world: b64(shedWorld) });
  assert.is(up.status, 201, up.text);
  const cidText = cidToText(worldCid(shedWorld));
  assert.equal(up.json, { cid: cidText, kind: 'world', name: 'shed-world', version: '1.0.0', size: shedWorld.length, instrumented: false, members: ['setpoint', 'shedder'] });
  const meta = await t.api('GET', `/api/guests/${cidText}`);
  assert.is(meta.status, 200, meta.text);
  assert.is(meta.json.kind, 'world');
  assert.equal(meta.json.manifest.modules.map((m: { name: string }) => m.name), ['setpoint', 'shedder']);
  const served = await t.api('GET', `/api/guests/${cidText}/wasm`);
  assert.is(served.status, 200);

  // The same world with members as a compiler leaves them (no metering): the gateway meters them.
  const d0 = decodeWorld(shedWorld);
  if (!d0.ok) throw new Error(d0.reason);
  const lib = assemble({ funcs: [{ results: [T.i32], code: i32c(0) }, { results: [T.i32], code: i32c(0) }, { results: [T.f64], code: f64c(4000) }], exports: [['memory', 2, 0], ['init', 0, 0], ['tick', 0, 1], ['limit', 0, 2]] });
  const plain = encodeWorld(d0.world, [lib, d0.modules[1]]);
  const up2 = await t.api('POST', '/api/guests', { world: b64(plain) });
  assert.is(up2.status, 201, up2.text);
  assert.is(up2.json.instrumented, true);
  assert.not.equal(up2.json.cid, cidToText(worldCid(plain)), 'the CID names the metered bundle');
  const bad = await t.api('POST', '/api/guests', { world: b64(encodeWorld(d0.world, [d0.modules[1], d0.modules[0]])) });
  assert.is(bad.status, 422);
  assert.match(bad.json.reason, /member "setpoint" offers "limit" but its module exports no function of that name/);
  assert.is((await t.api('POST', '/api/guests', { world: b64(shedWorld), manifest: peakManifest })).status, 400);

  const d = await pairDevice(t);
  const r = await t.api('POST', `/api/devices/${d.id}/guests`, { cid: cidText });
  assert.is(r.status, 202, r.text);
  const cid = worldCid(shedWorld);
  await d.until(() => guestBodies(d, cid).chunks.length === r.json.chunks, 3000, 'world offer and chunks');
  const { offers, chunks } = guestBodies(d, cid);
  assert.equal([offers.length, offers[0].name, offers[0].size], [1, 'shed-world', shedWorld.length]);
  assert.equal(offers[0].manifest, worldManifestToMap(d0.world), 'the offer carries the world\'s manifest');
  assert.ok(Buffer.from(reassemble(offers[0].size, chunks)).equals(Buffer.from(shedWorld)));
  assert.ok(frameSize(offers[0])! <= MAX_FRAME_BYTES);
  await d.send({ type: Body.guestAck, cid, state: 'running' });
  let recorded: { name: string; cid: string; state: string }[] = [];
  for (let i = 0; i < 30 && !recorded.some((g) => g.cid === cidText && g.state === 'running'); i++) {
    await sleep(100);
    recorded = (await t.api('GET', `/api/devices/${d.id}/guests`)).json.guests;
  }
  assert.equal(recorded.filter((g) => g.cid === cidText).map((g) => [g.name, g.state]), [['shed-world', 'running']], 'the world\'s guest-ack recorded under its name');
});

test('deploy: offer and ≤ 1024-byte chunks reach the device, reassemble to the CID, and the guest-ack is recorded', async () => {
  const up = await t.api('POST', '/api/guests', { wasm: b64(peakGuard), manifest: peakManifest });
  const cidText = up.json.cid as string;
  const cid = cidFromText(cidText)!;
  const d = await pairDevice(t);
  const r = await t.api('POST', `/api/devices/${d.id}/guests`, { cid: cidText });
  assert.is(r.status, 202, r.text);
  assert.equal(r.json, { deviceId: d.id, cid: cidText, name: 'peak-guard', size: peakGuard.length, chunks: Math.ceil(peakGuard.length / 1024) });

  await d.until(() => guestBodies(d, cid).chunks.length === r.json.chunks, 3000, 'offer and chunks');
  const { offers, chunks } = guestBodies(d, cid);
  assert.is(offers.length, 1);
  const parsedManifest = parseManifest(peakManifest);
  assert.ok(parsedManifest.ok);
  assert.equal(offers[0].manifest, manifestToMap(parsedManifest.ok ? parsedManifest.manifest : (undefined as never)));
  assert.is(offers[0].name, 'peak-guard');
  assert.is(offers[0].size, peakGuard.length);
  // The offer arrives before its chunks, and the chunks in order.
  const order = d.downlinks.filter((x) => x.body.type === Body.guestOffer || x.body.type === Body.guestChunk).map((x) => x.body.type);
  assert.equal(order, [Body.guestOffer, ...chunks.map(() => Body.guestChunk)]);
  for (const c of chunks) {
    assert.ok(c.bytes.length <= 1024, `chunk at ${c.offset} is ${c.bytes.length} bytes`);
    assert.ok(frameSize(c)! <= MAX_FRAME_BYTES, 'a chunk fits one frame');
  }
  const bytes = reassemble(offers[0].size, chunks);
  assert.ok(cidMatches(cid, bytes), 'the reassembled bytes hash to the offered CID');
  assert.ok(Buffer.from(bytes).equals(Buffer.from(peakGuard)));
  // A full 1024-byte chunk with the largest counter still fits a 2048-byte frame.
  assert.ok(frameSize({ type: Body.guestChunk, cid, offset: 1_000_000, bytes: new Uint8Array(1024) })! <= MAX_FRAME_BYTES);

  let dev = (await t.api('GET', `/api/devices/${d.id}`)).json;
  assert.is(dev.guests[cidText].state, 'deploying');
  assert.is(dev.guests[cidText].name, 'peak-guard');

  await d.send({ type: Body.guestAck, cid, state: 'running' });
  await sleep(150);
  dev = (await t.api('GET', `/api/devices/${d.id}`)).json;
  assert.is(dev.guests[cidText].state, 'running');
  assert.is(dev.guests[cidText].name, 'peak-guard', 'the ack keeps the deployment name');
  const view = (await t.api('GET', `/api/devices/${d.id}/guests`)).json;
  assert.is(view.deviceId, d.id);
  assert.is(view.guests.length, 1);
  assert.is(view.guests[0].name, 'peak-guard');
  assert.is(view.guests[0].cid, cidText);
  assert.is(view.guests[0].state, 'running');
  assert.type(view.guests[0].deployedAt, 'string');

  // A later quarantine (GUESTS.md "Supervision") is reported as rejected, with its reason.
  await d.send({ type: Body.guestAck, cid, state: 'rejected', reason: 'quarantined: 5 faults in an hour' });
  await sleep(150);
  const q = (await t.api('GET', `/api/devices/${d.id}/guests`)).json.guests[0];
  assert.is(q.state, 'rejected');
  assert.is(q.reason, 'quarantined: 5 faults in an hour');
});

test('guest bodies are kept until a down-ack covers them and resent, re-sealed, when the device is heard', async () => {
  const up = await t.api('POST', '/api/guests', { wasm: b64(peakGuard), manifest: peakManifest });
  const cid = cidFromText(up.json.cid)!;
  const d = await pairDevice(t);
  let seq = 0;
  const heard = async () => {
    seq++;
    await d.send({ type: Body.readings, first: seq, records: [[1_700_000_000, 1, seq]] });
    await d.waitAck(seq);
  };
  // Other tests' devices keep theirs: count this device's.
  const pendingBefore = await t.metric('gridlet_downlinks_pending');
  const r = await t.api('POST', `/api/devices/${d.id}/guests`, { cid: up.json.cid });
  const n = 1 + r.json.chunks;
  await d.until(() => guestBodies(d, cid).chunks.length === r.json.chunks, 3000, 'first delivery');
  assert.is(await t.metric('gridlet_downlinks_pending'), pendingBefore + n);

  await sleep(350);
  await heard();
  await d.until(() => guestBodies(d, cid).offers.length === 2 && guestBodies(d, cid).chunks.length === 2 * r.json.chunks, 3000, 'resend');
  assert.is(d.refusedDownlinks, 0, 'resends are fresh frames');
  const again = guestBodies(d, cid);
  assert.ok(cidMatches(cid, reassemble(again.offers[1].size, again.chunks.slice(r.json.chunks))), 'the resent chunks reassemble too');

  // The meter acks each body by its own counter (a down-ack covers that body only).
  for (const x of d.downlinks.slice(-n)) await d.send({ type: Body.downAck, counter: x.counter });
  await sleep(350);
  await heard();
  await sleep(150);
  assert.is(guestBodies(d, cid).offers.length, 2, 'acknowledged: not resent');
  assert.is(await t.metric('gridlet_downlinks_pending'), pendingBefore);
});

test('remove by name: guest-remove reaches the device and the removed ack is recorded', async () => {
  const up = await t.api('POST', '/api/guests', { wasm: b64(peakGuard), manifest: peakManifest });
  const cid = cidFromText(up.json.cid)!;
  const d = await pairDevice(t);
  await t.api('POST', `/api/devices/${d.id}/guests`, { cid: up.json.cid });
  await d.send({ type: Body.guestAck, cid, state: 'running' });
  await sleep(100);
  const r = await t.api('DELETE', `/api/devices/${d.id}/guests/peak-guard`, undefined, { 'content-type': 'application/json' });
  assert.is(r.status, 202, r.text);
  assert.equal(r.json, { deviceId: d.id, name: 'peak-guard', cids: [up.json.cid] });
  await d.until(() => d.bodies(Body.guestRemove).length === 1, 3000, 'guest-remove');
  assert.equal(d.bodies(Body.guestRemove)[0], { type: Body.guestRemove, name: 'peak-guard' });
  assert.is((await t.api('GET', `/api/devices/${d.id}/guests`)).json.guests[0].state, 'removing');
  await d.send({ type: Body.guestAck, cid, state: 'removed' });
  await sleep(150);
  assert.is((await t.api('GET', `/api/devices/${d.id}/guests`)).json.guests[0].state, 'removed');

  // A removal of a name the device does not run is answered with an empty CID: it settles the removal too.
  await t.api('DELETE', `/api/devices/${d.id}/guests/peak-guard`, undefined, { 'content-type': 'application/json' });
  await d.send({ type: Body.guestAck, cid: new Uint8Array(0), state: 'removed', reason: 'no guest named peak-guard' });
  await sleep(150);
  const g = (await t.api('GET', `/api/devices/${d.id}/guests`)).json.guests[0];
  assert.is(g.state, 'removed');
  assert.is(g.reason, 'no guest named peak-guard');
  assert.is((await t.api('DELETE', `/api/devices/${d.id}/guests/Bad_Name`, undefined, { 'content-type': 'application/json' })).status, 400);
});

test('deploy refusals: unknown device or CID 404, a device not paired 409, no cid 400', async () => {
  const up = await t.api('POST', '/api/guests', { wasm: b64(peakGuard), manifest: peakManifest });
  assert.is((await t.api('POST', '/api/devices/aaaaaaaaaaaaaaaa/guests', { cid: up.json.cid })).status, 404);
  const seen = t.device();
  await seen.connect(t.gw.mqttUrl);
  await seen.hello();
  await helloSeen(t, seen);
  const r409 = await t.api('POST', `/api/devices/${seen.id}/guests`, { cid: up.json.cid });
  assert.is(r409.status, 409);
  assert.match(r409.json.error, /not paired/);
  const d = await pairDevice(t);
  const unknown = cidToText(guestCid(new Uint8Array([9, 9, 9])));
  const r404 = await t.api('POST', `/api/devices/${d.id}/guests`, { cid: unknown });
  assert.is(r404.status, 404);
  assert.match(r404.json.error, /upload it first/);
  const r400 = await t.api('POST', `/api/devices/${d.id}/guests`, {});
  assert.is(r400.status, 400);
  assert.match(r400.json.error, /^cid: required/);
  const revoked = await pairDevice(t);
  await t.api('DELETE', `/api/devices/${revoked.id}`, undefined, { 'content-type': 'application/json' });
  assert.is((await t.api('POST', `/api/devices/${revoked.id}/guests`, { cid: up.json.cid })).status, 409);
});

test('gridlet guest deploy uploads, deploys to a label group with progress, and waits for the acks', async () => {
  const a = await pairDevice(t);
  const b = await pairDevice(t);
  for (const x of [a, b]) await t.api('PUT', `/api/devices/${x.id}/labels`, { labels: { feeder: 'f7' } });
  const cid = guestCid(readFileSync(join(DIST_DIR, 'tamper-watch.wasm')));
  // Each device acknowledges once it has the whole module.
  for (const x of [a, b]) {
    void x.until(() => guestBodies(x, cid).chunks.length >= 1, 5000, 'chunks').then(() => x.send({ type: Body.guestAck, cid, state: 'running' }));
  }
  const io = capture();
  const code = await guestDeployMain(['tamper-watch', '--label', 'feeder=f7', '--gateway', t.gw.httpUrl, '--wait', '5'], io);
  assert.is(code, 0, io.stderr.join('\n'));
  assert.match(io.stdout[0], new RegExp(`^uploaded tamper-watch 1\\.0\\.0: ${cidToText(cid)}, \\d+ bytes$`));
  const [first, second] = [a.id, b.id].sort();
  assert.ok(io.stdout.includes(`[1/2] ${first}: offer and 1 chunk(s) sent`), io.stdout.join('\n'));
  assert.ok(io.stdout.includes(`[2/2] ${second}: offer and 1 chunk(s) sent`));
  assert.ok(io.stdout.includes(`${a.id}: running`) && io.stdout.includes(`${b.id}: running`));

  const json = capture();
  assert.is(await guestDeployMain(['tamper-watch', '--device', a.id, '--gateway', t.gw.httpUrl, '--json'], json), 0);
  const doc = JSON.parse(json.stdout.join('\n'));
  assert.is(doc.cid, cidToText(cid));
  assert.equal(doc.devices, [{ deviceId: a.id, status: 202, chunks: 1 }]);

  const bad = capture();
  assert.is(await guestDeployMain(['no-such-guest', '--device', a.id, '--gateway', t.gw.httpUrl], bad), 1);
  assert.match(bad.stderr[0], /no built guest "no-such-guest"/);
  const usage = capture();
  assert.is(await guestDeployMain(['tamper-watch', '--gateway', t.gw.httpUrl], usage), 2);
  assert.match(usage.stderr[0], /give --device ID or --label/);

  // A world by name (guests/dist/shed-world.world): one upload, one offer per device.
  const world = capture();
  assert.is(await guestDeployMain(['shed-world', '--device', a.id, '--gateway', t.gw.httpUrl], world), 0, world.stderr.join('\n'));
  const shedWorld = new Uint8Array(readFileSync(join(DIST_DIR, 'shed-world.world')));
  assert.match(world.stdout[0], new RegExp(`^uploaded world shed-world 1\\.0\\.0 \\(setpoint, shedder\\): ${cidToText(worldCid(shedWorld))}, ${shedWorld.length} bytes$`));
  assert.ok(world.stdout.includes(`[1/1] ${a.id}: offer and 3 chunk(s) sent`), world.stdout.join('\n'));
  const withManifest = capture();
  assert.is(await guestDeployMain(['shed-world', '--device', a.id, '--manifest', '{}', '--gateway', t.gw.httpUrl], withManifest), 2);
  assert.match(withManifest.stderr[0], /a world's bundle carries its manifest/);
});

test.run();
