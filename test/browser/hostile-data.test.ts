// What a meter reports reaches the dashboard as data, never as markup: objects in the gateway's
// answers never become element attributes (innerHTML). Without /usr/bin/chromium: PENDING.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pairDevice, startTestGateway, type TestGateway } from '../gateway/support.js';
import { chromiumMissing, launch, type Browser } from './support.js';

const missing = chromiumMissing();
if (missing && process.env.GRIDLET_REQUIRE_BROWSER === '1') throw new Error(`dashboard browser tests cannot run: ${missing}`);
if (missing) console.log(`PENDING hostile-data browser tests: ${missing}`);

let t: TestGateway | undefined;
let b: Browser | undefined;

test.after.each(async () => {
  await b?.close();
  b = undefined;
  await t?.close();
  t = undefined;
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

test.run();
