// `--meter dsmr:PATH` reads real telegrams through a real pseudo-terminal with `serialport`.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openPty } from '../../host/console/pty.js';
import { DsmrSerialMeter, parseDsmrSpec } from '../../host/meter/dsmr-serial.js';
import { FIXTURE_DIR } from './dsmr-fuzz.js';

test('dsmr:PATH settings: 115200 8N1 by default, 9600 7E1 for DSMR 2.2/3.0 meters', () => {
  assert.equal(parseDsmrSpec('/dev/ttyUSB0'), { path: '/dev/ttyUSB0', baudRate: 115200, dataBits: 8, parity: 'none' });
  assert.equal(parseDsmrSpec('/dev/ttyUSB0@9600'), { path: '/dev/ttyUSB0', baudRate: 9600, dataBits: 7, parity: 'even' });
  assert.equal(parseDsmrSpec('/dev/ttyS1@9600-8N1'), { path: '/dev/ttyS1', baudRate: 9600, dataBits: 8, parity: 'none' });
});

test('telegrams written to a pty arrive as readings, in pieces as a UART delivers them; bad ones are counted', async () => {
  const pty = openPty();
  const meter = new DsmrSerialMeter(parseDsmrSpec(pty.path));
  const got: { t: number; values: [number, number][] }[] = [];
  meter.start((t, values) => got.push({ t, values: values.map((v) => [v[0], v[1]]) }));
  await new Promise((r) => setTimeout(r, 300));
  const good = new Uint8Array(readFileSync(join(FIXTURE_DIR, 'ndokter__nl-dsmr4.2__kaifa.txt')));
  const bad = new Uint8Array(readFileSync(join(FIXTURE_DIR, 'lvzon__nl-dsmr4.0__spec-example__bad-crc.txt')));
  const stream = new Uint8Array([...[0x00, 0x41, 0x0d, 0x0a], ...good, ...bad, ...good]);
  for (let i = 0; i < stream.length; i += 37) {
    pty.write(stream.subarray(i, i + 37));
    await new Promise((r) => setTimeout(r, 1));
  }
  const deadline = Date.now() + 5000;
  while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  meter.stop();
  pty.close();
  assert.is(got.length, 2, 'both good telegrams');
  const ch = Object.fromEntries(got[0].values);
  assert.is(ch[1], 3016829, 'energy imported, Wh, exact');
  assert.is(ch[3], 2027, 'power imported, W');
  assert.is(ch[11], 981443, 'gas, litres');
  assert.is(meter.errors.crc, 1, 'the bad-CRC telegram was refused and counted');
});

test.run();
