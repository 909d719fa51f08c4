// The meter as a MeterSource over the SerialPort port (firmware/core/meter/source.ts), as the firmware
// and the host agent use it: keys from the KeyValue store, the clock a reading carries, and a log that
// a meter failing every frame does not flood. Runs in XS too.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SerialMeter } from '../../firmware/core/meter/source.js';
import { setMeterSecret } from '../../firmware/core/meter/keys.js';
import { toHex } from '../../firmware/core/bytes.js';
import type { SerialPort } from '../../firmware/core/ports.js';
import { MemoryKV } from './support/sim-world.js';
import { fixtureBytes, fixtureKeys, latin1Bytes } from './support/dlms-build.js';

class Line implements SerialPort {
  #cb: ((b: Uint8Array) => void) | undefined;
  onReadable(cb: (b: Uint8Array) => void): void {
    this.#cb = cb;
  }
  write(): void {}
  send(b: Uint8Array): void {
    this.#cb?.(b);
  }
}

test('a ciphering meter without its key: refusals counted, logged once and then every 100th; the key set later works', () => {
  const kv = new MemoryKV();
  const line = new Line();
  const logged: string[] = [];
  const meter = new SerialMeter(line, { type: 'mbus', kv, logger: { log: (_level, m) => logged.push(m) } });
  const got: Array<[number, ReadonlyArray<readonly [number, number]>]> = [];
  meter.start((t, values) => got.push([t, values]));
  const evn = 'mbus_dlms_encrypted/esphome-dlms_parser__kaifa-ma309-evn__netz-noe-doc-example-2-frames.hex';
  const frames = fixtureBytes(evn);
  for (let i = 0; i < 250; i++) line.send(frames);
  assert.is(meter.errors['no-key'], 250);
  assert.is(logged.length, 3);
  assert.match(logged[0], /^meter message refused: frame \d+ is encrypted .* but no meter key is set/);
  assert.match(logged[2], /^meter message refused \(200 more like it\)/);
  setMeterSecret(kv, 'meter.key', toHex(fixtureKeys(evn).key!));
  line.send(frames);
  assert.is(got.length, 1);
  assert.ok(Number.isNaN(got[0][0]), 'a DLMS reading takes the agent\'s clock');
  assert.equal(Object.fromEntries(got[0][1])[1], 12937);
});

test('a P1 telegram\'s clock is used when plausible; a meter clock never set is not', () => {
  const line = new Line();
  const meter = new SerialMeter(line, { type: 'dsmr' });
  const got: number[] = [];
  meter.start((t) => got.push(t));
  const telegram = (clock: string) => latin1Bytes(`/X5\r\n\r\n0-0:1.0.0(${clock})\r\n1-0:1.7.0(00.123*kW)\r\n!\r\n`);
  line.send(telegram('240101120000W'));
  line.send(telegram('000101000001W'));
  assert.equal([got[0], Number.isNaN(got[1])], [Date.UTC(2024, 0, 1, 11), true]);
  meter.stop();
  line.send(telegram('240101120000W'));
  assert.is(got.length, 2, 'nothing after stop()');
});

test.run();
