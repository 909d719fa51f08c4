// The mesh over plain HTTP (ARCHITECTURE.md, MESH.md "Transport"): blocks by CID for tools that do not
// speak libp2p, a device's chain heads and registry messages, and an index of what this gateway holds.
// (Like the rest of the HTTP API, these are the operator's own: behind --api-token-file off loopback.)

import { toHex } from '../../firmware/core/bytes.js';
import { isDeviceId } from '../../firmware/core/wire/topics.js';
import { HttpError, type Route } from '../http/server.js';
import { cidText, parseCidText } from './cid.js';
import type { Mesh } from './mesh.js';
import { protocols } from './pcid.js';

export function meshRoutes(mesh: Mesh): Route[] {
  return [
    {
      method: 'GET', pattern: /^\/api\/mesh\/blocks\/([^/]+)$/,
      async handle(req) {
        const cid = parseCidText(req.params[0]);
        if (!cid) throw new HttpError(400, `"${req.params[0].slice(0, 80)}" is not a CID: expected b… (CIDv1 raw sha2-256, base32)`);
        const bytes = await mesh.fetchBlock(cid);
        if (!bytes) throw new HttpError(404, `no block ${req.params[0]} on this gateway or its peers`);
        // Grid messages are CBOR; a guest module's bytes are WebAssembly.
        const wasm = bytes.length >= 4 && bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d;
        return { status: 200, text: bytes, contentType: wasm ? 'application/wasm' : 'application/cbor' };
      },
    },
    {
      method: 'GET', pattern: /^\/api\/mesh\/heads\/([^/]+)$/,
      async handle(req) {
        const id = req.params[0];
        if (!isDeviceId(id)) throw new HttpError(404, `no device "${id.slice(0, 40)}": a device id is 16 characters a-z and 2-7`);
        const h = await mesh.heads(id);
        // Aggregate chains (meter-aggregates-v1): what a gateway of another operator may hold instead of readings.
        const aggregates = mesh.aggregateHeads(id);
        if (!h && aggregates.length === 0) throw new HttpError(404, `no readings or aggregates messages of device ${id} on this gateway`);
        return { status: 200, json: { cid: h ? cidText(h.cid) : null, heads: h ? h.heads.map(cidText) : [], aggregates } };
      },
    },
    {
      method: 'GET', pattern: /^\/api\/mesh\/devices\/([^/]+)$/,
      async handle(req) {
        const id = req.params[0];
        if (!isDeviceId(id)) throw new HttpError(404, `no device "${id.slice(0, 40)}": a device id is 16 characters a-z and 2-7`);
        const registry = mesh.crdt.deviceCids(id);
        if (registry.length === 0) throw new HttpError(404, `no registry messages of device ${id} on this gateway`);
        const st = mesh.deviceState(id);
        return {
          status: 200,
          json: {
            device: id, registry: registry.map(cidText),
            state: st ? { state: st.state, gateway: st.gateway, operator: st.operator, pairing: cidText(st.pairing) } : null,
            conflicts: (st?.conflicts ?? []).map((c) => ({ pairing: cidText(c.pairing), gateway: c.gateway, operator: c.operator, against: cidText(c.against) })),
          },
        };
      },
    },
    {
      method: 'GET', pattern: /^\/api\/mesh$/,
      async handle() {
        const p = protocols();
        return {
          status: 200,
          json: {
            gateway: mesh.gatewayId, operator: mesh.operator, operatorName: mesh.operatorName, peer: mesh.peerId, multiaddr: mesh.multiaddr ?? null,
            identity: cidText(mesh.identityCid),
            trusted: mesh.trustedOperators(),
            protocols: Object.fromEntries(Object.values(p).map((x) => [x.name, { pcid: x.text, file: `docs/protocols/${x.file}` }])),
            peers: mesh.node?.connectedPeers() ?? [],
            gateways: [...mesh.identities.identities.values()].map((s) => ({
              gateway: s.entry.gateway, operator: s.entry.operatorId, operatorName: s.entry.name, peer: s.entry.peer,
              ed25519: toHex(s.entry.ed25519), enrolled: s.entry.enrolled, cid: cidText(s.cid),
            })),
            registry: mesh.crdt.cids().map(cidText),
            heads: await mesh.allHeads(),
            received: mesh.counts.received,
            refused: mesh.refused,
          },
        };
      },
    },
  ];
}
