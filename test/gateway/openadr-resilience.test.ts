// The VEN when things go wrong, with real meters and the test VTN: a VTN outage (at a 100 ms poll, 40
// polls and a token expiry long: what a 2-minute outage is at a 3 s poll) and a burst of malformed answers
// leave the gateway serving and its meters' events in place, each kind of failure counted and logged
// once, and the VEN resumes; refused credentials are shown as an authentication error and retried ever
// more slowly; a meter offline through a report interval is reported MISSING, then replaced (PUT) with its
// late readings; a webhook subscription brings events to the meters without waiting for a poll.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { drOf, secondsFromNow, simpleEvent, startVen, VEN_NAME, type VenSetup } from './openadr-support.js';
import { eventually, metricValue, sleep } from './support.js';

let s: VenSetup | undefined;

test.after.each(async () => {
  await s?.close();
  s = undefined;
});

const warnings = (v: VenSetup, kind?: string) => v.logs.filter((l) => l.level === 40 && /^OpenADR VTN: (request failed|authentication failed)$/.test(l.msg) && (!kind || l.kind === kind));

test('a VTN outage and a burst of malformed answers: the gateway keeps serving, events stay, the VEN resumes', async () => {
  s = await startVen({ version: '3.1.0', meters: 1, vtn: { tokenTtlS: 2, slowMs: 1500 }, link: { callbackUrl: 'none' }, tuning: { pollMs: 100, timeoutMs: 1000 } });
  const { vtn, t, meters: [m] } = s;
  const program = vtn.addProgram({ programName: 'resilience' });
  const start = secondsFromNow(600);
  const a = await vtn.addEvent(simpleEvent('3.1.0', program.id as string, { name: 'a', start, durationS: 600, level: 2 }));
  await eventually(() => drOf(m).has(`${a.id}#0`), 15_000, 'event a at the meter');

  // Down for 4 s: 40 polls, and the 2 s token expires meanwhile.
  await vtn.stop();
  const tokensBefore = vtn.tokensIssued;
  const seqBefore = (await t.api('GET', `/api/devices/${m.agent.deviceId}`)).json.ackedSeq as number;
  const b = await vtn.addEvent(simpleEvent('3.1.0', program.id as string, { name: 'b', start: start + 60, durationS: 60, level: 1 }));
  await vtn.deleteEvent(a.id as string);
  const downUntil = Date.now() + 4000;
  while (Date.now() < downUntil) {
    assert.is((await t.api('GET', '/api/health')).status, 200, 'the API answers');
    await sleep(250);
  }
  const during = (await t.api('GET', '/api/openadr')).json.vtns[0];
  assert.is(during.link, 'failing');
  assert.equal(during.failing.map((f: { kind: string }) => f.kind), ['unreachable']);
  assert.ok(during.failing[0].count >= 10, `${during.failing[0].count} failed polls`);
  assert.is(drOf(m).get(`${a.id}#0`)?.state, 'pending', 'an unreachable VTN cancels nothing');
  assert.ok((await t.api('GET', `/api/devices/${m.agent.deviceId}`)).json.ackedSeq > seqBefore, 'readings kept arriving');

  await vtn.resume();
  await eventually(() => drOf(m).has(`${b.id}#0`) && drOf(m).get(`${a.id}#0`)?.state === 'ended', 15_000, 'b sent and a cancelled after the outage');
  assert.ok(vtn.tokensIssued > tokensBefore, 'a new token after the old one expired');
  assert.is(warnings(s, 'unreachable').length, 1, 'the outage logged once');
  assert.ok(s.logs.some((l) => l.msg === 'OpenADR VTN: the link works again' && (l.failures as { unreachable?: number }).unreachable! >= 10));
  assert.ok(await metricValue((await t.api('GET', '/metrics')).text, 'gridlet_openadr_errors_total', { kind: 'unreachable' }) >= 10);

  // A burst of bad answers: 5xx, HTML, JSON of another shape, a dropped connection, no answer in time.
  const c = await vtn.addEvent(simpleEvent('3.1.0', program.id as string, { name: 'c', start: start + 120, durationS: 60, level: 3 }));
  await eventually(() => drOf(m).has(`${c.id}#0`), 15_000, 'event c at the meter');
  const warned = warnings(s).length;
  vtn.faults = Array.from({ length: 4 }, () => ['500', 'not-json', 'schema', '503', 'drop', 'slow', 'schema'] as const).flat();
  while (vtn.faults.length) {
    assert.is((await t.api('GET', '/api/health')).status, 200, 'the API answers');
    await sleep(100);
  }
  assert.is(drOf(m).get(`${c.id}#0`)?.state, 'pending', 'malformed answers cancel nothing');
  assert.is(drOf(m).get(`${b.id}#0`)?.state, 'pending');
  const d = await vtn.addEvent(simpleEvent('3.1.0', program.id as string, { name: 'd', start: start + 180, durationS: 60, level: 1 }));
  await eventually(() => drOf(m).has(`${d.id}#0`), 15_000, 'event d after the burst');
  const metrics = (await t.api('GET', '/metrics')).text;
  for (const kind of ['server', 'json', 'schema', 'timeout', 'unreachable']) {
    assert.ok(metricValue(metrics, 'gridlet_openadr_errors_total', { kind }) > 0, `${kind} counted`);
  }
  // 28 failures, each kind logged once per stretch of failures (an invalid list entry is not a failed poll).
  const restored = s.logs.filter((l) => l.msg === 'OpenADR VTN: the link works again').length;
  assert.ok(warnings(s).length - warned <= 5 * restored, `${warnings(s).length - warned} warnings for ${restored} stretches of failures`);
  const after = (await t.api('GET', '/api/openadr')).json.vtns[0];
  assert.is(after.link, 'ok');
  assert.ok(after.errors.server >= 8 && after.errors.timeout >= 4, JSON.stringify(after.errors));
  assert.equal(vtn.badRequests, []);
});

