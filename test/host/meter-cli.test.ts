// `gridlet meter parse` (host/meter/meter-cli.ts, host/cli/main.ts): what a technician sees for each
// kind of capture — a P1 telegram, HDLC and M-Bus frames as hex, a ciphered capture with and without
// its key — and for the ones that are refused.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { meterParse, type MeterParseOptions } from '../../host/meter/meter-cli.js';

const FIXTURES = join(fileURLToPath(import.meta.url), '..', '..', 'fixtures');
const DSMR = join(FIXTURES, 'dsmr');
const DLMS = join(FIXTURES, 'dlms');
const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..');

async function run(file: string, o: MeterParseOptions = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await meterParse(file, { out: (l) => out.push(l), err: (l) => err.push(l) }, o);
  return { code, out, err, json: out.map((l) => JSON.parse(l)) };
}

test('a P1 telegram prints its channels and its OBIS lines as one JSON line and exits 0', async () => {
  const r = await run(join(DSMR, 'arduino-dsmr__nl-dsmr4.0__kaifa.txt'));
  assert.is(r.code, 0);
  assert.equal(r.err, []);
  assert.is(r.out.length, 1);
  const j = r.json[0];
  assert.equal({ ...j, registers: undefined }, {
    format: 'dsmr', header: 'KFM5KAIFA-METER', crc: 'ok', time: Date.UTC(2015, 0, 17, 17, 59, 16) / 1000,
    channels: { 1: 1514050, 2: 0, 3: 333, 4: 0, 8: 1000, 11: 473789, 12: 1 }, registers: undefined,
  });
  assert.is(j.registers.length, 26);
  assert.equal(j.registers.find((x: { obis: string }) => x.obis === '1-0:1.8.1'), { obis: '1-0:1.8.1', type: 'text', value: 671.578, unit: 'kWh' });
});

test('a telegram without CRC or clock says so', async () => {
  const r = await run(join(DSMR, 'ndokter__nl-dsmr2.2__iskra-mt382__no-crc.txt'));
  assert.is(r.code, 0);
  assert.is(r.json[0].crc, 'none');
  assert.is(r.json[0].time, null);
  assert.is(r.json[0].channels['11'], 1001);
});

test('HDLC frames as hex (--hex): channels, the meter\'s list and every register with its scaler and unit', async () => {
  const r = await run(join(DLMS, 'hdlc_dlms_plain', 'robinsmidsrod-ams-han-decoder__kaifa-ma304h3e__list2-3ph.hex'), { hex: true });
  assert.is(r.code, 0, r.err.join('\n'));
  const j = r.json[0];
  assert.is(j.format, 'hdlc');
  assert.is(j.listId, 'KFM_001');
  assert.is(j.security, 'none');
  assert.equal(j.channels, { 3: 228, 4: 0, 5: 239200, 6: 0, 7: 238000, 8: 954, 9: 45, 10: 932, 15: 0, 16: 5 });
  assert.equal(j.registers.find((x: { obis: string }) => x.obis === '1-0:32.7.0.255'),
    { obis: '1-0:32.7.0.255', type: 'doubleLongUnsigned', value: 239.2, raw: 2392, scaler: -1, unit: 'V', scalerFrom: 'list', channel: 5 });
  assert.equal(j.registers.find((x: { obis: string }) => x.obis === '0-0:96.1.7.255'), { obis: '0-0:96.1.7.255', type: 'octetString', value: 'MA304H3E' });
});

test('a ciphered capture: opened with --key and --auth-key; refused naming the layer without them or with wrong ones', async () => {
  const file = join(DLMS, 'hdlc_dlms_encrypted', 'esphome-dlms_parser__landis-gyr-e450-a__gbt-3-frames-encrypted.hex');
  const ok = await run(file, { hex: true, key: '5C316162209EBB790B52EB0E7FC5B11C', authKey: '92705C5C97286064EABAE38D190F87A4' });
  assert.is(ok.code, 0, ok.err.join('\n'));
  assert.equal([ok.json[0].security, ok.json[0].systemTitle, ok.json[0].frameCounter, ok.json[0].frames], ['encrypted+authenticated', '4c475a677370b177', 1539018, 3]);
  assert.is(ok.json[0].channels['1'], 4408736);
  const none = await run(file, { hex: true });
  assert.is(none.code, 1);
  assert.equal(none.out, []);
  assert.match(none.err[0], /gbt-3-frames-encrypted\.hex: frame 3 is encrypted \(system title 4c475a677370b177 \(LGZ\), frame counter 1539018\) but no meter key is set/);
  const wrong = await run(file, { hex: true, key: '00'.repeat(16), authKey: '92705C5C97286064EABAE38D190F87A4' });
  assert.equal(wrong.err, [`${file}: GCM tag does not match: wrong key? (frame 3, system title 4c475a677370b177 (LGZ), frame counter 1539018)`]);
});

