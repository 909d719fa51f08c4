// The VEN's parts on their own: which meters targets name (both versions' forms), report values from
// readings fed in seq order, and the --openadr-* command-line groups.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readTargets, resolveTargets, type TargetContext } from '../../gateway/openadr/targets.js';
import { boundaries, buildReport, feed, newTrack, reportRequests } from '../../gateway/openadr/reports.js';
import { openAdrGroups, OpenAdrUsageError } from '../../host/cli/openadr-options.js';
import { checkVtnOptions } from '../../gateway/openadr/service.js';
import { OpenAdrSpec, problemText } from '../../gateway/openadr/schema.js';
import type { StoredRecord } from '../../gateway/store/store.js';

const A = 'aaaaaaaaaaaaaaaa', B = 'bbbbbbbbbbbbbbbb', C = 'cccccccccccccccc';
const ctx: TargetContext = {
  venName: 'gw-1',
  devices: [{ id: A, labels: { feeder: 'f1' } }, { id: B, labels: { feeder: 'f1', kind: 'ev' } }, { id: C, labels: { feeder: 'f2' } }],
};

test('3.1.0 target strings: VEN name, resource name, label:key=value, label:key, none', () => {
  const r = (t: unknown) => resolveTargets(readTargets(t, '3.1.0'), '3.1.0', ctx);
  assert.equal(r(undefined), { devices: [A, B, C], unmatched: [] }, 'no targets: every meter');
  assert.equal(r(null).devices, [A, B, C]);
  assert.equal(r([]).devices, [A, B, C]);
  assert.equal(r(['gw-1']).devices, [A, B, C]);
  assert.equal(r([C]).devices, [C]);
  assert.equal(r(['label:feeder=f1']).devices, [A, B]);
  assert.equal(r(['label:kind']).devices, [B]);
  assert.equal(r([C, 'label:kind=ev']).devices, [B, C], 'the union');
  assert.equal(r(['group-7', 'dddddddddddddddd']), { devices: [], unmatched: ['group-7', 'dddddddddddddddd'] }, 'names for another VEN');
});

test('3.0.1 valuesMaps: VEN_NAME, RESOURCE_NAME, GROUP = key=value; other types match only what was granted', () => {
  const r = (t: unknown, c = ctx) => resolveTargets(readTargets(t, '3.0.1'), '3.0.1', c);
  assert.equal(r([{ type: 'VEN_NAME', values: ['gw-1'] }]).devices, [A, B, C]);
  assert.equal(r([{ type: 'RESOURCE_NAME', values: [A, C] }]).devices, [A, C]);
  assert.equal(r([{ type: 'GROUP', values: ['feeder=f2'] }]).devices, [C]);
  assert.equal(r([{ type: 'RESOURCE_NAME', values: ['gw-1'] }]).devices, [], 'a resource name is not the VEN name');
  assert.equal(r([{ type: 'POSTAL_CODE', values: ['1011'] }]), { devices: [], unmatched: ['POSTAL_CODE:1011'] });
  const granted = { ...ctx, venGranted: ['POSTAL_CODE:1011'], resourceGranted: new Map([[B, ['ZONE:north']]]) };
  assert.equal(r([{ type: 'POSTAL_CODE', values: ['1011'] }], granted).devices, [A, B, C], 'granted to the VEN: every meter');
  assert.equal(r([{ type: 'ZONE', values: ['north'] }], granted).devices, [B], 'granted to a resource: its meter');
  assert.equal(resolveTargets(readTargets(['zone-n'], '3.1.0'), '3.1.0', { ...ctx, resourceGranted: new Map([[C, ['zone-n']]]) }).devices, [C]);
});

function readings(first: number, rows: [t: number, channel: number, value: number][]): StoredRecord[] {
  return rows.map(([t, channel, value], i) => ({ kind: 1, seq: first + i, t, gatewayTimed: false, channel, value }));
}

