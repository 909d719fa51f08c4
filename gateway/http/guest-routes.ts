// Guests (GUESTS.md "Deployment", "Microworlds"; ARCHITECTURE.md "Operator interface"):
//   POST   /api/guests {"wasm": base64, "manifest": {…}}  admit (instrument if needed) and keep by CID
//   POST   /api/guests {"world": base64}                  a world's bundle (guests/dist/<name>.world), likewise
//   GET    /api/guests, /api/guests/:cid, /api/guests/:cid/wasm   (…/wasm serves a world's bundle)
//   POST   /api/devices/:id/guests {"cid"}               guest-offer + guest-chunks (≤ 1024 bytes each)
//   GET    /api/devices/:id/guests                       deployments and what the device acknowledged
//   DELETE /api/devices/:id/guests/:name                 guest-remove

import { admitGuest, admitWorld } from '../../guests/tools/admit.js';
import { deployableCidFromText, isWorldCid } from '../../firmware/core/guests/cid.js';
import { manifestToMap, parseManifest } from '../../firmware/core/guests/manifest.js';
import { parseWorldManifest, worldManifestToMap } from '../../firmware/core/guests/world.js';
import { Body, type GuestChunk, type GuestOffer, type GuestRemove, type TextMap } from '../../firmware/core/wire/bodies.js';
import { isoTime } from '../json.js';
import type { DeviceRow, GuestModule } from '../store/store.js';
import { checkFits, deviceIdParam, ID, objectBody, pairedDevice, sendAll, type DeviceOpsDeps } from './device-ops.js';
import { HttpError, type Route } from './server.js';

/** WIRE.md guest-chunk: at most 1024 bytes per chunk. */
export const CHUNK_BYTES = 1024;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const GUEST_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/**
 * The bodies that deploy a module or a world: one offer (a world's under its world CID, with the
 * world's manifest), then its bytes in order.
 */
export function deploymentBodies(wasm: Uint8Array, cid: Uint8Array, name: string, manifest: TextMap): (GuestOffer | GuestChunk)[] {
  const bodies: (GuestOffer | GuestChunk)[] = [
    { type: Body.guestOffer, name, cid, manifest, size: wasm.length },
  ];
  for (let offset = 0; offset < wasm.length; offset += CHUNK_BYTES) {
    bodies.push({ type: Body.guestChunk, cid, offset, bytes: wasm.slice(offset, offset + CHUNK_BYTES) });
  }
  return bodies;
}

function moduleJson(m: GuestModule): { [k: string]: unknown } {
  const cid = deployableCidFromText(m.cid);
  return {
    cid: m.cid, name: m.name, version: m.version, size: m.size, instrumented: m.instrumented,
    ...(cid && isWorldCid(cid) ? { kind: 'world' } : {}),
    addedAt: isoTime(m.addedAt), manifest: m.manifest,
  };
}

function cidParam(text: string): Uint8Array {
  const cid = deployableCidFromText(text);
  if (!cid) throw new HttpError(404, `no guest "${text.slice(0, 80)}": a guest CID is "b…", base32 CIDv1 raw sha2-256 of the .wasm (a world's, dag-cbor sha2-256 of its bundle)`);
  return cid;
}

/** The offer's manifest map for a stored guest or world. */
function offerManifest(m: GuestModule, world: boolean): TextMap {
  if (world) {
    const w = parseWorldManifest(m.manifest);
    if (!w.ok) throw new Error(`stored manifest of world ${m.cid} no longer parses: ${w.reason}`);
    return worldManifestToMap(w.world);
  }
  const g = parseManifest(m.manifest);
  if (!g.ok) throw new Error(`stored manifest of ${m.cid} no longer parses: ${g.reason}`);
  return manifestToMap(g.manifest);
}

async function storedModule(d: DeviceOpsDeps, text: string): Promise<GuestModule> {
  cidParam(text);
  const m = await d.store.guests.get(text);
  if (!m) throw new HttpError(404, `no guest ${text} on this gateway; upload it first (POST /api/guests or gridlet guest deploy)`);
  return m;
}