test('refused credentials: an authentication error, retried with a growing pause, then the VEN registers', async () => {
  s = await startVen({ version: '3.0.1', meters: 0, vtn: { clients: { ven1: 'another secret' } }, link: { callbackUrl: 'none' }, tuning: { pollMs: 100, authBackoffMaxMs: 800 } });
  const { vtn, t } = s;
  await eventually(async () => (await t.api('GET', '/api/openadr')).json.vtns[0].link === 'auth-error', 10_000, 'the authentication error shown');
  await sleep(3000);
  // At a 100 ms poll, 30 attempts in 3 s; the pause doubles to 800 ms instead.
  assert.ok(vtn.tokensIssued <= 9, `${vtn.tokensIssued} token requests in 3 s`);
  const st = (await t.api('GET', '/api/openadr')).json.vtns[0];
  assert.match(st.failing[0].message, /refused client ven1 \(401 invalid_client/);
  assert.is(warnings(s, 'auth').length, 1, 'logged once');
  vtn.setClient('ven1', 'secret1');
  await eventually(() => [...vtn.data.vens.values()].some((v) => v.venName === VEN_NAME), 10_000, 'registered once the secret matches');
  await eventually(async () => (await t.api('GET', '/api/openadr')).json.vtns[0].link === 'ok', 5000, 'link ok');
});

test('a meter offline through a report interval: MISSING, then its late readings replace the report (PUT)', async () => {
  s = await startVen({ version: '3.1.0', meters: 2, proxied: [1], link: { callbackUrl: 'none' } });
  const { vtn, t, meters, proxies } = s;
  const program = vtn.addProgram({ programName: 'late' });
  await eventually(() => vtn.data.resources.size === 2, 15_000, 'resources');
  const start = secondsFromNow(3);
  const ev = await vtn.addEvent(simpleEvent('3.1.0', program.id as string, { name: 'late', start, durationS: 3, level: 1, intervals: 2, reports: [{ payloadType: 'USAGE' }] }));
  await proxies.get(1)!.cut();
  const late = meters[1].agent.deviceId;
  type Res = { resourceName: string; intervals: { id: number; payloads: { type: string; values: (number | string)[] }[] }[] };
  const resOf = (id: string) => ([...vtn.data.reports.values()].find((r) => r.eventID === ev.id)?.resources as Res[] | undefined)?.find((r) => r.resourceName === id);
  const first = await eventually(() => resOf(late)?.intervals.length === 2 && resOf(late), 30_000, 'the report with the offline meter');
  assert.equal(first.intervals.map((i) => i.payloads), [[{ type: 'DATA_QUALITY', values: ['MISSING'] }], [{ type: 'DATA_QUALITY', values: ['MISSING'] }]]);
  await eventually(() => resOf(meters[0].agent.deviceId)!.intervals.every((i) => i.payloads[0].type === 'USAGE'), 15_000, 'the online meter reported');
  assert.ok(resOf(late)!.intervals.every((i) => i.payloads[0].type === 'DATA_QUALITY'), 'the offline meter still MISSING');
  const reportId = [...vtn.data.reports.values()].find((r) => r.eventID === ev.id)!.id;
  assert.is(vtn.count('POST', '/reports'), 1);

  await proxies.get(1)!.restore();
  const replaced = await eventually(() => resOf(late)?.intervals.every((i) => i.payloads[0].type === 'USAGE') && resOf(late), 40_000, 'the late readings reported');
  assert.ok(vtn.count('PUT', `/reports/${reportId}`) >= 1, 'the report replaced, not a second one posted');
  assert.is(vtn.count('POST', '/reports'), 1);
  const { records } = (await t.api('GET', `/api/devices/${late}/readings?limit=10000`)).json as { records: [number, number, unknown, unknown][] };
  const at = (x: number) => records.find((r) => r[2] === 1 && r[1] >= x)![3] as number;
  for (const iv of replaced.intervals) assert.is(iv.payloads[0].values[0], at(start + iv.id * 3 + 3) - at(start + iv.id * 3), `interval ${iv.id}`);
  const st = (await t.api('GET', '/api/openadr')).json.vtns[0].events.find((e: { id: string }) => e.id === ev.id);
  assert.equal([st.report.id, st.report.intervals, st.report.missing], [reportId, 2, 0]);
});

test('with a webhook subscription, events reach the meters without waiting for a poll', async () => {
  // A poll a minute: only notifications can bring events within the test's time.
  s = await startVen({ version: '3.1.0', meters: 1, tuning: { pollMs: 60_000 } });
  const { vtn, t, meters: [m] } = s;
  const program = vtn.addProgram({ programName: 'fast' });
  const sub = await eventually(() => [...vtn.data.subscriptions.values()][0], 15_000, 'the subscription');
  const ops = sub.objectOperations as { callbackUrl: string; bearerToken: string; objects: string[] }[];
  assert.equal(ops[0].objects, ['EVENT']);
  assert.match(ops[0].callbackUrl, new RegExp(`^${t.gw.httpUrl}/api/openadr/v[0-9a-f]+/notify$`));
  // The run the meter's pairing started (its resource, then a poll) is over.
  await eventually(() => {
    const made = vtn.requests.findIndex((r) => r.method === 'POST' && r.path === '/resources');
    return made >= 0 && vtn.requests.slice(made).some((r) => r.method === 'GET' && r.path === '/events');
  }, 15_000, 'the meter registered');
  await sleep(200);
  const polls = vtn.count('GET', '/events');
  const ev = await vtn.addEvent(simpleEvent('3.1.0', program.id as string, { name: 'w', start: secondsFromNow(300), durationS: 60, level: 2 }));
  await eventually(() => drOf(m).has(`${ev.id}#0`), 10_000, 'the event at the meter');
  await vtn.updateEvent(ev.id as string, simpleEvent('3.1.0', program.id as string, { name: 'w', start: secondsFromNow(300), durationS: 60, level: 3 }));
  await eventually(() => drOf(m).get(`${ev.id}#0`)?.level === 3, 10_000, 'the change at the meter');
  await vtn.deleteEvent(ev.id as string);
  await eventually(() => drOf(m).get(`${ev.id}#0`)?.state === 'ended', 10_000, 'the cancellation at the meter');
  assert.ok(vtn.notifications.length >= 3 && vtn.notifications.every((n) => n.status === 200), JSON.stringify(vtn.notifications.map((n) => n.status)));
  assert.is(vtn.count('GET', '/events') - polls, vtn.notifications.length, 'one poll per notification, none on the timer');
  // Without the subscription's token, a notification is refused.
  const forged = await fetch(ops[0].callbackUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer nope' }, body: '{}' });
  assert.is(forged.status, 401);
  assert.is((await t.api('GET', '/api/openadr')).json.vtns[0].webhook.state, 'subscribed');
});

test.run();
