// Guests installed on the meter at start (`gridlet agent --guest NAME|FILE.wasm[:MANIFEST.json]`), as a
// factory would ship them: a built guest from guests/dist by name, or any .wasm with its manifest.
// A guest that is already installed with the same bytes is left alone (its state and kv slots stay).

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { GuestSupervisor } from '../../firmware/core/guests/supervisor.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function resolveGuest(spec: string): { wasm: string; manifest: string } {
  if (/^[a-z][a-z0-9-]*$/.test(spec)) {
    const wasm = `${ROOT}guests/dist/${spec}.wasm`;
    const manifest = `${ROOT}manifests/guests/${spec}.json`;
    if (!existsSync(wasm)) throw new Error(`no built guest named "${spec}" (looked for ${wasm}); run npm run build:guests or give a .wasm path`);
    return { wasm, manifest };
  }
  const [wasm, manifest] = spec.split(':');
  return { wasm, manifest: manifest ?? wasm.replace(/\.wasm$/, '.json') };
}

/** Installs each guest; returns one line per guest saying what happened. */
export function preinstallGuests(supervisor: GuestSupervisor, specs: string[]): string[] {
  const out: string[] = [];
  for (const spec of specs) {
    const { wasm, manifest } = resolveGuest(spec);
    let bytes: Uint8Array;
    let m: unknown;
    try {
      bytes = new Uint8Array(readFileSync(wasm));
      m = JSON.parse(readFileSync(manifest, 'utf8'));
    } catch (e) {
      throw new Error(`guest ${spec}: ${(e as Error).message}`);
    }
    const name = (m as { name?: string }).name;
    const existing = supervisor.status().find((g) => g.name === name);
    const ack = supervisor.install(bytes, m);
    if (ack.state !== 'running') throw new Error(`guest ${spec} refused: ${ack.reason ?? ack.state}`);
    out.push(`guest ${name} ${existing ? 'checked' : 'installed'} from ${wasm}`);
  }
  return out;
}
