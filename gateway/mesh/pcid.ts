// Protocol identifiers (MESH.md "Envelope"): a pCID is the CID of the exact bytes of a protocol's
// specification in docs/protocols/ (stored with -text, frozen once published). They are computed from
// the files at startup, never written down twice.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cidOf, cidText } from './cid.js';
import { toHex } from '../../firmware/core/bytes.js';

export const PROTOCOL_DIR = join(fileURLToPath(import.meta.url), '..', '..', '..', 'docs', 'protocols');

export const PROTOCOL_FILES = {
  readings: 'meter-readings-v1.md',
  registry: 'device-registry-v1.md',
  identity: 'gateway-identity-v1.md',
  guest: 'guest-publication-v1.md',
  tombstone: 'retention-tombstone-v1.md',
  aggregates: 'meter-aggregates-v1.md',
  consent: 'sharing-consent-v1.md',
  identity2: 'gateway-identity-v2.md',
  registry2: 'device-registry-v2.md',
  consent2: 'sharing-consent-v2.md',
  admission: 'mesh-admission-v2.md',
} as const;

export type ProtocolName = keyof typeof PROTOCOL_FILES;

export interface Protocol {
  name: ProtocolName;
  file: string;
  /** Binary CIDv1 (36 bytes). */
  pcid: Uint8Array;
  text: string;
}

let cache: { [name in ProtocolName]: Protocol } | undefined;

/** The protocols this gateway speaks, with their pCIDs computed from the documents' bytes. */
export function protocols(dir = PROTOCOL_DIR): { [name in ProtocolName]: Protocol } {
  if (dir === PROTOCOL_DIR && cache) return cache;
  const out = {} as { [name in ProtocolName]: Protocol };
  for (const [name, file] of Object.entries(PROTOCOL_FILES) as [ProtocolName, string][]) {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(join(dir, file)));
    } catch (e) {
      throw new Error(`protocol document ${join(dir, file)} is missing (${(e as NodeJS.ErrnoException).code}); ` +
        'the mesh pCIDs are computed from docs/protocols/ — restore it from the repository');
    }
    const pcid = cidOf(bytes);
    out[name] = { name, file, pcid, text: cidText(pcid) };
  }
  if (dir === PROTOCOL_DIR) cache = out;
  return out;
}

/** The protocol a binary pCID names, or undefined when this gateway does not know it. */
export function protocolOf(pcid: Uint8Array): ProtocolName | undefined {
  const hex = toHex(pcid);
  for (const p of Object.values(protocols())) if (toHex(p.pcid) === hex) return p.name;
  return undefined;
}
