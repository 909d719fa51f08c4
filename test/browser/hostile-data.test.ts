// What a meter reports reaches the dashboard as data, never as markup or as part of a URL: a guest
// name that climbs with `../` cannot make the page revoke another meter, and objects in the gateway's
// answers never become element attributes (innerHTML). Without /usr/bin/chromium: PENDING.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Body } from '../../firmware/core/wire/bodies.js';
import { eventually, pairDevice, startTestGateway, type TestGateway } from '../gateway/support.js';
import { chromiumMissing, launch, type Browser } from './support.js';

const missing = chromiumMissing();
if (missing && process.env.GRIDLET_REQUIRE_BROWSER === '1') throw new Error(`dashboard browser tests cannot run: ${missing}`);
if (missing) console.log(`PENDING hostile-data browser tests: ${missing}`);

let t: TestGateway | undefined;
let b: Browser | undefined;

test.after.each(async () => {
  // A route handler still running when the page closes (the dashboard polls) must not outlive the test.
  await b?.page.unrouteAll({ behavior: 'ignoreErrors' });
  await b?.close();
  b = undefined;
  await t?.close();
  t = undefined;
});

test('a guest name a meter reports as "../../../devices/<other>" removes nothing but that guest', async () => {
  if (missing) return;
  t = await startTestGateway();
  const victim = await pairDevice(t);
  const d = await pairDevice(t);
  const hostile = `../../../devices/${victim.id}`;
  await d.send({ type: Body.status, t: 1_700_000_000, uptime: 5, buffered: 0, dropped: 0, heap: 1000, guests: [[hostile, new Uint8Array(36), 'running']], link: 'primary' });
  await eventually(async () => (await t!.api('GET', `/api/devices/${d.id}/guests`)).json.reported?.length === 1, 5000, 'the status stored');
  b = await launch();
  const { page } = b;
  page.on('dialog', (x) => void x.accept());
  const deletes: string[] = [];
  page.on('request', (r) => {
    if (r.method() === 'DELETE') deletes.push(new URL(r.url()).pathname);
  });
  await page.goto(`${t.gw.httpUrl}/#/devices/${d.id}`);
  const row = page.locator('#device-guests tbody tr').first();
  await row.locator('button', { hasText: 'Remove' }).click();
  await page.locator('#toast').waitFor({ state: 'visible' });
  assert.equal(deletes, [`/api/devices/${d.id}/guests/..%2F..%2F..%2Fdevices%2F${victim.id}`], 'one request, the name as one segment');
  assert.is((await t.api('GET', `/api/devices/${victim.id}`)).json.state, 'paired', 'the other meter is still paired');
  assert.is((await t.api('GET', `/api/devices/${d.id}`)).json.state, 'paired');
});

test('objects in the gateway\'s answers are shown as text, never made into attributes or markup', async () => {
  if (missing) return;
  t = await startTestGateway();
  const d = await pairDevice(t);
  b = await launch();
  const { page } = b;
  // Whatever a gateway answers (an older one, a proxy in between), data stays data.
  await page.route(`**/api/devices/${d.id}/dr-events`, (route) => route.fulfill({
    status: 200, contentType: 'application/json',
    body: JSON.stringify({ deviceId: d.id, events: [{ seq: 1, t: 1_700_000_000, event: { innerHTML: ['<img id="pwned" src="x">'], title: 'spoofed' }, phase: 'start' }] }),
  }));
  await page.goto(`${t.gw.httpUrl}/#/devices/${d.id}`);
  const cell = page.locator('#dr-history tbody tr').first().locator('td').nth(1);
  await cell.waitFor();
  assert.is(await page.locator('#pwned').count(), 0, 'no element made from the answer\'s markup');
  assert.is(await cell.getAttribute('title'), null, 'no attribute taken from the answer');
  assert.match(await cell.textContent() ?? '', /innerHTML=.*<img id=\\"pwned\\"/, 'the object is shown as text');
});

test('a pairing conflict on a meter is shown on its page, with the other operator\'s gateway and name', async () => {
  if (missing) return;
  t = await startTestGateway();
  const d = await pairDevice(t);
  b = await launch();
  const { page } = b;
  const conflict = { gateway: 'zzzzzzzzzzzzzzzz', operator: `op${'a'.repeat(52)}`, operatorName: 'coop', pairedAt: '2026-01-01T00:00:00.000Z' };
  // What a gateway answers when another operator's gateway paired its meter (mesh-three and
  // mesh-admission tests make real ones): the list and the device both carry it.
  await page.route(`**/api/devices/${d.id}`, async (route) => {
    const res = await route.fetch();
    await route.fulfill({ response: res, json: { ...(await res.json()), conflicts: [conflict] } });
  });
  await page.route('**/api/devices', async (route) => {
    const res = await route.fetch();
    const list = (await res.json()) as { id: string }[];
    await route.fulfill({ response: res, json: list.map((x) => (x.id === d.id ? { ...x, conflicts: [conflict] } : x)) });
  });
  await page.goto(`${t.gw.httpUrl}/#/devices/${d.id}`);
  const el = page.locator(`[data-conflict="${conflict.gateway}"]`);
  await el.waitFor({ timeout: 10_000 });
  assert.match(await el.textContent() ?? '', /Pairing conflict: gateway zzzzzzzzzzzzzzzz of operator coop paired this meter .* It displaced nothing/);
});

test.run();
