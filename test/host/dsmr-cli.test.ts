// `gridlet meter parse FILE` (host/meter/dsmr-cli.ts): what a technician sees for a good and a bad telegram.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { meterParse } from '../../host/meter/dsmr-cli.js';

const DIR = join(fileURLToPath(import.meta.url), '..', '..', 'fixtures', 'dsmr');

async function run(file: string) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await meterParse(file, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

test('a good telegram prints its channels as one JSON line and exits 0', async () => {
  const r = await run(join(DIR, 'arduino-dsmr__nl-dsmr4.0__kaifa.txt'));
  assert.is(r.code, 0);
  assert.equal(r.err, []);
  assert.is(r.out.length, 1);
  assert.equal(JSON.parse(r.out[0]), {
    header: 'KFM5KAIFA-METER',
    crc: 'ok',
    time: Date.UTC(2015, 0, 17, 17, 59, 16) / 1000,
    channels: { 1: 1514050, 2: 0, 3: 333, 4: 0, 8: 1000, 11: 473789, 12: 1 },
  });
});

test('a telegram without CRC or clock says so', async () => {
  const r = await run(join(DIR, 'ndokter__nl-dsmr2.2__iskra-mt382__no-crc.txt'));
  assert.is(r.code, 0);
  const j = JSON.parse(r.out[0]);
  assert.is(j.crc, 'none');
  assert.is(j.time, null);
  assert.is(j.channels['11'], 1001);
});

test('a CRC mismatch is one line naming the file and both CRCs, exit 1', async () => {
  const file = join(DIR, 'athombv__be-emucs2.1.1__spec-example__bad-crc.txt');
  const r = await run(file);
  assert.is(r.code, 1);
  assert.equal(r.out, []);
  assert.equal(r.err, [`${file}: CRC mismatch: telegram says 0x1234, computed 0x74E0`]);
});

test('unreadable, truncated and malformed files each get a one-line reason', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-dsmr-'));
  const missing = await run(join(dir, 'nope.txt'));
  assert.is(missing.code, 1);
  assert.equal(missing.err, [`${join(dir, 'nope.txt')}: cannot read: no such file`]);

  const cut = join(dir, 'cut.txt');
  writeFileSync(cut, '/KFM5KAIFA-METER\r\n\r\n1-0:1.8.1(000671.578*kWh)\r\n');
  const t = await run(cut);
  assert.is(t.code, 1);
  assert.is(t.err.length, 1);
  assert.match(t.err[0], /cut\.txt: input ended inside a telegram/);

  const bad = join(dir, 'bad.txt');
  writeFileSync(bad, '/X5\r\n\r\nhello\r\n!\r\n');
  const m = await run(bad);
  assert.is(m.code, 1);
  assert.match(m.err[0], /bad\.txt: malformed line: "hello"/);
});

test.run();