test('M-Bus frames and a Smarty envelope; a corrupted HDLC frame is refused as such', async () => {
  const evn = await run(join(DLMS, 'mbus_dlms_encrypted', 'esphome-dlms_parser__kaifa-ma309-evn__netz-noe-doc-example-2-frames.hex'), { hex: true, key: '36c66639e48a8ca4d6bc8b282a793bbb' });
  assert.equal([evn.code, evn.json[0].format, evn.json[0].security, evn.json[0].channels['1']], [0, 'mbus', 'encrypted', 12937]);
  const smarty = await run(join(DLMS, 'smarty_p1_encrypted', 'dsmr_parser__SYNTHETIC-sagemcom-t210-d-r__p1-encrypted-regenerated.hex'),
    { hex: true, key: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', authKey: 'BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB' });
  assert.equal([smarty.code, smarty.json[0].format, smarty.json[0].header, smarty.json[0].registers.length], [0, 'smarty', 'EST5\\253710000_A', 18]);
  const file = join(DLMS, 'hdlc_dlms_plain', 'robinsmidsrod-ams-han-decoder__aidon-6525__list2-3ph-BAD-FCS-corrupted.hex');
  const bad = await run(file, { hex: true });
  assert.equal([bad.code, bad.out, bad.err], [1, [], [`${file}: HDLC FCS mismatch in frame 1: frame says DF 7E, computed 46 D7`]]);
});

test('bytes, not hex: a binary capture reads as it is; hex text without --hex gets the hint', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-meter-'));
  const bin = join(dir, 'aidon.bin');
  writeFileSync(bin, Buffer.from('7ea02a410883130413e6e7000f40000000000101020309060100010700ff06000006a002020f00161b81df7e', 'hex'));
  const r = await run(bin);
  assert.equal([r.code, r.json[0].format, r.json[0].channels], [0, 'hdlc', { 3: 1696 }]);
  const hexFile = join(DLMS, 'hdlc_dlms_plain', 'robinsmidsrod-ams-han-decoder__aidon-6525__list1-3ph.hex');
  const h = await run(hexFile);
  assert.is(h.code, 1);
  assert.match(h.err[0], /no meter frame found in \d+ bytes .*; the file looks like hex text: add --hex$/);
  const odd = join(dir, 'odd.hex');
  writeFileSync(odd, '7E A0 2\n');
  assert.equal((await run(odd, { hex: true })).err, [`${odd}: not hex: an odd number of hex digits`]);
  writeFileSync(odd, '7E A0\nZZ\n');
  assert.equal((await run(odd, { hex: true })).err, [`${odd}: not hex: "Z" at line 2, column 1`]);
});

test('a CRC mismatch is one line naming the file and both CRCs, exit 1', async () => {
  const file = join(DSMR, 'athombv__be-emucs2.1.1__spec-example__bad-crc.txt');
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

test('the command line: --help, a bad key is a usage error (exit 2) naming the fix', () => {
  const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bin', 'gridlet.js'), ...args], { cwd: ROOT, encoding: 'utf8' });
  const help = cli(['meter', 'parse', '--help']);
  assert.is(help.status, 0);
  assert.match(help.stdout, /usage: gridlet meter parse FILE \[--hex\] \[--key HEX\] \[--auth-key HEX\] \[--type TYPE\]/);
  const badKey = cli(['meter', 'parse', 'x.hex', '--key', '1234']);
  assert.is(badKey.status, 2);
  assert.match(badKey.stderr, /--key is 32 hex digits \(16 bytes\), as the network operator gives it; this has 4/);
  const ok = cli(['meter', 'parse', '--hex', join(DLMS, 'hdlc_dlms_plain', 'robinsmidsrod-ams-han-decoder__aidon-6525__list1-3ph.hex')]);
  assert.is(ok.status, 0, ok.stderr);
  assert.is(JSON.parse(ok.stdout).channels['3'], 1696);
});

test.run();
