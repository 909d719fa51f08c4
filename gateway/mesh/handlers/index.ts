// The mesh's dispatch table: protocol (pCID, docs/protocols/) → handler. A message of a protocol not in
// it is kept as opaque bytes and forwarded, never interpreted (MESH.md "Envelope").

import type { ProtocolName } from '../pcid.js';
import { aggregates } from './aggregates.js';
import { consent, consentV1 } from './consent.js';
import { guest } from './guest.js';
import type { ProtocolHandler } from './handler.js';
import { identity, identityV1 } from './identity.js';
import { readings } from './readings.js';
import { registry } from './registry.js';
import { tombstone } from './tombstone.js';

export const protocolHandlers: { [name in ProtocolName]?: ProtocolHandler } = {
  identity: identityV1,
  identity2: identity,
  readings,
  registry,
  registry2: registry,
  tombstone,
  aggregates,
  consent: consentV1,
  consent2: consent,
  guest,
};

/** Protocols every admitted peer may hold: what a gateway accepts of them it passes on to its other peers. */
export const PUBLIC_PROTOCOLS: ReadonlySet<ProtocolName> = new Set<ProtocolName>(['identity2', 'registry', 'registry2', 'consent2', 'tombstone', 'guest']);