/** The device's guests as this gateway knows them: its latest deployment of each name, and its own report. */
function deviceGuestsJson(row: DeviceRow): { [k: string]: unknown } {
  const latest = new Map<string, [string, DeviceRow['guests'][string]]>();
  const others: { [k: string]: unknown }[] = [];
  for (const [cid, g] of Object.entries(row.guests)) {
    if (g.name === undefined) {
      others.push({ cid, state: g.state, ...(g.reason === undefined ? {} : { reason: g.reason }), at: isoTime(g.at) });
      continue;
    }
    const had = latest.get(g.name);
    if (!had || (had[1].deployedAt ?? 0) < (g.deployedAt ?? 0)) latest.set(g.name, [cid, g]);
  }
  const guests = [...latest.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, [cid, g]]) => ({
    name, cid, state: g.state, ...(g.reason === undefined ? {} : { reason: g.reason }),
    deployedAt: isoTime(g.deployedAt), at: isoTime(g.at),
  }));
  const reported = row.status ? row.status.guests.map(([name, cid, state]) => ({ name, cid, state })) : null;
  return { deviceId: row.id, guests, acks: others, reported };
}

function base64Field(v: unknown, field: string, what: string): Uint8Array {
  if (typeof v !== 'string' || v.length === 0) throw new HttpError(400, `${field}: required, ${what} in base64`);
  const text = v.replace(/\s+/g, '');
  if (!BASE64.test(text)) throw new HttpError(400, `${field}: not valid base64 (standard alphabet, padded)`);
  return new Uint8Array(Buffer.from(text, 'base64'));
}

