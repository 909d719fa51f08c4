import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { Body } from '../../firmware/core/wire/bodies.js';
import { pairDevice, sleep, startTestGateway, tempDir } from './support.js';

const T0 = 1_700_000_000;

test('a restart on the same data dir keeps identity, device, records, counters, window and pending downlinks', async () => {
  const dir = tempDir();
  const a = await startTestGateway({ dataDir: dir, tuning: { resendIntervalMs: 0 } });
  const d = await pairDevice(a);
  const before = await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 10], [T0 + 1, 1, 11]] });
  await d.waitAck(2);
  await a.gw.sendDownlink(d.id, { type: Body.config, values: { tz: 'UTC' } });
  await d.until(() => d.bodies(Body.config).length === 1, 3000, 'config');
  const id = a.gw.id;
  const counterBefore = Math.max(...d.downlinks.map((x) => x.counter));
  assert.is(statSync(join(dir, 'identity.json')).mode & 0o777, 0o600, 'identity readable by its owner only');
  await d.close();
  await a.gw.close();

  const b = await startTestGateway({ dataDir: dir, tuning: { resendIntervalMs: 0 } });
  try {
    assert.is(b.gw.id, id, 'same gateway identity');
    const dev = (await b.api('GET', `/api/devices/${d.id}`)).json;
    assert.is(dev.state, 'paired');
    assert.is(dev.ackedSeq, 2);
    // The broker of the new process knows the device's credentials.
    await d.connect(b.gw.mqttUrl, { credentials: true });
    // A frame from before the restart is a replay.
    await d.sendRaw(before);
    await d.send({ type: Body.readings, first: 3, records: [[T0 + 2, 1, 12]] });
    await d.waitAck(3);
    assert.is(await b.metric('gridlet_frames_dropped_total', { reason: 'replay' }), 1);
    assert.equal((await b.api('GET', `/api/devices/${d.id}/readings`)).json.records,
      [[1, T0, 1, 10], [2, T0 + 1, 1, 11], [3, T0 + 2, 1, 12]]);
    // The unacknowledged config comes again, under counters the device has not seen.
    await d.until(() => d.bodies(Body.config).length === 2, 3000, 'config resent after restart');
    const after = d.downlinks.filter((x) => x.counter > counterBefore);
    assert.ok(after.length >= 2, 'ack and config under fresh counters');
    assert.is(d.refusedDownlinks, 0);
    await sleep(10);
  } finally {
    b.devices.push(d);
    await b.close();
  }
});

test.run();
