// What a gateway does with a module added to it (GUESTS.md "Metering", ARCHITECTURE.md
// `POST /api/guests`): accept it as is when it is already fully metered, otherwise instrument it; either
// way the bytes that pass GUESTS.md (4 KiB budget included) are the ones the CID names.

import { cidToText, guestCid, worldCid } from '../../firmware/core/guests/cid.js';
import { instrumentMetering } from './instrument.js';
import type { GuestManifest } from '../../firmware/core/guests/manifest.js';
import { validateGuest, type GuestInfo } from '../../firmware/core/guests/validate.js';
import { PARSE_LIMIT_BYTES, WasmError } from '../../firmware/core/guests/wasm.js';
import { decodeWorld, encodeWorld, validateWorld, type WorldManifest } from '../../firmware/core/guests/world.js';

export type Admission =
  | { ok: true; wasm: Uint8Array; cid: Uint8Array; cidText: string; instrumented: boolean; info: GuestInfo; manifest: GuestManifest }
  | { ok: false; reason: string };

export function admitGuest(bytes: Uint8Array, manifest: unknown): Admission {
  if (bytes.length > PARSE_LIMIT_BYTES) {
    return { ok: false, reason: `module is ${bytes.length} bytes; nothing over ${PARSE_LIMIT_BYTES} is considered (a guest ships at most 4096)` };
  }
  const asIs = validateGuest(bytes, manifest);
  if (asIs.ok) return accepted(bytes, false, asIs.info, asIs.manifest);
  let wasm: Uint8Array;
  try {
    wasm = instrumentMetering(bytes).wasm;
  } catch (e) {
    if (e instanceof WasmError) return { ok: false, reason: e.message };
    throw e;
  }
  const v = validateGuest(wasm, manifest);
  if (!v.ok) return v;
  return accepted(wasm, true, v.info, v.manifest);
}

function accepted(wasm: Uint8Array, instrumented: boolean, info: GuestInfo, manifest: GuestManifest): Admission {
  const cid = guestCid(wasm);
  return { ok: true, wasm, cid, cidText: cidToText(cid), instrumented, info, manifest };
}

export type WorldAdmission =
  | { ok: true; bundle: Uint8Array; cid: Uint8Array; cidText: string; instrumented: boolean; world: WorldManifest; infos: GuestInfo[] }
  | { ok: false; reason: string };

/**
 * What a gateway does with a world added to it (GUESTS.md "Microworlds"), as with a guest: accepted as
 * is when every member is fully metered, otherwise its members are instrumented (instrumenting a
 * metered module changes nothing) and the bundle is written anew around them, so the world's CID
 * names the bytes that pass, every member within its 4 KiB.
 */
export function admitWorld(bytes: Uint8Array): WorldAdmission {
  const d = decodeWorld(bytes);
  if (!d.ok) return d;
  const asIs = validateWorld(d);
  if (asIs.ok) return world(bytes, false, asIs.world, asIs.infos);
  const modules: Uint8Array[] = [];
  for (let i = 0; i < d.modules.length; i++) {
    try {
      modules.push(instrumentMetering(d.modules[i]).wasm);
    } catch (e) {
      if (e instanceof WasmError) return { ok: false, reason: `member "${d.world.members[i].name}": ${e.message}` };
      throw e;
    }
  }
  const v = validateWorld({ world: d.world, modules });
  if (!v.ok) return v;
  return world(encodeWorld(d.world, modules), true, v.world, v.infos);
}

function world(bundle: Uint8Array, instrumented: boolean, w: WorldManifest, infos: GuestInfo[]): WorldAdmission {
  const cid = worldCid(bundle);
  return { ok: true, bundle, cid, cidText: cidToText(cid), instrumented, world: w, infos };
}