test('USAGE is the register at the end minus at the start, the register at a time being the first reading at or after it', () => {
  const intervals = [{ id: 0, start: 100, duration: 10 }, { id: 1, start: 110, duration: 10 }];
  const bounds = boundaries(intervals);
  assert.equal(bounds, [100, 110, 120]);
  const track = newTrack(1, bounds, 2);
  feed(track, bounds, intervals, readings(1, [[95, 1, 1000], [99, 1, 1004], [101, 1, 1010], [101, 3, 900], [109, 1, 1030], [112, 1, 1041], [115, 3, 2500]]));
  const { requests } = reportRequests([{ payloadType: 'USAGE' }, { payloadType: 'DEMAND', readingType: 'PEAK', units: 'KW' }]);
  let r = buildReport({ version: '3.1.0', eventId: 'e1', programId: 'p1', clientName: 'gw', reportName: 'r', requests, intervals, nowS: 125, tracks: new Map([[A, track]]) });
  const payloads = (r.body.resources as { intervals: { payloads: unknown }[] }[])[0].intervals.map((i) => i.payloads);
  // Interval 0: 1041 (first at or after 110) - 1010 (first at or after 100); interval 1 still needs a reading at or after 120.
  assert.equal(payloads, [[{ type: 'USAGE', values: [31] }, { type: 'DEMAND', values: [0.9] }], [{ type: 'DATA_QUALITY', values: ['MISSING'] }]]);
  assert.is(r.missing, 1);
  feed(track, bounds, intervals, readings(8, [[121, 1, 1060]]));
  r = buildReport({ version: '3.0.1', eventId: 'e1', programId: 'p1', clientName: 'gw', reportName: 'r', requests, intervals, nowS: 125, tracks: new Map([[A, track]]) });
  assert.equal((r.body.resources as { intervals: { payloads: unknown }[] }[])[0].intervals[1].payloads, [{ type: 'USAGE', values: [19] }, { type: 'DEMAND', values: [2.5] }]);
  assert.is(r.missing, 0);
  assert.is(r.body.programID, 'p1', '3.0.1 reports name their program');
  assert.equal(OpenAdrSpec.load('3.0.1').validate('report', r.body), []);
  // The intervals add up to the register's advance over the event.
  assert.is(31 + 19, 1060 - 1010);
});

test('an aggregated report sums the meters; a register that went back is BAD; forecasts are not reported', () => {
  const intervals = [{ id: 0, start: 0, duration: 3600 }];
  const bounds = boundaries(intervals);
  const t1 = newTrack(1, bounds, 1), t2 = newTrack(1, bounds, 1);
  feed(t1, bounds, intervals, readings(1, [[0, 1, 5000], [3600, 1, 6500]]));
  feed(t2, bounds, intervals, readings(1, [[10, 1, 100], [3700, 1, 600]]));
  const { requests, notes } = reportRequests([{ payloadType: 'USAGE', units: 'KWH', aggregate: true }, { payloadType: 'BASELINE' }, { payloadType: 'DEMAND', historical: false }]);
  assert.is(requests.length, 1);
  assert.is(notes.length, 2);
  const r = buildReport({ version: '3.1.0', eventId: 'e', programId: 'p', clientName: 'gw', reportName: 'r', requests, intervals, nowS: 4000, tracks: new Map([[A, t1], [B, t2]]) });
  assert.equal(r.body.resources, [{ resourceName: 'AGGREGATED_REPORT', intervals: [{ id: 0, intervalPeriod: { start: '1970-01-01T00:00:00Z', duration: 'PT3600S' }, payloads: [{ type: 'USAGE', values: [2] }] }] }]);
  assert.equal(OpenAdrSpec.load('3.1.0').validate('reportRequest', r.body), []);
  const back = newTrack(1, bounds, 1);
  feed(back, bounds, intervals, readings(1, [[0, 1, 5000], [3600, 1, 10]]));
  const bad = buildReport({ version: '3.1.0', eventId: 'e', programId: 'p', clientName: 'gw', reportName: 'r', requests: reportRequests([{ payloadType: 'USAGE' }]).requests, intervals, nowS: 4000, tracks: new Map([[A, back]]) });
  assert.equal((bad.body.resources as { intervals: { payloads: unknown }[] }[])[0].intervals[0].payloads, [{ type: 'DATA_QUALITY', values: ['BAD'] }]);
});

