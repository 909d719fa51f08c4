// The dashboard's server side: its static files (content types, ETag revalidation, a strict CSP, served
// without the token so the page can ask for it), the live stream GET /api/events (what a meter's pairing
// and readings put on it; closing the gateway ends open streams), and a device's DR history.

import { transform } from 'esbuild';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHostAgent, type HostAgent } from '../../host/agent-host.js';
import { CHANNELS, RecordKind } from '../../firmware/core/wire/constants.js';
import { parseSelector } from '../../gateway/labels.js';
import { parsePairCsv } from '../../gateway/web/pair-csv.js';
import { WEB_DIR } from '../../gateway/web/serve.js';
import { Body } from '../../firmware/core/wire/bodies.js';
import { eventually, pairDevice, readSse, startTestGateway, type SseEvent, type TestGateway } from './support.js';

let t: TestGateway | undefined;
let host: HostAgent | undefined;

test.after.each(async () => {
  host?.stop();
  host = undefined;
  await t?.close();
  t = undefined;
});

async function pairedMeter(t: TestGateway): Promise<HostAgent> {
  const h = createHostAgent({ brokers: [t.gw.mqttUrl], meter: 'sim', intervalMs: 200, topicPrefix: t.prefix });
  h.agent.start();
  await eventually(async () => (await t.api('POST', '/api/pairings', { deviceId: h.agent.deviceId, code: h.agent.identity.pairCode })).status === 201, 10_000, 'pairing');
  return h;
}

/** Reads Server-Sent Events from a fetch body until `until` returns true for the events so far. */
async function readEvents(body: ReadableStream<Uint8Array>, until: (events: SseEvent[]) => boolean): Promise<SseEvent[]> {
  const reader = body.getReader();
  const events = await readSse(reader, until);
  reader.releaseLock();
  return events;
}

