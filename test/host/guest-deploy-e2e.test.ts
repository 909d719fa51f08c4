// End to end: a new version of peak-guard deployed through the gateway's HTTP API to a running agent is
// swapped in without a reading dropped; a deployment whose bytes do not match its CID is refused by the
// meter and the running guest stays. The C and Rust guests and a world deploy the same way, and a new
// version of the world replaces it as one unit.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type Gateway } from '../../gateway/gateway.js';
import { createHostAgent, type HostAgent } from '../../host/agent-host.js';
import { Body } from '../../firmware/core/wire/bodies.js';
import { cidToText, guestCid } from '../../firmware/core/guests/cid.js';
import { manifestToMap, parseManifest } from '../../firmware/core/guests/manifest.js';
import { decodeWorld, encodeWorld } from '../../firmware/core/guests/world.js';

const dir = mkdtempSync(join(tmpdir(), 'gridlet-deploy-'));
let gw: Gateway | undefined;
let host: HostAgent | undefined;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LINES = 160;

async function until<T>(what: string, f: () => Promise<T> | T, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await sleep(100);
  }
}

/** peak-guard with a custom section naming its version: the same code, new bytes, a new CID. */
function version(wasm: Uint8Array, v: string): Uint8Array {
  const name = new TextEncoder().encode('gridlet.version');
  const payload = new TextEncoder().encode(v);
  const body = [name.length, ...name, ...payload];
  return new Uint8Array([...wasm, 0, body.length, ...body]);
}

test('a new peak-guard replaces the running one without a reading dropped; a wrong hash changes nothing', async () => {
  gw = await startGateway({ dataDir: join(dir, 'gw'), mqttListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', logger: { log() {} } });
  const replay = join(dir, 'meter.jsonl');
  writeFileSync(replay, Array.from({ length: LINES }, (_, i) => JSON.stringify({ t: 1_700_000_000 + i, values: [[3, 500 + i]] })).join('\n'));
  host = createHostAgent({ dataDir: join(dir, 'agent'), brokers: [gw.mqttUrl], meter: `replay:${replay}`, intervalMs: 100, guests: ['peak-guard'] });
  const a = host.agent;
  a.start();
  await until('pairing', async () => (await fetch(`${gw!.httpUrl}/api/pairings`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deviceId: a.deviceId, code: a.identity.pairCode }),
  })).status, (s) => s === 201);
  const running = () => host!.guests.status().find((g) => g.name === 'peak-guard');
  assert.is(running()?.version, '1.0.0');

  const v1 = new Uint8Array(readFileSync('guests/dist/peak-guard.wasm'));
  const manifest = JSON.parse(readFileSync('manifests/guests/peak-guard.json', 'utf8'));
  const v2 = version(v1, '1.1.0');
  const up = await fetch(`${gw.httpUrl}/api/guests`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ wasm: Buffer.from(v2).toString('base64'), manifest: { ...manifest, version: '1.1.0' } }),
  });
  assert.is(up.status, 201, await up.clone().text());
  const { cid } = (await up.json()) as { cid: string };
  const dep = await fetch(`${gw.httpUrl}/api/devices/${a.deviceId}/guests`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ cid }),
  });
  assert.is(dep.status, 202, await dep.clone().text());
  await until('version 1.1.0 running on the meter', () => running(), (g) => g?.version === '1.1.0' && g.state === 'running');
  const acked = await until('the gateway to see the guest-ack', async () =>
    (await (await fetch(`${gw!.httpUrl}/api/devices/${a.deviceId}/guests`)).json()) as unknown,
  (v) => JSON.stringify(v).includes(cid) && JSON.stringify(v).includes('running'));
  assert.ok(acked);

  // A deployment whose chunks do not hash to the offered CID (corrupted in transit).
  const v3 = version(v1, '9.9.9');
  const m = parseManifest({ ...manifest, version: '9.9.9' });
  if (!m.ok) throw new Error(m.reason);
  const wrongCid = guestCid(v3);
  await gw.sendDownlink(a.deviceId, { type: Body.guestOffer, name: 'peak-guard', cid: wrongCid, manifest: manifestToMap(m.manifest), size: v2.length });
  for (let off = 0; off < v2.length; off += 1024) {
    await gw.sendDownlink(a.deviceId, { type: Body.guestChunk, cid: wrongCid, offset: off, bytes: v2.subarray(off, off + 1024) });
  }
  const refusal = await until('the meter to refuse it', async () =>
    JSON.stringify(await (await fetch(`${gw!.httpUrl}/api/devices/${a.deviceId}/guests`)).json()),
  (v) => v.includes(cidToText(wrongCid)) && v.includes('rejected'));
  assert.match(refusal, /hash|CID|cid/, 'the refusal names the hash');
  assert.is(running()?.version, '1.1.0', 'the old guest keeps running');
  assert.is(running()?.state, 'running');

  // Every reading of the replay arrived, exactly once and in order, across both swaps.
  const values = await until('all readings stored', async () => {
    const { records } = (await (await fetch(`${gw!.httpUrl}/api/devices/${a.deviceId}/readings?limit=10000`)).json()) as { records: unknown[][] };
    return records.filter((r) => typeof r[2] === 'number').map((r) => r[3] as number);
  }, (v) => v.length >= LINES, 40_000);
  assert.equal(values, Array.from({ length: LINES }, (_, i) => 500 + i));
});