test('--openadr-* groups: one per --openadr-vtn, secrets from a file or the environment, never a flag', () => {
  const files: { [p: string]: string } = { '/s2': 'file-secret\n' };
  const read = (p: string) => {
    if (!(p in files)) throw Object.assign(new Error('no file'), { code: 'ENOENT' });
    return files[p];
  };
  const g = openAdrGroups([
    '--data', 'x', '--openadr-vtn', 'https://utility.example/oadr', '--openadr-client-id', 'u1', '--openadr-poll-s', '10',
    '--http-listen', '127.0.0.1:0', '--openadr-vtn', 'https://aggregator.example', '--openadr-client-id', 'a1', '--openadr-client-secret-file', '/s2',
    '--openadr-version', '3.0.1', '--openadr-ven-name', 'site-9',
  ], 'env-secret', read);
  assert.equal(g, [
    { url: 'https://utility.example/oadr', clientId: 'u1', clientSecret: 'env-secret', pollS: 10 },
    { url: 'https://aggregator.example', clientId: 'a1', clientSecret: 'file-secret', version: '3.0.1', venName: 'site-9' },
  ]);
  const refused = (argv: string[], re: RegExp, env: string | null = 's') => {
    try {
      openAdrGroups(argv, env ?? undefined, read);
    } catch (e) {
      assert.match((e as Error).message, re);
      return e;
    }
    assert.unreachable(`${argv.join(' ')} was taken`);
  };
  assert.instance(refused(['--openadr-vtn', 'https://v', '--openadr-client-id', 'c', '--openadr-client-secret', 'hunter2'], /not taken: a secret on the command line shows in `ps`/), OpenAdrUsageError);
  refused(['--openadr-client-id', 'c'], /give --openadr-vtn URL before it/);
  refused(['--openadr-vtn', 'https://v'], /needs --openadr-client-id/);
  refused(['--openadr-vtn', 'https://v', '--openadr-client-id', 'c'], /GRIDLET_OPENADR_CLIENT_SECRET or give --openadr-client-secret-file/, null);
  refused(['--openadr-vtn', 'https://v', '--openadr-client-id', 'c', '--openadr-client-secret-file', '/none'], /cannot read --openadr-client-secret-file \/none: ENOENT/);
  refused(['--openadr-vtn', 'https://v', '--openadr-client-id', 'c', '--openadr-poll-s', '0'], /--openadr-poll-s must be a whole number of seconds from 1 to 3600/);
  refused(['--openadr-vtn', 'https://v', '--openadr-client-id', 'c', '--openadr-client-id', 'd'], /--openadr-client-id is given twice/);
  // What the gateway checks when it starts.
  const check = (o: object, re: RegExp) => assert.throws(() => checkVtnOptions({ url: 'https://v', clientId: 'c', clientSecret: 's', ...o }, 'gw'), re);
  check({ url: 'ftp://v' }, /must be an https:\/\/ \(or http:\/\/\) URL/);
  check({ url: 'https://user:pw@v' }, /not in the URL/);
  check({ version: '2.0b' }, /--openadr-version must be 3.0.1 or 3.1.0/);
  check({ venName: 'x'.repeat(129) }, /--openadr-ven-name must be 1 to 128 characters/);
  assert.equal(checkVtnOptions({ url: 'https://v/base/', clientId: 'c', clientSecret: 's' }, 'gw').url, 'https://v/base');
  assert.is(checkVtnOptions({ url: 'https://v', clientId: 'c', clientSecret: 's' }, 'gw').venName, 'gw', 'the VEN is named after the gateway');
  assert.is(problemText([{ path: '', message: 'x' }]), '/ x');
});

test.run();
