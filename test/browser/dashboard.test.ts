// The dashboard in headless Chromium against a real gateway and host agents with simulated meters:
// pair a meter from the form, watch its readings arrive in the chart without a reload, upload and
// deploy a guest, revoke; pair three meters from a CSV file; sign in on a gateway that needs a token.
// Without /usr/bin/chromium the tests say PENDING and pass (so `npm test` passes on a fresh machine).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHostAgent, type HostAgent } from '../../host/agent-host.js';
import { DIST_DIR, MANIFEST_DIR } from '../../guests/build.js';
import { eventually, startTestGateway, type TestGateway } from '../gateway/support.js';
import { chromiumMissing, launch, type Browser } from './support.js';

const missing = chromiumMissing();
// CI installs Chromium and sets GRIDLET_REQUIRE_BROWSER=1: there a missing browser is a failure, not a skip.
if (missing && process.env.GRIDLET_REQUIRE_BROWSER === '1') throw new Error(`dashboard browser tests cannot run: ${missing}`);
if (missing) console.log(`PENDING dashboard browser tests: ${missing}`);

let t: TestGateway | undefined;
let b: Browser | undefined;
const hosts: HostAgent[] = [];

function meter(t: TestGateway): HostAgent {
  const h = createHostAgent({ brokers: [t.gw.mqttUrl], meter: 'sim', intervalMs: 400, model: 'gridlet-sim', topicPrefix: t.prefix });
  h.agent.start();
  hosts.push(h);
  return h;
}

/** Errors the page raised; failed requests the page expects (a 404 it reads as "not there") aside. */
function pageErrors(b: Browser): string[] {
  return b.errors.filter((e) => !/Failed to load resource/.test(e));
}

test.after.each(async () => {
  for (const h of hosts.splice(0)) h.stop();
  await b?.close();
  b = undefined;
  await t?.close();
  t = undefined;
});

