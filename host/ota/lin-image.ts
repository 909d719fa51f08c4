// What a slot of the lin simulator holds (docs/firmware.md "Firmware updates"): a lin image is one
// JSON line of the image's own config keys (`gridlet-lin-image v1 {"firmwareVersion":"0.2.0",…}`), then
// the simulator's mc.so, gzipped (3.4 MB of shared object travel as about 1 MB). On a meter the config is built into the image by mcconfig; the simulator reads
// its config from ./gridlet-sim.json, so the launcher that boots a slot (test/firmware/ota.test.ts)
// writes the image's keys there and runs the slot's mc.so. An image whose `broker` points nowhere is
// an image that never reaches its gateway.

import { gunzipSync, gzipSync } from 'node:zlib';
import { utf8Decode, utf8Encode } from '../../firmware/core/bytes.js';
import { bootloader, FACTORY_SLOT, OtaFlash } from '../../firmware/core/update/boot-control.js';
import type { Flash } from '../../firmware/core/ports.js';

export const LIN_IMAGE_MAGIC = 'gridlet-lin-image v1 ';

export interface LinImage {
  /** Config keys of this image (firmwareVersion at least). */
  config: { [key: string]: string | number | boolean };
  /** The simulator's shared object (mc.so). */
  so: Uint8Array;
}

export function makeLinImage(config: LinImage['config'], so: Uint8Array): Uint8Array {
  if (typeof config.firmwareVersion !== 'string') throw new Error('a lin image names its firmwareVersion');
  const head = utf8Encode(`${LIN_IMAGE_MAGIC}${JSON.stringify(config)}\n`);
  const body = gzipSync(so, { level: 9 });
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

export function parseLinImage(bytes: Uint8Array): LinImage {
  const nl = bytes.indexOf(10);
  const line = nl > 0 && nl < 4096 ? utf8Decode(bytes.subarray(0, nl)) ?? '' : '';
  if (!line.startsWith(LIN_IMAGE_MAGIC)) throw new Error('not a lin image (its first line is not "gridlet-lin-image v1 {…}")');
  const config = JSON.parse(line.slice(LIN_IMAGE_MAGIC.length)) as LinImage['config'];
  if (typeof config.firmwareVersion !== 'string') throw new Error('lin image: no firmwareVersion');
  let so: Uint8Array;
  try {
    so = new Uint8Array(gunzipSync(bytes.subarray(nl + 1)));
  } catch (e) {
    throw new Error(`lin image: the shared object does not unzip: ${(e as Error).message}`);
  }
  return { config, so };
}

/** Plays the meter's bootloader on the simulator's OTA partition: the slot it boots and its image (none: the factory image). */
export function bootLinSlot(ota: Flash): { slot: number; trial: boolean; image?: LinImage } {
  const choice = bootloader(ota);
  if (choice.slot === FACTORY_SLOT) return { slot: FACTORY_SLOT, trial: false };
  return { slot: choice.slot, trial: choice.trial, image: parseLinImage(new OtaFlash(ota).readSlot(choice.slot, 0, choice.size)) };
}
