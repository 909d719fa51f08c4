// Issue 5, end to end: a new version of peak-guard deployed through the gateway's HTTP API to a running
// agent is swapped in without a reading dropped; a deployment whose bytes do not match its CID is
// refused by the meter and the running guest stays.

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

test.after(async () => {
  host?.stop();
  await gw?.close();
  rmSync(dir, { recursive: true, force: true });
});

test.run();