test('pair a meter from the form, see its readings live, deploy a guest, revoke it', async () => {
  if (missing) return;
  t = await startTestGateway();
  const m = meter(t);
  const id = m.agent.deviceId;
  b = await launch();
  const { page } = b;
  page.on('dialog', (d) => void d.accept());
  await page.goto(`${t.gw.httpUrl}/`);

  // The meter's Hello makes it appear as "seen", with a Pair button.
  const row = page.locator(`#fleet tr[data-device="${id}"]`);
  await row.locator('.badge', { hasText: 'seen' }).waitFor({ timeout: 15_000 });
  // The page lists the fleet first and then opens its live stream: the row can show before the stream is up.
  await page.locator('#live.on', { hasText: 'live' }).waitFor({ timeout: 10_000 });
  await row.locator('button[data-pair]').click();
  await page.waitForURL(`**/#/pair/${id}`);
  assert.is(await page.inputValue('#pair-id'), id);

  // A wrong code first: the meter refuses it, and the page says so in words.
  await page.fill('#pair-code', 'AAAAA-AAAAA');
  await page.click('#pair-submit');
  await page.locator('#pair-result[data-status="403"]').waitFor({ timeout: 20_000 });
  assert.match(await page.locator('#pair-result').textContent() ?? '', /refused the code/);
  assert.is((await t.api('GET', `/api/devices/${id}`)).json.state, 'seen');

  await page.fill('#pair-code', m.agent.identity.pairCode);
  await page.click('#pair-submit');
  await page.locator('#pair-result[data-status="201"]').waitFor({ timeout: 20_000 });
  assert.match(await page.locator('#pair-result').textContent() ?? '', /Paired/);
  assert.is((await t.api('GET', `/api/devices/${id}`)).json.state, 'paired');

  // The device page: readings appear in the power chart and keep coming without a reload.
  await page.goto(`${t.gw.httpUrl}/#/devices/${id}`);
  await page.locator('h1.devtitle .badge', { hasText: 'paired' }).waitFor();
  const power = page.locator('svg.chart[data-channel="3"]');
  await power.waitFor({ timeout: 15_000 });
  const points = async () => Number(await power.getAttribute('data-points'));
  await eventually(async () => (await points()) >= 2, 15_000, 'two power readings in the chart');
  const before = await points();
  await eventually(async () => (await points()) > before + 2, 15_000, 'more readings arriving live');
  assert.ok(await power.locator('path.line').count() === 1, 'a line is drawn');
  const shown = (await page.locator('[data-channel-value="3"]').textContent()) ?? '';
  const watts = Number(shown.replace(/[^\d.]/g, '')) * (/kW/.test(shown) ? 1000 : 1);
  const stored = (await t.api('GET', `/api/devices/${id}/readings?limit=10000`)).json.records as unknown[][];
  const values = stored.filter((r) => r[2] === 3).map((r) => r[3] as number);
  assert.ok(values.length > 0);
  assert.ok(values.some((v) => Math.abs(v - watts) <= (/kW/.test(shown) ? 50 : 0)), `the chart shows ${shown}, a stored power reading`);

  // Upload a built guest and deploy it to this meter; the meter's acknowledgement shows up.
  await page.goto(`${t.gw.httpUrl}/#/guests`);
  await page.setInputFiles('#guest-wasm', join(DIST_DIR, 'peak-guard.wasm'));
  await page.fill('#guest-manifest', readFileSync(join(MANIFEST_DIR, 'peak-guard.json'), 'utf8'));
  await page.click('#guest-upload-submit');
  await page.locator('#guest-upload-result.ok').waitFor({ timeout: 10_000 });
  const cid = /stored as (b[a-z2-7]+)/.exec((await page.locator('#guest-upload-result').textContent()) ?? '')?.[1];
  assert.ok(cid, 'the page names the stored guest by CID');
  await page.locator('#guest-list td.mono').first().waitFor();
  await page.selectOption('#deploy-device', id);
  await page.click('#deploy-submit');
  await page.locator(`#deploy-results tr[data-device="${id}"] .sent.ok`).waitFor({ timeout: 10_000 });
  await page.locator(`#deploy-results tr[data-device="${id}"] .acked .chip`, { hasText: 'running' }).waitFor({ timeout: 20_000 });
  assert.ok(m.guests.status().some((g) => g.name === 'peak-guard' && g.state === 'running'), 'the guest runs on the meter');

  // Revoke from the device page (the confirm dialog is accepted); the page shows it revoked.
  await page.goto(`${t.gw.httpUrl}/#/devices/${id}`);
  await page.locator('#device-guests tr[data-guest="peak-guard"]').waitFor({ timeout: 10_000 });
  // Its privacy policy, as GET /api/devices/:id/privacy has it.
  const policy = (await t.api('GET', `/api/devices/${id}/privacy`)).json;
  if (policy?.policy) {
    const rows = page.locator('#privacy-summary');
    await rows.waitFor({ timeout: 10_000 });
    const days = policy.policy.retentionDays;
    assert.match((await rows.textContent()) ?? '', days === null ? /kept forever/ : new RegExp(`${days} days`));
  }
  await page.click('#revoke');
  await page.locator('h1.devtitle .badge', { hasText: 'revoked' }).waitFor({ timeout: 10_000 });
  assert.is((await t.api('GET', `/api/devices/${id}`)).json.state, 'revoked');
  await page.goto(`${t.gw.httpUrl}/#/`);
  await row.locator('.badge', { hasText: 'revoked' }).waitFor();
  assert.equal(pageErrors(b), []);
});

