// Adds the meter parsers' workloads to scripts/xs/bench-workload.ts: one message of each format pushed
// whole into a MeterParser that has already recognised its framing and holds its keys (the steady
// state on a meter), so a crank of N prices one message: computrons and heap allocated per frame.
//   meter.<format>   the message in one push, as a UART delivers a burst
//   meter.hdlcBytewise   Aidon list 2 one byte per push (pushes of preallocated 1-byte arrays)
//   gcm.open512      AES-128-GCM open (tag checked) of 512 bytes: the cipher alone

import { AesGcm } from '../../firmware/core/aes-gcm.js';
import { MeterParser, type MeterType } from '../../firmware/core/meter/meter.js';
import { cat, fixtureBytes, fixtureKeys, hdlcFrame, latin1Bytes } from '../../test/core/support/dlms-build.js';
import { setups, workloads } from './bench-workload.js';
// @ts-expect-error: esbuild embeds .txt files as text (loader 'text' in scripts/xs/xsnap.js)
import dsmrTelegram from '../../test/fixtures/dsmr/athombv__nl-dsmr5.0__iskra-am550.txt';

export interface MeterWorkload { name: string; what: string; bytes: number }
export const meterWorkloads: MeterWorkload[] = [];

let readings = 0;

function meter(name: string, what: string, type: MeterType, bytes: Uint8Array, keys: { key?: Uint8Array; authKey?: Uint8Array } = {}): void {
  let p: MeterParser | undefined;
  meterWorkloads.push({ name, what, bytes: bytes.length });
  setups[name] = () => {
    p = new MeterParser({ type, ...keys, onReading: () => readings++ });
    // Recognise the framing, ask for the keys, allocate the buffers: then measure.
    const before = readings;
    p.push(bytes);
    p.push(bytes);
    if (readings - before !== 2) throw new Error(`${name}: the capture did not parse on XS`);
    return `${name}: ${bytes.length} bytes`;
  };
  workloads[name] = () => p!.push(bytes);
}

const F = (name: string) => fixtureBytes(name);
meter('meter.dsmr', 'DSMR 5.0 P1 telegram (Iskra AM550, NL), text', 'dsmr', latin1Bytes(dsmrTelegram as string));
meter('meter.hdlc', 'HDLC, plain: Aidon list 2, 3-phase (NO)', 'dlms', F('hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list2-3ph.hex'));
meter('meter.hdlcLong', 'HDLC, plain: Aidon list of 27 registers (SE)', 'dlms', F('hdlc_dlms_plain/esphome-dlms_parser__aidon__se-list-3ph-doc-example.hex'));
meter('meter.hdlcValuesOnly', 'HDLC, values by position: Kaifa list 3 (NO)', 'dlms', hdlcFrame(F('dlms_llc_apdu_plain/amshan__kaifa-ma304h3e__no-list3-3ph-llc.hex')));
const kamstrup = 'hdlc_dlms_encrypted/esphome-dlms_parser__kamstrup-omnipower__ggc-list-encrypted.hex';
meter('meter.hdlcCiphered', 'HDLC, AES-128-GCM with tag: Kamstrup Omnipower (DK)', 'dlms', F(kamstrup), fixtureKeys(kamstrup));
const e450 = 'hdlc_dlms_encrypted/esphome-dlms_parser__landis-gyr-e450-a__gbt-3-frames-encrypted.hex';
meter('meter.hdlcBlocksCiphered', 'HDLC, 3 frames of block transfer, AES-128-GCM: Landis+Gyr E450', 'dlms', F(e450), fixtureKeys(e450));
const evn = 'mbus_dlms_encrypted/esphome-dlms_parser__kaifa-ma309-evn__netz-noe-doc-example-2-frames.hex';
meter('meter.mbusEncrypted', 'M-Bus, 2 frames, AES-128-GCM without tag: Kaifa (AT, EVN)', 'mbus', F(evn), fixtureKeys(evn));
const smarty = 'smarty_p1_encrypted/dsmr_parser__SYNTHETIC-sagemcom-t210-d-r__p1-encrypted-regenerated.hex';
meter('meter.smarty', 'Smarty envelope, AES-128-GCM, then the P1 parser (LU)', 'smarty', F(smarty), fixtureKeys(smarty));

// Byte at a time: 1-byte arrays made in setup, so only the parser's own work is measured.
{
  const frame = F('hdlc_dlms_plain/robinsmidsrod-ams-han-decoder__aidon-6525__list2-3ph.hex');
  const singles = Array.from(frame, (b) => Uint8Array.of(b));
  let p: MeterParser | undefined;
  meterWorkloads.push({ name: 'meter.hdlcBytewise', what: 'HDLC, plain: Aidon list 2, one byte per push', bytes: frame.length });
  setups['meter.hdlcBytewise'] = () => {
    p = new MeterParser({ type: 'dlms', onReading: () => readings++ });
    p.push(cat(frame, frame));
  };
  workloads['meter.hdlcBytewise'] = () => {
    for (let i = 0; i < singles.length; i++) p!.push(singles[i]);
  };
}

// The cipher alone.
{
  const gcm = new AesGcm(Uint8Array.from({ length: 16 }, (_, i) => i));
  const iv = new Uint8Array(12);
  const aad = new Uint8Array(17);
  const text = new Uint8Array(512);
  const tag = new Uint8Array(16);
  const out = new Uint8Array(512);
  gcm.seal(iv, aad, 0, 17, text, 0, 512, text, 0, tag, 0, 12);
  meterWorkloads.push({ name: 'gcm.open512', what: 'AES-128-GCM open with a 12-byte tag, 512 bytes', bytes: 512 });
  workloads['gcm.open512'] = () => {
    if (!gcm.open(iv, aad, 0, 17, text, 0, 512, tag, 0, 12, out, 0)) throw new Error('tag');
  };
}

setups['meterList'] = () => JSON.stringify(meterWorkloads);