async function deploy(body: object): Promise<string> {
  const up = await fetch(`${gw!.httpUrl}/api/guests`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.ok(up.status === 201 || up.status === 200, await up.clone().text());
  const { cid } = (await up.json()) as { cid: string };
  const dep = await fetch(`${gw!.httpUrl}/api/devices/${host2!.agent.deviceId}/guests`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ cid }),
  });
  assert.is(dep.status, 202, await dep.clone().text());
  return cid;
}

async function acked(cid: string, state: string): Promise<void> {
  await until(`the gateway to record ${state} for ${cid}`, async () =>
    (await (await fetch(`${gw!.httpUrl}/api/devices/${host2!.agent.deviceId}/guests`)).json()) as { guests: { cid: string; state: string }[] },
  (v) => v.guests.some((g) => g.cid === cid && g.state === state));
}

let host2: HostAgent | undefined;

test('the C and Rust guests and a world deploy through the gateway; a new world version replaces it as a unit', async () => {
  host2 = createHostAgent({ dataDir: join(dir, 'agent2'), brokers: [gw!.mqttUrl], meter: 'none', intervalMs: 100 });
  const a = host2.agent;
  a.start();
  await until('pairing', async () => (await fetch(`${gw!.httpUrl}/api/pairings`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deviceId: a.deviceId, code: a.identity.pairCode }),
  })).status, (s) => s === 201);
  const status = () => host2!.guests.status();
  for (const name of ['load-shed', 'tariff-opt']) {
    const cid = await deploy({
      wasm: Buffer.from(readFileSync(`guests/dist/${name}.wasm`)).toString('base64'),
      manifest: JSON.parse(readFileSync(`manifests/guests/${name}.json`, 'utf8')),
    });
    await acked(cid, 'running');
  }
  assert.equal(status().map((g) => [g.name, g.state]), [['load-shed', 'running'], ['tariff-opt', 'running']]);
  // load-shed holds relays 1 and 2; the world needs relay 1: remove load-shed first.
  const del = await fetch(`${gw!.httpUrl}/api/devices/${a.deviceId}/guests/load-shed`, { method: 'DELETE', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.is(del.status, 202);
  await until('load-shed removed', () => status(), (s) => !s.some((g) => g.name === 'load-shed'));
  const bundle = new Uint8Array(readFileSync('guests/dist/shed-world.world'));
  const v1 = await deploy({ world: Buffer.from(bundle).toString('base64') });
  await acked(v1, 'running');
  assert.equal(status().filter((g) => g.world).map((g) => [g.name, g.version, g.state]), [
    ['shed-world.setpoint', '1.0.0', 'running'], ['shed-world.shedder', '1.0.0', 'running'],
  ]);
  const d = decodeWorld(bundle);
  if (!d.ok) throw new Error(d.reason);
  const v2 = await deploy({ world: Buffer.from(encodeWorld({ ...d.world, version: '1.1.0', members: d.world.members.map((m) => ({ ...m, manifest: { ...m.manifest, version: '1.1.0' } })) }, d.modules)).toString('base64') });
  await acked(v2, 'running');
  await until('both members at 1.1.0', () => status().filter((g) => g.world), (s) => s.length === 2 && s.every((g) => g.version === '1.1.0' && g.state === 'running'));
  const entries = host2.guests.statusEntries().map(([n, c, st]) => [n, cidToText(c), st]);
  assert.equal(entries, [['tariff-opt', cidToText(guestCid(new Uint8Array(readFileSync('guests/dist/tariff-opt.wasm')))), 'running'], ['shed-world', v2, 'running']]);
});

test.after(async () => {
  host2?.stop();
  host?.stop();
  await gw?.close();
  rmSync(dir, { recursive: true, force: true });
});

test.run();
