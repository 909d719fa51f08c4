// Guests installed on the meter at start (`gridlet agent --guest NAME|FILE.wasm[:MANIFEST.json]|FILE.world`),
// as a factory would ship them: a built guest or world from guests/dist by name, or any .wasm with its
// manifest, or a world's bundle. One already installed with the same bytes is left alone (its state
// and kv slots stay).

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { GuestSupervisor } from '../../firmware/core/guests/supervisor.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function resolveGuest(spec: string): { wasm: string; manifest: string } | { world: string } {
  if (/^[a-z][a-z0-9-]*$/.test(spec)) {
    const wasm = `${ROOT}guests/dist/${spec}.wasm`;
    const world = `${ROOT}guests/dist/${spec}.world`;
    const manifest = `${ROOT}manifests/guests/${spec}.json`;
    if (existsSync(world) && !existsSync(wasm)) return { world };
    if (!existsSync(wasm)) throw new Error(`no built guest or world named "${spec}" (looked for ${wasm} and ${world}); run npm run build:guests or give a .wasm path`);
    return { wasm, manifest };
  }
  if (spec.endsWith('.world')) return { world: spec };
  const [wasm, manifest] = spec.split(':');
  return { wasm, manifest: manifest ?? wasm.replace(/\.wasm$/, '.json') };
}

/** Installs each guest; returns one line per guest saying what happened. */
export function preinstallGuests(supervisor: GuestSupervisor, specs: string[]): string[] {
  const out: string[] = [];
  for (const spec of specs) {
    const resolved = resolveGuest(spec);
    if ('world' in resolved) {
      let bundle: Uint8Array;
      try {
        bundle = new Uint8Array(readFileSync(resolved.world));
      } catch (e) {
        throw new Error(`world ${spec}: ${(e as Error).message}`);
      }
      const ack = supervisor.installWorld(bundle);
      if (ack.state !== 'running') throw new Error(`world ${spec} refused: ${ack.reason ?? ack.state}`);
      out.push(`world ${spec} installed from ${resolved.world}`);
      continue;
    }
    const { wasm, manifest } = resolved;
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
