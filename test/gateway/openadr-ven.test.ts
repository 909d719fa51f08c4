// The gateway as an OpenADR 3 VEN of the test VTN (openadr-vtn.ts), with real meters (host agents), in
// both versions of the protocol: it gets a token, registers its VEN and a resource per meter, takes each
// event to exactly the meters its targets name (a resource, a label group, the VEN), carries a change and
// a cancellation to them, deletes a revoked meter's resource, and reports USAGE equal to the energy the
// meters stored in each interval.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { OpenAdrSpecVersion } from '../../gateway/openadr/schema.js';
import { drMain } from '../../host/cli/ops.js';
import { drOf, secondsFromNow, simpleEvent, startVen, VEN_NAME, type VenSetup } from './openadr-support.js';
import { eventually, metricValue, sleep, startTestGateway } from './support.js';

let s: VenSetup | undefined;

test.after.each(async () => {
  await s?.close();
  s = undefined;
});

for (const version of ['3.1.0', '3.0.1'] as OpenAdrSpecVersion[]) {
  test(`${version}: registration, targeting, modification, cancellation, revocation`, async () => {
    s = await startVen({ version, meters: 3, labels: [{ feeder: 'f1' }, { feeder: 'f1' }, { feeder: 'f2' }], link: { callbackUrl: 'none' } });
    const { vtn, t, meters } = s;
    const [m0, m1, m2] = meters;
    const ids = meters.map((m) => m.agent.deviceId);

    // A token, the VEN and one resource per meter, named by its device id.
    const ven = await eventually(() => [...vtn.data.vens.values()].find((v) => v.venName === VEN_NAME), 15_000, 'the VEN registered');
    await eventually(() => [...vtn.data.resources.values()].filter((r) => r.venID === ven.id).length === 3, 15_000, 'three resources');
    assert.equal([...vtn.data.resources.values()].map((r) => r.resourceName).sort(), [...ids].sort());
    assert.ok(vtn.tokensIssued >= 1);

    const program = vtn.addProgram({ programName: 'peak-saver' });
    const start = secondsFromNow(120);
    // At one resource: exactly that meter.
    const one = await vtn.addEvent(simpleEvent(version, program.id as string, { name: 'one', start, durationS: 600, level: 2, targets: { resource: [m2.agent.deviceId] } }));
    // At a label group: exactly the meters that carry the label.
    const group = await vtn.addEvent(simpleEvent(version, program.id as string, { name: 'group', start, durationS: 900, level: 1, targets: { label: ['feeder=f1'] } }));
    // At the VEN: every meter.
    const all = await vtn.addEvent(simpleEvent(version, program.id as string, { name: 'all', start: start + 3600, durationS: 300, level: 3, targets: { ven: [VEN_NAME] } }));
    const oneId = `${one.id}#0`, groupId = `${group.id}#0`, allId = `${all.id}#0`;
    await eventually(() => drOf(m2).has(oneId) && drOf(m0).has(groupId) && drOf(m1).has(groupId) && meters.every((m) => drOf(m).has(allId)), 15_000, 'the events at the meters');
    // Several polls later, still nowhere else.
    const polls = vtn.count('GET', '/events');
    await eventually(() => vtn.count('GET', '/events') >= polls + 3, 5000, 'three more polls');
    assert.equal([drOf(m0).has(oneId), drOf(m1).has(oneId), drOf(m2).has(oneId)], [false, false, true], 'the resource-targeted event reached only its meter');
    assert.equal([drOf(m0).has(groupId), drOf(m1).has(groupId), drOf(m2).has(groupId)], [true, true, false], 'the label-targeted event reached only the labelled meters');
    const e = drOf(m2).get(oneId)!;
    assert.equal([e.level, e.start, e.duration, e.state], [2, start, 600, 'pending']);

    // The gateway shows the events and their meters.
    const status = (await t.api('GET', '/api/openadr')).json;
    const link = status.vtns[0];
    assert.is(link.link, 'ok');
    assert.is(link.venId, ven.id);
    assert.is(link.resources, 3);
    const shown = Object.fromEntries(link.events.map((x: { id: string; devices: string[] }) => [x.id, x.devices]));
    assert.equal(shown[one.id as string], [m2.agent.deviceId]);
    assert.equal(shown[group.id as string], [m0.agent.deviceId, m1.agent.deviceId].sort());
    assert.equal(shown[all.id as string], [...ids].sort());
    // … and so does `gridlet dr vtn`.
    const out: string[] = [];
    assert.is(await drMain(['vtn', '--gateway', t.gw.httpUrl], { out: (l) => out.push(l), err: (l) => out.push(l) }), 0, out.join('\n'));
    assert.match(out[0], new RegExp(`OpenADR ${version.replace(/\./g, '\\.')}  VEN ${VEN_NAME} \\(${ven.id}\\)  link ok  resources 3`));
    assert.ok(out.some((l) => l.includes(`${one.id} one`) && /pending/.test(l) && / 1 /.test(l)), out.join('\n'));

    // A change (level 3, a later start) replaces the event on the meter.
    await vtn.updateEvent(one.id as string, simpleEvent(version, program.id as string, { name: 'one', start: start + 60, durationS: 600, level: 3, targets: { resource: [m2.agent.deviceId] } }));
    await eventually(() => drOf(m2).get(oneId)?.level === 3, 15_000, 'the change at the meter');
    assert.is(drOf(m2).get(oneId)!.start, start + 60);

    // An event that disappears from the VTN is cancelled on its meters; so is one emptied of intervals.
    await vtn.deleteEvent(group.id as string);
    await vtn.updateEvent(all.id as string, { ...simpleEvent(version, program.id as string, { name: 'all', start: start + 3600, durationS: 300, level: 3, targets: { ven: [VEN_NAME] } }), intervals: [] });
    await eventually(() => drOf(m0).get(groupId)?.state === 'ended' && drOf(m1).get(groupId)?.state === 'ended', 15_000, 'the deleted event cancelled');
    await eventually(() => meters.every((m) => drOf(m).get(allId)?.state === 'ended'), 15_000, 'the emptied event cancelled');
    assert.is(drOf(m2).get(oneId)!.state, 'pending', 'the other event stays');

    // Revoking a meter deletes its resource.
    const r = await t.api('DELETE', `/api/devices/${m1.agent.deviceId}`, undefined, { 'content-type': 'application/json' });
    assert.ok(r.status === 200 || r.status === 202, r.text);
    await eventually(() => ![...vtn.data.resources.values()].some((x) => x.resourceName === m1.agent.deviceId), 15_000, 'the resource deleted');
    assert.is([...vtn.data.resources.values()].filter((x) => x.venID === ven.id).length, 2);

    assert.equal(vtn.badRequests, [], 'every request the VEN made matched the schema');
    assert.equal(vtn.badResponses, [], 'the test VTN answered by the schema');
    assert.is(metricValue((await t.api('GET', '/metrics')).text, 'gridlet_openadr_errors_total'), 0);
  });

  test(`${version}: a USAGE and DEMAND report equals the energy the meters stored in each interval`, async () => {
    s = await startVen({ version, meters: 3, link: { callbackUrl: 'none' } });
    const { vtn, t } = s;
    const meters = s.meters.slice(0, 2);
    // The third meter shares only daily totals with the operator: it is left out of 3-second intervals.
    const privateId = s.meters[2].agent.deviceId;
    const policy = await t.api('PUT', `/api/devices/${privateId}/privacy`, { operator: { level: 'daily', purposes: ['grid-operations'] } });
    assert.is(policy.status, 200, policy.text);
    const program = vtn.addProgram({ programName: 'usage' });
    await eventually(() => vtn.data.resources.size === 3, 15_000, 'resources');
    const start = secondsFromNow(3);
    const ev = await vtn.addEvent(simpleEvent(version, program.id as string, {
      name: 'measured', start, durationS: 3, level: 1, intervals: 3,
      reports: [{ payloadType: 'USAGE', units: 'WH' }, { payloadType: 'DEMAND', units: 'W' }],
    }));
    const report = await eventually(() => {
      const r = [...vtn.data.reports.values()].find((x) => x.eventID === ev.id);
      const res = r?.resources as { resourceName: string; intervals: { id: number; payloads: { type: string; values: number[] }[] }[] }[] | undefined;
      return res && res.length === 2 && res.every((x) => x.intervals.length === 3 && x.intervals.every((i) => i.payloads.every((p) => p.type !== 'DATA_QUALITY'))) && r;
    }, 30_000, 'a complete report');
    assert.is(report.clientName, VEN_NAME);
    if (version === '3.0.1') assert.is(report.programID, program.id);
    let total = 0;
    for (const m of meters) {
      const id = m.agent.deviceId;
      const { records } = (await t.api('GET', `/api/devices/${id}/readings?limit=10000`)).json as { records: [number, number, unknown, unknown][] };
      // The register at a time is the first energy reading (channel 1) taken at or after it.
      const at = (x: number) => records.find((r) => r[2] === 1 && r[1] >= x)![3] as number;
      const res = (report.resources as { resourceName: string; intervals: { id: number; payloads: { type: string; values: number[] }[] }[] }[]).find((x) => x.resourceName === id)!;
      for (const iv of res.intervals) {
        const s0 = start + iv.id * 3;
        const wh = at(s0 + 3) - at(s0);
        const usage = iv.payloads.find((p) => p.type === 'USAGE')!.values[0];
        const demand = iv.payloads.find((p) => p.type === 'DEMAND')!.values[0];
        assert.is(usage, wh, `${id} interval ${iv.id}: USAGE`);
        assert.is(demand, Math.round((wh * 3600 / 3) * 1000) / 1000, `${id} interval ${iv.id}: DEMAND`);
        total += usage;
      }
    }
    assert.ok(total > 0, 'the meters used energy');
    assert.not.ok((report.resources as { resourceName: string }[]).some((x) => x.resourceName === privateId), 'the private meter is not in the report');
    const shownReport = (await t.api('GET', '/api/openadr')).json.vtns[0].events.find((x: { id: string }) => x.id === ev.id).report;
    assert.equal(shownReport.withheld, [privateId]);
    // The report is a disclosure to the operator's audience, in the audit log.
    const audit = (await t.api('GET', `/api/audit?device=${meters[0].agent.deviceId}`)).json;
    assert.ok(JSON.stringify(audit).includes('openadr-report'), JSON.stringify(audit).slice(0, 300));
    assert.equal(vtn.badRequests, []);
    await sleep(0);
  });
}

