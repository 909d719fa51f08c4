// A demand-response event sent through the gateway is kept in the meter's flash; the link then
// goes away (the gateway stops), the event starts and ends on time by the meter's own clock, and what
// the meter did reaches the gateway when it comes back.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type Gateway } from '../../gateway/gateway.js';
import { createHostAgent, type HostAgent } from '../../host/agent-host.js';

const dir = mkdtempSync(join(tmpdir(), 'gridlet-dr-'));
let gw: Gateway | undefined;
let host: HostAgent | undefined;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a DR event that starts while the meter is offline runs on time and is reported after reconnect', async () => {
  const open = (mqttListen: string) => startGateway({ dataDir: join(dir, 'gw'), mqttListen, httpListen: '127.0.0.1:0', logger: { log() {} } });
  gw = await open('127.0.0.1:0');
  const port = new URL(gw.mqttUrl).port;
  host = createHostAgent({ dataDir: join(dir, 'agent'), brokers: [gw.mqttUrl], meter: 'sim', intervalMs: 500, guests: ['dr-responder'] }); // its shedding is covered by guests-scenarios
  const a = host.agent;
  a.start();
  for (let i = 0; ; i++) {
    const r = await fetch(`${gw.httpUrl}/api/pairings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deviceId: a.deviceId, code: a.identity.pairCode }) });
    if (r.status === 201) break;
    assert.ok(i < 40, `pairing ${r.status}`);
    await sleep(250);
  }
  // Far enough ahead that the gateway is surely gone by then, even on a loaded machine.
  const start = Math.floor(Date.now() / 1000) + 6;
  const sent = await fetch(`${gw.httpUrl}/api/devices/${a.deviceId}/dr-events`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'evening-peak', start, duration: 3, level: 2 }),
  });
  assert.is(sent.status, 202, await sent.clone().text());
  while (!a.dr.list().some((e) => e.id === 'evening-peak')) await sleep(50);
  await gw.close();
  gw = undefined;
  // Offline from here: the meter runs the event by itself.
  assert.ok(Date.now() / 1000 < start, 'the gateway went away before the event started');
  const seen: { at: number; level: number }[] = [];
  const ended = () => seen.findIndex((s, i) => i > 0 && s.level === 0 && seen[i - 1].level === 2);
  while (ended() < 0 && Date.now() / 1000 < start + 3 + 10) {
    if (!seen.length || seen[seen.length - 1].level !== a.dr.level) seen.push({ at: Date.now() / 1000, level: a.dr.level });
    await sleep(20);
  }
  assert.is(a.online, false, 'the meter was offline throughout');
  const on = seen.find((s) => s.level === 2);
  const off = seen[ended()];
  if (on && off) console.log(`offline DR event: started ${(on.at - start).toFixed(2)} s, ended ${(off.at - start - 3).toFixed(2)} s after its second`);
  assert.ok(on && Math.abs(on.at - start) <= 1.5, `started on time (at ${on?.at}, scheduled ${start})`);
  assert.ok(off && Math.abs(off.at - (start + 3)) <= 1.5, `ended on time (at ${off?.at}, scheduled ${start + 3})`);

  gw = await open(`127.0.0.1:${port}`);
  let dr: unknown[] = [];
  for (let i = 0; i < 100 && dr.length < 2; i++) {
    await sleep(300);
    const { records } = (await (await fetch(`${gw.httpUrl}/api/devices/${a.deviceId}/readings?limit=10000`)).json()) as { records: unknown[][] };
    dr = records.filter((r) => r[2] === 'event' && r[3] === 'dr').map((r) => r[4]);
  }
  assert.equal(dr, [{ event: 'evening-peak', phase: 'start' }, { event: 'evening-peak', phase: 'end' }], 'reported after reconnect');
});

test.after(async () => {
  host?.stop();
  await gw?.close();
  rmSync(dir, { recursive: true, force: true });
});

test.run();
