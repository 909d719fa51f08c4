// The dashboard's firmware page in headless Chromium against a real gateway and a host agent that takes
// firmware over the air: a release file uploaded from the page, rolled out to the meter, the device's
// row following it to `confirmed` at 100 %; a release signed by a key the meter does not trust shown
// `failed` with the meter's reason; a canary rollout stopped from the page.
// Without /usr/bin/chromium the test says PENDING and passes.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHostAgent, type HostAgent, type HostAgentOptions } from '../../host/agent-host.js';
import { makeHostImage } from '../../host/ota/host-image.js';
import { encodeManifest, encodeReleaseFile, imageCid, keyIdOf, releaseKeyPair, signManifest } from '../../firmware/core/update/release.js';
import { eventually, startTestGateway, type TestGateway } from '../gateway/support.js';
import { chromiumMissing, launch, type Browser } from './support.js';

const missing = chromiumMissing();
if (missing && process.env.GRIDLET_REQUIRE_BROWSER === '1') throw new Error(`firmware page browser test cannot run: ${missing}`);
if (missing) console.log(`PENDING firmware page browser test: ${missing}`);

const dir = mkdtempSync(join(tmpdir(), 'gridlet-fw-page-'));
let t: TestGateway | undefined;
let b: Browser | undefined;
let host: HostAgent | undefined;

function release(version: string, key = releaseKeyPair(new Uint8Array(32).fill(5))): Buffer {
  const image = makeHostImage({ version }, 40_000);
  const manifest = encodeManifest({
    cid: imageCid(image), size: image.length, version, models: ['gridlet-sim'], minVersion: '0.0.0', keyId: keyIdOf(key.publicKey), created: 1_700_000_000,
  });
  return Buffer.from(encodeReleaseFile({ manifest, signature: signManifest(manifest, key.secretKey) }, image));
}

/** Pairs a host agent through the HTTP API once its Hello reached the gateway. */
async function pair(t: TestGateway, h: HostAgent): Promise<void> {
  const id = h.agent.deviceId;
  await eventually(async () => (await t.api('GET', `/api/devices/${id}`)).status === 200, 15_000, 'the Hello');
  const r = await t.api('POST', '/api/pairings', { deviceId: id, code: h.agent.identity.pairCode });
  assert.is(r.status, 201, r.text);
}

test.after(async () => {
  host?.stop();
  await b?.close();
  await t?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('upload a release, roll it out and watch the meter confirm it; a forged release fails with its reason; stop a rollout', async () => {
  if (missing) return;
  t = await startTestGateway();
  const key = releaseKeyPair(new Uint8Array(32).fill(5));
  // A meter with A/B slots in its data folder; a restart (into the new image) starts it again from there.
  const opts: HostAgentOptions = {
    dataDir: join(dir, 'meter'), brokers: [t.gw.mqttUrl], meter: 'sim', intervalMs: 400, model: 'gridlet-sim', topicPrefix: t.prefix,
    releaseKeys: [key.publicKey], trialMs: 10_000,
    onReboot: () => setImmediate(() => {
      host!.stop();
      host = createHostAgent(opts);
      host.agent.start();
    }),
  };
  host = createHostAgent(opts);
  host.agent.start();
  const id = host.agent.deviceId;
  await pair(t, host);

  b = await launch();
  const { page } = b;
  page.on('dialog', (d) => void d.accept());
  await page.goto(`${t.gw.httpUrl}/#/firmware`);
  await page.locator('#fw-releases', { hasText: 'No releases uploaded yet.' }).waitFor();

  // Upload v2 from the page: the table lists it, and it is offered in the rollout form.
  await page.setInputFiles('#fw-file', { name: 'v2.release', mimeType: 'application/octet-stream', buffer: release('0.2.0', key) });
  await page.click('#fw-upload-submit');
  await page.locator('#fw-upload-result.ok').waitFor();
  assert.match(await page.locator('#fw-upload-result').textContent() ?? '', /0\.2\.0 for gridlet-sim \(40,000 B\) stored as b/);
  await page.locator('#fw-releases tr', { hasText: '0.2.0' }).waitFor();

  // Roll it out to the meter: its row goes through the states to confirmed, at 100 %.
  await page.selectOption('#fw-device', id);
  await page.click('#fw-deploy-submit');
  await page.locator('#fw-deploy-result.ok').waitFor();
  const row = page.locator(`#fw-devices tr[data-device="${id}"]`);
  await row.waitFor();
  await page.locator(`#fw-devices tr[data-device="${id}"][data-state="confirmed"]`).waitFor({ timeout: 60_000 });
  assert.match(await row.locator('td.progress').textContent() ?? '', /100 %/);
  assert.is(await row.locator('td').nth(4).textContent(), '0.2.0', 'the meter runs 0.2.0');
  await page.locator('#fw-rollouts .badge.fw-done').waitFor();

  // A release signed by another key: the meter refuses it, and the page shows why.
  const other = releaseKeyPair(new Uint8Array(32).fill(9));
  await page.setInputFiles('#fw-file', { name: 'v3.release', mimeType: 'application/octet-stream', buffer: release('0.3.0', other) });
  await page.click('#fw-upload-submit');
  await page.locator('#fw-upload-result', { hasText: '0.3.0' }).waitFor();
  await page.selectOption('#fw-device', id);
  await page.click('#fw-deploy-submit');
  await page.locator('#fw-deploy-result', { hasText: '0.3.0' }).waitFor();
  await page.locator(`#fw-devices tr[data-device="${id}"][data-state="failed"]`).waitFor({ timeout: 30_000 });
  assert.match(await row.locator('td.why').textContent() ?? '', /^bad signature: release key [0-9a-f]{16} is not one this firmware trusts/);
  await page.locator('#fw-rollout-reason', { hasText: 'failed or rolled back' }).waitFor();

  // A canary rollout to the meter and a second, paired but offline one: stopped from the page.
  const bytes4 = release('0.4.0', key);
  assert.is((await t.api('POST', '/api/firmware', { release: bytes4.toString('base64') })).status, 201);
  const offline = createHostAgent({ brokers: [t.gw.mqttUrl], meter: 'none', model: 'gridlet-sim', topicPrefix: t.prefix, releaseKeys: [key.publicKey] });
  offline.agent.start();
  await pair(t, offline);
  offline.stop();
  const r = await t.api('POST', '/api/firmware/rollouts', { release: '0.4.0', devices: [offline.agent.deviceId, id], canary: 1, maxFailures: 1 });
  assert.is(r.status, 201, r.text);
  await page.goto(`${t.gw.httpUrl}/#/firmware/${r.json.id}`);
  await page.locator('#fw-rollout .badge.fw-canary').waitFor();
  assert.is(await page.locator(`#fw-devices tr[data-device="${id}"] td`).nth(2).textContent(), 'pending');
  await page.click('#fw-stop');
  await page.locator('#fw-rollout .badge.fw-stopped').first().waitFor();
  await page.locator(`#fw-devices tr[data-device="${id}"][data-state="cancelled"]`).waitFor();
  assert.match(await page.locator('#fw-rollout-reason').textContent() ?? '', /stopped from the dashboard/);
  assert.equal(b.errors.filter((e) => !/Failed to load resource/.test(e)), []);
});

test.run();
