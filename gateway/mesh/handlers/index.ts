// The mesh's dispatch table: protocol (pCID, docs/protocols/) → handler. A message of a protocol not in
// it is kept as opaque bytes and forwarded, never interpreted (MESH.md "Envelope").

import type { ProtocolName } from '../pcid.js';
import { aggregates } from './aggregates.js';
import { consent } from './consent.js';
import { guest } from './guest.js';
import type { ProtocolHandler } from './handler.js';
import { identity } from './identity.js';
import { readings } from './readings.js';
import { registry } from './registry.js';
import { tombstone } from './tombstone.js';

export const protocolHandlers: { [name in ProtocolName]?: ProtocolHandler } = {
  identity,
  readings,
  registry,
  tombstone,
  aggregates,
  consent,
  guest,
};