test('pair three meters from a CSV file, with a bad line and an unknown meter reported', async () => {
  if (missing) return;
  t = await startTestGateway();
  const ms = [meter(t), meter(t), meter(t)];
  for (const m of ms) await eventually(async () => (await t!.api('GET', `/api/devices/${m.agent.deviceId}`)).status === 200, 10_000, 'Hello');
  const unknown = 'aaaaaaaaaaaaaaaa';
  const csv = ['device id,code', ...ms.map((m) => `${m.agent.deviceId},${m.agent.identity.pairCode}`), 'not-a-meter,12345', `${unknown},ABCDE-FGHIJ`, ''].join('\n');
  b = await launch();
  const { page } = b;
  await page.goto(`${t.gw.httpUrl}/#/pair`);
  await page.setInputFiles('#csv-file', { name: 'meters.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await page.locator('#csv-summary').waitFor({ timeout: 30_000 });
  assert.is(await page.locator('#csv-summary').textContent(), '3 of 4 meter(s) paired; 1 line(s) could not be read.');
  assert.is(await page.locator('#csv-progress').evaluate((p: { value: number }) => p.value), 4);
  for (const [i, m] of ms.entries()) {
    assert.match((await page.locator(`#csv-results tr[data-line="${i + 2}"]`).textContent()) ?? '', /201 Paired/);
    assert.is((await t.api('GET', `/api/devices/${m.agent.deviceId}`)).json.state, 'paired');
  }
  assert.match((await page.locator('#csv-results tr[data-line="5"]').textContent()) ?? '', /not sent: "not-a-meter" is not a device id/);
  assert.match((await page.locator('#csv-results tr[data-line="6"]').textContent()) ?? '', /404 No Hello seen/);

  // The fleet list shows them paired, and its counters agree.
  await page.goto(`${t.gw.httpUrl}/#/`);
  for (const m of ms) await page.locator(`#fleet tr[data-device="${m.agent.deviceId}"] .badge`, { hasText: 'paired' }).waitFor();
  assert.match((await page.locator('.stats .stat').first().textContent()) ?? '', /^3paired/);
  assert.equal(pageErrors(b), []);
});

test('a gateway on a network address asks for its token, then works live', async () => {
  if (missing) return;
  t = await startTestGateway({ httpListen: '0.0.0.0:0', apiToken: 'sesame-token-123' });
  const port = new URL(t.gw.httpUrl).port;
  const url = `http://127.0.0.1:${port}`;
  const m = meter(t);
  b = await launch();
  const { page } = b;
  await page.goto(`${url}/`);
  await page.locator('#login-form').waitFor();
  await page.fill('#login-token', 'wrong');
  await page.click('#login-form button[type=submit]');
  await page.locator('#login-error', { hasText: 'not accepted' }).waitFor();
  await page.fill('#login-token', 'sesame-token-123');
  await page.click('#login-form button[type=submit]');
  await page.locator('#login').waitFor({ state: 'hidden' });
  await page.locator(`#fleet tr[data-device="${m.agent.deviceId}"]`).waitFor({ timeout: 15_000 });
  await page.locator('#live', { hasText: 'live' }).waitFor({ timeout: 10_000 });
  // The API itself still refuses a request without the token.
  const res = await fetch(`${url}/api/devices`);
  assert.is(res.status, 401);
  assert.equal(pageErrors(b), []);
});

test('`gridlet demo` prints the dashboard and an unpaired meter that pairs from the browser', async () => {
  if (missing) return;
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-demo-browser-'));
  const child = spawn(process.execPath, ['bin/gridlet.js', 'demo', '--meters', '1', '--unpaired', '1', '--interval', '500',
    '--http-listen', '127.0.0.1:0', '--data', dir, '--duration', '120'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
  try {
    const [, url] = await eventually<RegExpExecArray>(() => /open the dashboard: (http:\/\/127\.0\.0\.1:\d+)\//.exec(out) ?? undefined, 30_000, `the dashboard URL in:\n${out}`);
    const [, id, code] = /pair it from the dashboard: id ([a-z2-7]{16}) code (\S+)/.exec(out) ?? [];
    assert.ok(id && code, out);
    b = await launch();
    const { page } = b;
    await page.goto(`${url}/`);
    const row = page.locator(`#fleet tr[data-device="${id}"]`);
    await row.locator('.badge', { hasText: 'seen' }).waitFor({ timeout: 15_000 });
    await row.locator('button[data-pair]').click();
    await page.fill('#pair-code', code);
    await page.click('#pair-submit');
    await page.locator('#pair-result[data-status="201"]').waitFor({ timeout: 20_000 });
    await page.goto(`${url}/#/devices/${id}`);
    await page.locator('svg.chart[data-channel="3"] path.line').waitFor({ timeout: 15_000 });
    assert.equal(pageErrors(b), []);
  } finally {
    child.kill('SIGINT');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