export function guestRoutes(d: DeviceOpsDeps): Route[] {
  /** POST /api/guests {"world": base64}: a world's bundle, its members instrumented when they need it. */
  const addWorld = async (b: { [k: string]: unknown }) => {
    for (const k of Object.keys(b)) if (k !== 'world') throw new HttpError(400, `${k}: unknown field (a world is {"world": base64} alone: its bundle carries its manifest)`);
    const bytes = base64Field(b.world, 'world', 'the world\'s bundle (guests/dist/<name>.world)');
    const a = admitWorld(bytes);
    if (!a.ok) {
      d.log.info({ size: bytes.length, reason: a.reason }, 'world refused');
      return { status: 422, json: { error: `world refused: ${a.reason}`, reason: a.reason } };
    }
    const m: GuestModule = {
      cid: a.cidText, name: a.world.name, version: a.world.version, size: a.bundle.length, instrumented: a.instrumented,
      manifest: worldManifestToMap(a.world), addedAt: d.now(),
    };
    const outcome = await d.store.guests.put(m, a.bundle);
    d.log.info({ cid: m.cid, name: m.name, size: m.size, members: a.world.members.length, outcome }, 'world stored');
    return {
      status: outcome === 'added' ? 201 : 200,
      json: { cid: m.cid, kind: 'world', name: m.name, version: m.version, size: m.size, instrumented: m.instrumented, members: a.world.members.map((x) => x.name) },
    };
  };
  return [
    {
      method: 'POST', pattern: /^\/api\/guests$/,
      async handle(req) {
        const b = objectBody(req.body, 'POST /api/guests {"wasm": base64, "manifest": {…}} or {"world": base64}');
        if (b.world !== undefined) return addWorld(b);
        for (const k of Object.keys(b)) {
          if (k !== 'wasm' && k !== 'manifest') throw new HttpError(400, `${k}: unknown field (fields: wasm, manifest; or world alone)`);
        }
        const bytes = base64Field(b.wasm, 'wasm', 'the .wasm module');
        if (b.manifest === undefined) throw new HttpError(400, 'manifest: required, the guest\'s manifest object (GUESTS.md "Manifest")');
        const a = admitGuest(bytes, b.manifest);
        if (!a.ok) {
          d.log.info({ size: bytes.length, reason: a.reason }, 'guest refused');
          return { status: 422, json: { error: `guest refused: ${a.reason}`, reason: a.reason } };
        }
        const m: GuestModule = {
          cid: a.cidText, name: a.manifest.name, version: a.manifest.version, size: a.wasm.length, instrumented: a.instrumented,
          manifest: { ...a.manifest }, addedAt: d.now(),
        };
        const outcome = await d.store.guests.put(m, a.wasm);
        d.log.info({ cid: m.cid, name: m.name, size: m.size, instrumented: m.instrumented, outcome }, 'guest stored');
        return {
          status: outcome === 'added' ? 201 : 200,
          json: { cid: m.cid, name: m.name, version: m.version, size: m.size, instrumented: m.instrumented, ...(outcome === 'updated' ? { manifestReplaced: true } : {}) },
        };
      },
    },
    {
      method: 'GET', pattern: /^\/api\/guests$/,
      async handle() {
        return { status: 200, json: (await d.store.guests.list()).map(moduleJson) };
      },
    },
    {
      method: 'GET', pattern: new RegExp(`^/api/guests/${ID}$`),
      async handle(req) {
        return { status: 200, json: moduleJson(await storedModule(d, req.params[0])) };
      },
    },
    {
      method: 'GET', pattern: new RegExp(`^/api/guests/${ID}/wasm$`),
      async handle(req) {
        const m = await storedModule(d, req.params[0]);
        const wasm = await d.store.guests.wasm(m.cid);
        if (!wasm) throw new HttpError(404, `no guest ${m.cid} on this gateway`);
        return { status: 200, text: wasm, contentType: 'application/wasm' };
      },
    },
    {
      method: 'POST', pattern: new RegExp(`^/api/devices/${ID}/guests$`),
      async handle(req) {
        const b = objectBody(req.body, 'POST /api/devices/:id/guests {"cid"}');
        if (typeof b.cid !== 'string') throw new HttpError(400, 'cid: required, the "b…" CID that POST /api/guests answered');
        const device = await pairedDevice(d, req.params[0]);
        const m = await storedModule(d, b.cid);
        const wasm = (await d.store.guests.wasm(m.cid))!;
        const cid = cidParam(m.cid);
        const bodies = deploymentBodies(wasm, cid, m.name, offerManifest(m, isWorldCid(cid)));
        bodies.forEach((x, i) => checkFits(x, i === 0 ? 'the guest-offer' : `guest-chunk ${i}`));
        await d.store.guests.deploying(device.id, m.cid, m.name, d.now());
        await sendAll(d, device, bodies);
        d.log.info({ device: device.id, cid: m.cid, name: m.name, chunks: bodies.length - 1 }, 'guest deployment sent');
        return { status: 202, json: { deviceId: device.id, cid: m.cid, name: m.name, size: wasm.length, chunks: bodies.length - 1 } };
      },
    },
    {
      method: 'GET', pattern: new RegExp(`^/api/devices/${ID}/guests$`),
      async handle(req) {
        const id = deviceIdParam(req.params[0]);
        const row = await d.store.getDevice(id);
        if (!row) {
          if (await d.registry.get(id)) return { status: 200, json: { deviceId: id, guests: [], acks: [], reported: null } };
          throw new HttpError(404, `no device ${id} on this gateway`);
        }
        return { status: 200, json: deviceGuestsJson(row) };
      },
    },
    {
      method: 'DELETE', pattern: new RegExp(`^/api/devices/${ID}/guests/${ID}$`),
      async handle(req) {
        const device = await pairedDevice(d, req.params[0]);
        const name = req.params[1];
        if (!GUEST_NAME.test(name)) throw new HttpError(400, `guest name "${name.slice(0, 40)}" must be 1-32 of a-z, 0-9 and -, starting with a letter`);
        const body: GuestRemove = { type: Body.guestRemove, name };
        const cids = await d.store.guests.removing(device.id, name, d.now());
        await sendAll(d, device, [body]);
        d.log.info({ device: device.id, name }, 'guest removal sent');
        return { status: 202, json: { deviceId: device.id, name, cids } };
      },
    },
  ];
}
