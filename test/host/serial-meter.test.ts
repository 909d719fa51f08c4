// `--meter TYPE:PATH` reads real meter bytes through a real pseudo-terminal with `serialport`: P1
// telegrams at 115200 8N1, HAN frames at 2400 8E1, a Smarty's ciphered telegrams with the key the
// agent keeps.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openPty, type Pty } from '../../host/console/pty.js';
import { parseSerialMeterSpec, SerialLineMeter } from '../../host/meter/serial-meter.js';
import { MemoryKeyValue } from '../../host/ports/file-kv.js';
import { setMeterSecret } from '../../firmware/core/meter/keys.js';
import { FIXTURE_DIR } from './dsmr-fuzz.js';
import { cat, fixtureBytes, fixtureFrames, fixtureKeys } from '../core/support/dlms-build.js';
import { toHex } from '../../firmware/core/bytes.js';

type Got = { t: number; values: [number, number][] }[];

test('TYPE:PATH settings: P1 at 115200 8N1 (9600 7E1 for DSMR 2.2/3.0), HAN at 2400 8E1, and overrides', () => {
  const p = '/dev/ttyUSB0';
  assert.equal(parseSerialMeterSpec('dsmr', p), { type: 'dsmr', path: p, baudRate: 115200, dataBits: 8, parity: 'none' });
  assert.equal(parseSerialMeterSpec('dsmr', `${p}@9600`), { type: 'dsmr', path: p, baudRate: 9600, dataBits: 7, parity: 'even' });
  assert.equal(parseSerialMeterSpec('dsmr', '/dev/ttyS1@9600-8N1'), { type: 'dsmr', path: '/dev/ttyS1', baudRate: 9600, dataBits: 8, parity: 'none' });
  assert.equal(parseSerialMeterSpec('smarty', p), { type: 'smarty', path: p, baudRate: 115200, dataBits: 8, parity: 'none' });
  assert.equal(parseSerialMeterSpec('dlms', p), { type: 'dlms', path: p, baudRate: 2400, dataBits: 8, parity: 'even' });
  assert.equal(parseSerialMeterSpec('mbus', `${p}@9600`), { type: 'mbus', path: p, baudRate: 9600, dataBits: 8, parity: 'even' });
  assert.equal(parseSerialMeterSpec('mbus', `${p}@2400-8N1`), { type: 'mbus', path: p, baudRate: 2400, dataBits: 8, parity: 'none' });
  assert.throws(() => parseSerialMeterSpec('dlms', ''), /--meter dlms:: expected dlms:\/dev\/ttyUSB0\[@BAUD\[-8N1\|-7E1\|-8E1\]\]/);
});

