// The whole path for a Norwegian HAN meter: Aidon list 2 frames on a pseudo-terminal read at 2400 8E1
// by a host agent started with `--meter dlms:PATH`, sent to a real gateway (embedded broker, SQLite),
// stored, and served by its HTTP API, as a DSMR meter's readings are.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openPty } from '../../host/console/pty.js';
import { createHostAgent } from '../../host/agent-host.js';
import { SerialLineMeter } from '../../host/meter/serial-meter.js';
import { eventually, startTestGateway } from '../gateway/support.js';
import { fixtureBytes } from '../core/support/dlms-build.js';

test('an agent with --meter dlms: sends an Aidon meter\'s list 2 readings to the gateway', async () => {
  const t = await startTestGateway();
  const pty = openPty();
  const host = createHostAgent({ brokers: [t.gw.mqttUrl], meter: `dlms:${pty.path}`, topicPrefix: t.prefix });
  try {
    const meter = host.meter as SerialLineMeter;
    assert.equal([meter.options.baudRate, meter.options.dataBits, meter.options.parity], [2400, 8, 'even']);
    host.agent.start();
    const id = host.agent.deviceId;
    await eventually(async () => (await t.api('POST', '/api/pairings', { deviceId: id, code: host.agent.identity.pairCode })).status === 201, 10_000, 'pairing');
    const frame = fixtureBytes('hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list2-3ph.hex');
    // The meter pushes list 2 every 10 s; three pushes, in the pieces a 2400-baud line delivers.
    for (let push = 0; push < 3; push++) {
      for (let i = 0; i < frame.length; i += 24) {
        pty.write(frame.subarray(i, i + 24));
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    let records: [number, number, number, number][] = [];
    await eventually(async () => {
      const r = await t.api('GET', `/api/devices/${id}/readings?limit=100`);
      records = (r.json?.records ?? []).filter((x: unknown[]) => typeof x[2] === 'number');
      return records.length >= 27;
    }, 10_000, 'three pushes of 9 channels stored');
    assert.is(meter.readings, 3);
    const last = new Map<number, number>();
    for (const [, , channel, value] of records) last.set(channel, value);
    assert.equal(Object.fromEntries(last), { 3: 2077, 4: 0, 5: 237600, 6: 235900, 7: 236500, 8: 4600, 10: 6100, 15: 0, 16: 86 });
    const seqs = records.map((r) => r[0]);
    assert.equal(seqs, [...new Set(seqs)].sort((a, b) => a - b), 'each record once, in order');
  } finally {
    host.stop();
    pty.close();
    await t.close();
  }
});

test.run();