test('two VTNs at once (a utility on 3.1.0, an aggregator on 3.0.1): each registers the meter and reaches it', async () => {
  s = await startVen({ version: '3.1.0', second: '3.0.1', meters: 1, link: { callbackUrl: 'none' } });
  const { vtn, vtn2, t, meters: [m] } = s;
  await eventually(() => vtn.data.resources.size === 1 && vtn2!.data.resources.size === 1, 15_000, 'the meter registered on both');
  const start = secondsFromNow(600);
  const a = await vtn.addEvent(simpleEvent('3.1.0', vtn.addProgram({ programName: 'utility' }).id as string, { name: 'u', start, durationS: 60, level: 2 }));
  const b = await vtn2!.addEvent(simpleEvent('3.0.1', vtn2!.addProgram({ programName: 'aggregator' }).id as string, { name: 'g', start, durationS: 60, level: 1 }));
  // Both VTNs number their events from 1: the second one's dr-events carry its prefix.
  assert.is(a.id, b.id);
  await eventually(() => drOf(m).get(`${a.id}#0`)?.level === 2 && drOf(m).get(`vtn2/${b.id}#0`)?.level === 1, 15_000, 'both events at the meter');
  const links = (await t.api('GET', '/api/openadr')).json.vtns;
  assert.equal(links.map((l: { vtn: string; version: string; link: string }) => [l.vtn, l.version, l.link]), [[vtn.url, '3.1.0', 'ok'], [vtn2!.url, '3.0.1', 'ok']]);
  assert.equal([...vtn.badRequests, ...vtn2!.badRequests], []);
});

