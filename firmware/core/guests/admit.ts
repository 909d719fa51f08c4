// What a gateway does with a module added to it (GUESTS.md "Metering", ARCHITECTURE.md
// `POST /api/guests`): accept it as is when it is already fully metered, otherwise instrument it; either
// way the bytes that pass GUESTS.md (4 KiB budget included) are the ones the CID names.

import { cidToText, guestCid } from './cid.js';
import { instrumentMetering } from './instrument.js';
import type { GuestManifest } from './manifest.js';
import { validateGuest, type GuestInfo } from './validate.js';
import { PARSE_LIMIT_BYTES, WasmError } from './wasm.js';

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
