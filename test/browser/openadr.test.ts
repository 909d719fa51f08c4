// The demand-response page's OpenADR panel in headless Chromium, against a gateway that is the VEN of the
// test VTN with a real meter: the VTN link, its events and their meters, and a VTN outage shown as such;
// a gateway without a VTN says how to connect one. Without /usr/bin/chromium the test says PENDING.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startVen, secondsFromNow, simpleEvent, type VenSetup } from '../gateway/openadr-support.js';
import { startTestGateway, type TestGateway } from '../gateway/support.js';
import { chromiumMissing, launch, type Browser } from './support.js';

const missing = chromiumMissing();
if (missing && process.env.GRIDLET_REQUIRE_BROWSER === '1') throw new Error(`OpenADR browser test cannot run: ${missing}`);
if (missing) console.log(`PENDING OpenADR browser tests: ${missing}`);

let s: VenSetup | undefined;
let t: TestGateway | undefined;
let b: Browser | undefined;

test.after.each(async () => {
  await b?.close();
  b = undefined;
  await s?.close();
  s = undefined;
  await t?.close();
  t = undefined;
});

test('the OpenADR panel shows the VTN link, its events and their meters, and an outage', async () => {
  if (missing) return;
  s = await startVen({ version: '3.1.0', meters: 1, labels: [{ feeder: 'f1' }], link: { callbackUrl: 'none' } });
  const { vtn } = s;
  const program = vtn.addProgram({ programName: 'evening-peak' });
  const ev = await vtn.addEvent(simpleEvent('3.1.0', program.id as string, { name: 'peak', start: secondsFromNow(600), durationS: 900, level: 2, targets: { label: ['feeder=f1'] } }));
  b = await launch();
  await b.page.goto(`${s.t.gw.httpUrl}/#/dr`);
  const link = b.page.locator('#openadr .vtn[data-link="ok"]');
  await link.waitFor({ timeout: 15_000 });
  assert.match((await link.textContent()) ?? '', /OpenADR 3\.1\.0 · VEN gw-test · 1 resource/);
  assert.ok(((await link.textContent()) ?? '').includes(vtn.url));
  const row = b.page.locator(`#openadr tr[data-event="${ev.id}"]`);
  await row.waitFor({ timeout: 15_000 });
  const cells = await row.locator('td').allTextContents();
  assert.match(cells[0], /peak/);
  assert.is(cells[1], 'evening-peak');
  assert.is(cells[2], 'pending');
  assert.is(cells[5], '1', 'one meter carries the label');

  await vtn.stop();
  await b.page.locator('#openadr .vtn[data-link="failing"] .error', { hasText: 'unreachable' }).waitFor({ timeout: 15_000 });
  assert.equal(b.errors.filter((e) => !/Failed to load resource/.test(e)), []);
});

test('without a VTN, the panel says how to connect one', async () => {
  if (missing) return;
  t = await startTestGateway();
  b = await launch();
  await b.page.goto(`${t.gw.httpUrl}/#/dr`);
  await b.page.locator('#openadr', { hasText: '--openadr-vtn URL --openadr-client-id ID' }).waitFor({ timeout: 15_000 });
  assert.equal(b.errors, []);
});

test.run();