test('3.1.0: what changed on the VTN while the gateway was down reaches the meters after its restart', async () => {
  s = await startVen({ version: '3.1.0', meters: 1, link: { callbackUrl: 'none' } });
  const { vtn, meters: [m] } = s;
  const program = vtn.addProgram({ programName: 'restart' });
  const start = secondsFromNow(600);
  const a = await vtn.addEvent(simpleEvent('3.1.0', program.id as string, { name: 'a', start, durationS: 60, level: 2 }));
  const b = await vtn.addEvent(simpleEvent('3.1.0', program.id as string, { name: 'b', start: start + 60, durationS: 60, level: 1 }));
  await eventually(() => drOf(m).has(`${a.id}#0`) && drOf(m).has(`${b.id}#0`), 15_000, 'both events at the meter');
  const port = new URL(s.t.gw.mqttUrl).port;
  await s.t.gw.close();
  await vtn.deleteEvent(a.id as string);
  await vtn.updateEvent(b.id as string, simpleEvent('3.1.0', program.id as string, { name: 'b', start: start + 60, durationS: 60, level: 3 }));
  s.t = await startTestGateway({ ...s.t.opts, mqttListen: `127.0.0.1:${port}` });
  await eventually(() => drOf(m).get(`${a.id}#0`)?.state === 'ended' && drOf(m).get(`${b.id}#0`)?.level === 3, 30_000, 'the deletion and the change after the restart');
  assert.is(vtn.data.vens.size, 1, 'the VEN found again, not registered twice');
  assert.is(vtn.data.resources.size, 1);
});

test.run();