test('GET / serves the dashboard with a strict CSP, ETag revalidation and no outside resources', async () => {
  t = await startTestGateway();
  const res = await fetch(`${t.gw.httpUrl}/`);
  assert.is(res.status, 200);
  assert.is(res.headers.get('content-type'), 'text/html; charset=utf-8');
  const csp = res.headers.get('content-security-policy') ?? '';
  assert.match(csp, /script-src 'self'/);
  assert.not.match(csp, /unsafe-inline|unsafe-eval/);
  assert.match(csp, /frame-ancestors 'none'/);
  const html = await res.text();
  assert.is(html, readFileSync(join(WEB_DIR, 'index.html'), 'utf8'));
  assert.not.match(html, /<script>|<script(?![^>]*\bsrc=)[^>]*>|https?:\/\//, 'no inline script and nothing fetched from elsewhere');
  const etag = res.headers.get('etag')!;
  assert.ok(etag);
  const again = await fetch(`${t.gw.httpUrl}/`, { headers: { 'if-none-match': etag } });
  assert.is(again.status, 304);
  assert.is(await again.text(), '');
  const css = await fetch(`${t.gw.httpUrl}/app.css`);
  assert.is(css.headers.get('content-type'), 'text/css; charset=utf-8');
  // Every module the page loads, followed from /app.js through its imports, comes from this gateway.
  const modules = new Map<string, string>();
  const queue = ['/app.js'];
  while (queue.length) {
    const path = queue.pop()!;
    if (modules.has(path)) continue;
    const r = await fetch(t.gw.httpUrl + path);
    assert.is(r.status, 200, path);
    assert.is(r.headers.get('content-type'), 'text/javascript; charset=utf-8', path);
    assert.is(r.headers.get('cache-control'), 'no-cache');
    const js = await r.text();
    modules.set(path, js);
    for (const m of js.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s*'([^']+)'/gm)) queue.push(new URL(m[1], `http://x${path}`).pathname);
  }
  for (const p of ['/app.js', '/kit.js', '/api.js', '/live.js', '/shared.js', '/pages/fleet.js', '/pages/device.js', '/pages/pair.js', '/pages/guests.js', '/pages/firmware.js', '/pages/dr.js']) {
    assert.ok(modules.has(p), `the page loads ${p}`);
  }
  for (const [p, js] of modules) {
    // A module that does not parse takes the whole page down with it.
    await transform(js, { loader: 'js', format: 'esm' }).catch((e: Error) => assert.unreachable(`${p} does not parse as a module: ${e.message}`));
    assert.not.match(js, /innerHTML|insertAdjacentHTML|document\.write|eval\(/, `${p}: API text only ever goes into text nodes`);
    assert.not.match(js, /^\s*(?:import|export)\b[^;'"]*?from\s*'(?!\.{1,2}\/)/m, `${p}: imports only the page's own modules`);
  }
});

test('the page runs the CLI\'s rules and WIRE.md\'s numbers: /shared.js is the same code, not a copy', async () => {
  t = await startTestGateway();
  const js = await (await fetch(`${t.gw.httpUrl}/shared.js`)).text();
  const page = await import(`data:text/javascript,${encodeURIComponent(js)}`);
  assert.equal(page.CHANNELS, CHANNELS);
  assert.equal(page.RecordKind, RecordKind);
  const csv = 'deviceId,code\n# a comment\naaaaaaaaaaaaaaaa,ABCDE-FGHIJ\nnot-an-id,ABCDE-FGHIJ\naaaaaaaaaaaaaaaa;abcdefghij\nbbbbbbbbbbbbbbbb\tabcde-fghij\n';
  assert.equal(page.parsePairCsv(csv), parsePairCsv(csv));
  for (const sel of ['site=north,tier', 'bad key', '', 'a=b=c']) assert.equal(page.parseSelector(sel), parseSelector(sel), sel);
  assert.is(page.isDeviceId('aaaaaaaaaaaaaaaa'), true);
  assert.is(page.normalizePairCode('abcde-fghij'), 'abcdefghij');
});

test('with --api-token the page loads without the token; the API and the stream need it', async () => {
  t = await startTestGateway({ httpListen: '0.0.0.0:0', apiToken: 'tok-123456' });
  const url = `http://127.0.0.1:${new URL(t.gw.httpUrl).port}`;
  for (const p of ['/', '/app.js', '/app.css', '/api/health']) assert.is((await fetch(url + p)).status, 200, p);
  assert.is((await fetch(`${url}/api/devices`)).status, 401);
  assert.is((await fetch(`${url}/api/events`)).status, 401);
  const ok = await fetch(`${url}/api/events`, { headers: { authorization: 'Bearer tok-123456' } });
  assert.is(ok.status, 200);
  assert.is(ok.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  await ok.body!.cancel();
  // POST stays JSON-only with the right Host even for token holders (security.ts).
  const form = await fetch(`${url}/api/pairings`, { method: 'POST', headers: { authorization: 'Bearer tok-123456', 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b' });
  assert.is(form.status, 415);
});

test('GET /api/events streams pairing and readings; closing the gateway ends the stream', async () => {
  t = await startTestGateway();
  const res = await fetch(`${t.gw.httpUrl}/api/events`);
  assert.is(res.status, 200);
  host = await pairedMeter(t);
  const id = host.agent.deviceId;
  const events = await readEvents(res.body!, (es) => es.some((e) => e.event === 'records' && e.data.deviceId === id && e.data.readings.length > 0));
  assert.is(events[0].event, 'ready');
  const paired = events.find((e) => e.event === 'device' && e.data.change === 'paired');
  assert.ok(paired, 'a device event says the meter was paired');
  assert.is(paired!.data.deviceId, id);
  const rec = events.find((e) => e.event === 'records' && e.data.readings.length > 0)!;
  const stored = (await t.api('GET', `/api/devices/${id}/readings?from=${rec.data.readings[0][0]}&limit=${rec.data.readings.length}`)).json.records;
  assert.equal(rec.data.readings, stored.filter((r: unknown[]) => typeof r[2] === 'number'), 'the streamed readings are the stored ones');
  assert.is(rec.data.lastSeq, Math.max(...rec.data.readings.map((r: number[]) => r[0]), ...rec.data.events.map((e: unknown[]) => e[0] as number)));
  for (const [ch, [, v]] of Object.entries(rec.data.latest as { [c: string]: [number, number] })) {
    assert.is(v, rec.data.readings.filter((r: number[]) => r[2] === Number(ch)).at(-1)[3]);
  }

  // A second stream stays open while the gateway closes: close() must still finish and end it.
  const open = await fetch(`${t.gw.httpUrl}/api/events`);
  const reader = open.body!.getReader();
  await reader.read();
  host.stop();
  host = undefined;
  const closed = t.gw.close().then(() => 'closed');
  const hang = new Promise((r) => setTimeout(() => r('still open after 10 s'), 10_000).unref());
  assert.is(await Promise.race([closed, hang]), 'closed');
  let ended = false;
  try {
    for (;;) if ((await reader.read()).done) break;
    ended = true;
  } catch {
    ended = true; // the connection was closed under the reader
  }
  assert.ok(ended);
  await t.close().catch(() => {});
  t = undefined;
});

test('GET /api/devices/:id/dr-events lists what the meter reported about a DR event', async () => {
  t = await startTestGateway();
  host = await pairedMeter(t);
  const id = host.agent.deviceId;
  const empty = await t.api('GET', `/api/devices/${id}/dr-events`);
  assert.is(empty.status, 200);
  assert.equal(empty.json.events, []);
  // Starting a little ahead, so that a slow delivery on a loaded machine does not make it an event the meter missed.
  const start = Math.floor(Date.now() / 1000) + 2;
  const sent = await t.api('POST', `/api/devices/${id}/dr-events`, { id: 'peak-1', start, duration: 1, level: 2 });
  assert.is(sent.status, 202, sent.text);
  const r = await eventually(async () => {
    const x = await t!.api('GET', `/api/devices/${id}/dr-events`);
    return x.json.events.some((e: { phase: string }) => e.phase === 'end') && x;
  }, 15_000, 'the meter to report the event start and end');
  const phases = r.json.events.filter((e: { event: string }) => e.event === 'peak-1').map((e: { phase: string }) => e.phase);
  assert.equal(phases, ['start', 'end']);
  assert.is((await t.api('GET', '/api/devices/aaaaaaaaaaaaaaaa/dr-events')).status, 404);
});

test('a meter\'s dr event data cannot name another device, another seq or time, nor carry markup objects', async () => {
  t = await startTestGateway();
  const victim = await pairDevice(t);
  const d = await pairDevice(t);
  const res = await fetch(`${t.gw.httpUrl}/api/events`);
  const hostile = {
    deviceId: victim.id, seq: 999, t: 1, event: { innerHTML: ['<img src=x onerror="document.title=1">'] }, phase: 'start', extra: 'x',
  };
  await d.send({ type: Body.event, seq: 1, t: 1_700_000_000, kind: 'dr', data: hostile });
  await d.send({ type: Body.event, seq: 2, t: 1_700_000_001, kind: 'dr', data: { event: 'peak-2', phase: 'end' } });
  await d.waitAck(2);
  const events = await readEvents(res.body!, (es) => es.filter((e) => e.event === 'dr').length >= 2);
  const dr = events.filter((e) => e.event === 'dr').map((e) => e.data);
  assert.equal(dr, [
    { seq: 1, t: 1_700_000_000, phase: 'start', deviceId: d.id },
    { seq: 2, t: 1_700_000_001, event: 'peak-2', phase: 'end', deviceId: d.id },
  ], 'the stream names the meter that sent it, the record\'s own seq and time, and only text fields');
  const history = (await t.api('GET', `/api/devices/${d.id}/dr-events`)).json.events;
  assert.equal(history, [{ seq: 1, t: 1_700_000_000, phase: 'start' }, { seq: 2, t: 1_700_000_001, event: 'peak-2', phase: 'end' }]);
  await res.body!.cancel();
});

test.run();
