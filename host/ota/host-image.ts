// What a host agent's app slot holds (docs/firmware.md "Firmware updates"): a host cannot swap its own
// code, so its "image" names the firmware it plays — the version it reports, and for tests and drills a
// fault: `no-reconnect` boots an image that never reaches its gateway (it rolls back by itself). The
// first line is `gridlet-host-image v1 {json}`, the rest padding to the size asked for, so transfers of
// a realistic size can be rehearsed. The factory image (nothing in a slot) is the agent's own version.

import { utf8Decode, utf8Encode } from '../../firmware/core/bytes.js';
import { bootloader, FACTORY_SLOT, OtaFlash } from '../../firmware/core/update/boot-control.js';
import { isVersion } from '../../firmware/core/update/release.js';
import type { Flash } from '../../firmware/core/ports.js';

export const HOST_IMAGE_MAGIC = 'gridlet-host-image v1 ';
export const HOST_FAULTS = ['no-reconnect'] as const;
export type HostFault = (typeof HOST_FAULTS)[number];

export interface HostImage {
  version: string;
  fault?: HostFault;
}

export function makeHostImage(h: HostImage, size = 0): Uint8Array {
  if (!isVersion(h.version)) throw new Error(`version "${h.version}" must be X.Y.Z`);
  const head = utf8Encode(`${HOST_IMAGE_MAGIC}${JSON.stringify(h)}\n`);
  const out = new Uint8Array(Math.max(size, head.length));
  out.set(head, 0);
  // Padding that does not compress to nothing: a transfer of this size moves this many bytes.
  let x = 0x9e3779b9;
  for (let i = head.length; i < out.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export function parseHostImage(bytes: Uint8Array): HostImage {
  const nl = bytes.indexOf(10);
  const line = nl > 0 ? utf8Decode(bytes.subarray(0, Math.min(nl, 400))) ?? '' : '';
  if (!line.startsWith(HOST_IMAGE_MAGIC)) throw new Error('not a host image (its first line is not "gridlet-host-image v1 {…}")');
  const h = JSON.parse(line.slice(HOST_IMAGE_MAGIC.length)) as HostImage;
  if (typeof h.version !== 'string' || !isVersion(h.version)) throw new Error('host image: version must be X.Y.Z');
  if (h.fault !== undefined && !HOST_FAULTS.includes(h.fault)) throw new Error(`host image: unknown fault "${String(h.fault)}"`);
  return h;
}

/** Plays a meter's bootloader on the host's OTA flash and says what it booted. */
export function bootHostImage(ota: Flash, factoryVersion: string): HostImage & { slot: number; trial: boolean } {
  const choice = bootloader(ota);
  if (choice.slot === FACTORY_SLOT) return { version: factoryVersion, slot: FACTORY_SLOT, trial: false };
  const image = parseHostImage(new OtaFlash(ota).readSlot(choice.slot, 0, Math.min(choice.size, 512)));
  return { ...image, slot: choice.slot, trial: choice.trial };
}