async function feed(pty: Pty, stream: Uint8Array, chunk: number): Promise<void> {
  for (let i = 0; i < stream.length; i += chunk) {
    pty.write(stream.subarray(i, i + chunk));
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function until(what: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!what() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

async function withMeter(spec: string, kv: MemoryKeyValue | undefined, run: (pty: Pty, meter: SerialLineMeter, got: Got) => Promise<void>) {
  const pty = openPty();
  const [type, rest] = [spec.slice(0, spec.indexOf(':')), spec.slice(spec.indexOf(':') + 1)];
  const meter = new SerialLineMeter(parseSerialMeterSpec(type as 'dsmr', rest.replace('PTY', pty.path)), kv);
  const got: Got = [];
  meter.start((t, values) => got.push({ t, values: values.map((v) => [v[0], v[1]]) }));
  await new Promise((r) => setTimeout(r, 300));
  try {
    await run(pty, meter, got);
  } finally {
    meter.stop();
    pty.close();
  }
}

test('dsmr: telegrams written to a pty arrive as readings, in pieces as a UART delivers them; bad ones are counted', async () => {
  await withMeter('dsmr:PTY', undefined, async (pty, meter, got) => {
    const good = new Uint8Array(readFileSync(join(FIXTURE_DIR, 'ndokter__nl-dsmr4.2__kaifa.txt')));
    const bad = new Uint8Array(readFileSync(join(FIXTURE_DIR, 'lvzon__nl-dsmr4.0__spec-example__bad-crc.txt')));
    await feed(pty, cat(Uint8Array.of(0x00, 0x41, 0x0d, 0x0a), good, bad, good), 37);
    await until(() => got.length >= 2);
    assert.is(got.length, 2, 'both good telegrams');
    const ch = Object.fromEntries(got[0].values);
    assert.is(ch[1], 3016829, 'energy imported, Wh, exact');
    assert.is(ch[3], 2027, 'power imported, W');
    assert.is(ch[11], 981443, 'gas, litres');
    assert.is(meter.errors.crc, 1, 'the bad-CRC telegram was refused and counted');
  });
});

test('dlms at 2400 8E1: Aidon list 1, 2 and 3 frames become readings; a corrupted frame is counted', async () => {
  const list1 = fixtureBytes('hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list1-3ph.hex');
  const list2 = fixtureBytes('hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list2-3ph.hex');
  const list3 = fixtureBytes('hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list3-3ph-hourly.hex');
  const broken = fixtureBytes('hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list2-3ph-BAD-FCS-corrupted.hex');
  await withMeter('dlms:PTY', undefined, async (pty, meter, got) => {
    await feed(pty, cat(Uint8Array.of(0x00, 0xff), list1, list2, broken, list3), 24);
    await until(() => got.length >= 3);
    assert.is(meter.meter.framing, 'hdlc');
    assert.equal(got.map((g) => Object.fromEntries(g.values)[3]), [1696, 2077, 2204], 'power imported, W, list by list');
    assert.ok(got.every((g) => Number.isNaN(g.t)), 'stamped by the agent\'s clock');
    const l3 = Object.fromEntries(got[2].values);
    assert.is(l3[1], 21882340, 'energy imported, Wh');
    assert.is(l3[14], 725400, 'reactive energy exported, varh');
    assert.is(meter.errors.fcs, 1);
    assert.match(meter.lastError, /^HDLC FCS mismatch in frame \d: frame says DF 7E/);
  });
});

test('smarty and mbus: ciphered frames open with the key kept in the agent\'s KeyValue, set while running', async () => {
  const smarty = 'smarty_p1_encrypted/dsmr_parser__SYNTHETIC-sagemcom-t210-d-r__p1-encrypted-regenerated.hex';
  const kv = new MemoryKeyValue();
  await withMeter('smarty:PTY', kv, async (pty, meter, got) => {
    await feed(pty, fixtureBytes(smarty), 64);
    await until(() => (meter.errors['no-key'] ?? 0) >= 1);
    assert.is(got.length, 0);
    assert.match(meter.lastError, /no meter key is set/);
    // The technician sets the key (the console and a config body both do this); the next frame opens.
    assert.is(setMeterSecret(kv, 'meter.key', toHex(fixtureKeys(smarty).key!)), undefined);
    assert.is(setMeterSecret(kv, 'meter.auth_key', toHex(fixtureKeys(smarty).authKey!)), undefined);
    await feed(pty, fixtureBytes(smarty), 64);
    await until(() => got.length >= 1);
    assert.equal(got[0].values, [[1, 6545766], [2, 58], [3, 286], [4, 0]]);
    assert.is(got[0].t, Date.UTC(2022, 9, 6, 13, 50, 14), 'a P1 telegram carries the meter\'s clock');
  });
  const evn = 'mbus_dlms_encrypted/esphome-dlms_parser__kaifa-ma309-evn__netz-noe-doc-example-2-frames.hex';
  const kv2 = new MemoryKeyValue();
  setMeterSecret(kv2, 'meter.key', toHex(fixtureKeys(evn).key!));
  await withMeter('mbus:PTY', kv2, async (pty, meter, got) => {
    const frames = fixtureFrames(evn);
    await feed(pty, cat(...frames, ...frames), 50);
    await until(() => got.length >= 2);
    assert.equal(Object.fromEntries(got[1].values)[5], 233700, 'voltage L1, mV');
    assert.is(meter.meter.framing, 'mbus');
  });
});

test.run();
