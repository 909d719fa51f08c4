// Firmware over the air (WIRE.md "Firmware updates", docs/operator.md "Firmware updates"):
//   POST /api/firmware {"release": base64 of a release file}   keep a signed release (gridlet firmware upload)
//   GET  /api/firmware                                         releases on this gateway
//   POST /api/firmware/rollouts {"release": version | cid, "devices": [ids] | "label": "k=v", "canary", "maxFailures"}
//   GET  /api/firmware/rollouts, /api/firmware/rollouts/:id    rollouts and each device's progress
//   POST /api/firmware/rollouts/:id/stop                       stop offering; devices still downloading stop

import { FirmwareError, type FirmwareService } from '../firmware/service.js';
import { parseSelector } from '../labels.js';
import { objectBody } from './device-ops.js';
import { HttpError, type Route } from './server.js';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** A release file of the largest slot (1.6 MB on a 4 MB ESP32; 3 MB on an 8 MB S3) in base64, with room. */
export const MAX_RELEASE_BODY = 8 * 1024 * 1024;

async function guarded<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof FirmwareError) throw new HttpError(e.status, e.message);
    throw e;
  }
}

export function firmwareRoutes(fw: FirmwareService): Route[] {
  return [
    {
      method: 'POST', pattern: /^\/api\/firmware$/, maxBody: MAX_RELEASE_BODY,
      async handle(req) {
        const b = objectBody(req.body, 'POST /api/firmware {"release": base64}');
        if (typeof b.release !== 'string' || !b.release) throw new HttpError(400, 'release: required, the release file (gridlet firmware sign) in base64');
        const text = b.release.replace(/\s+/g, '');
        if (!BASE64.test(text) || text.length % 4 !== 0) throw new HttpError(400, 'release: not valid base64 (standard alphabet, padded)');
        const { release, outcome } = await guarded(() => fw.addRelease(new Uint8Array(Buffer.from(text, 'base64'))));
        return { status: outcome === 'added' ? 201 : 200, json: { cid: release.cid, version: release.version, models: release.models, size: release.size, minVersion: release.minVersion, keyId: release.keyId } };
      },
    },
    {
      method: 'GET', pattern: /^\/api\/firmware$/,
      async handle() {
        return { status: 200, json: await fw.releasesJson() };
      },
    },
    {
      method: 'POST', pattern: /^\/api\/firmware\/rollouts$/,
      async handle(req) {
        const b = objectBody(req.body, 'POST /api/firmware/rollouts {"release", "devices" | "label", "canary", "maxFailures"}');
        for (const k of Object.keys(b)) {
          if (!['release', 'devices', 'label', 'canary', 'maxFailures'].includes(k)) throw new HttpError(400, `${k}: unknown field (fields: release, devices, label, canary, maxFailures)`);
        }
        if (typeof b.release !== 'string' || !b.release) throw new HttpError(400, 'release: required, a version X.Y.Z or a release CID "b…"');
        if (b.devices !== undefined && (!Array.isArray(b.devices) || !b.devices.every((x) => typeof x === 'string'))) throw new HttpError(400, 'devices: an array of device ids');
        if ((b.devices === undefined) === (b.label === undefined)) throw new HttpError(400, 'give either devices (ids) or label (a selector such as "site=north"), not both');
        let label: { key: string; value?: string }[] | undefined;
        if (b.label !== undefined) {
          if (typeof b.label !== 'string') throw new HttpError(400, 'label: a selector such as "site=north"');
          const sel = parseSelector(b.label);
          if (typeof sel === 'string') throw new HttpError(400, `label: ${sel}`);
          label = sel;
        }
        for (const k of ['canary', 'maxFailures'] as const) {
          if (b[k] !== undefined && (typeof b[k] !== 'number' || !Number.isSafeInteger(b[k]) || (b[k] as number) < 0)) throw new HttpError(400, `${k}: a whole number ≥ 0`);
        }
        const r = await guarded(() => fw.deploy({
          release: b.release as string, devices: b.devices as string[] | undefined, label, labelText: b.label as string | undefined,
          canary: b.canary as number | undefined, maxFailures: b.maxFailures as number | undefined,
        }));
        return { status: 201, json: await fw.rolloutJson(r.id) };
      },
    },
    {
      method: 'GET', pattern: /^\/api\/firmware\/rollouts$/,
      async handle() {
        return { status: 200, json: await fw.rolloutsJson() };
      },
    },
    {
      method: 'GET', pattern: /^\/api\/firmware\/rollouts\/(\d{1,9})$/,
      async handle(req) {
        return { status: 200, json: await guarded(() => fw.rolloutJson(Number(req.params[0]))) };
      },
    },
    {
      method: 'POST', pattern: /^\/api\/firmware\/rollouts\/(\d{1,9})\/stop$/,
      async handle(req) {
        const b = req.body === undefined ? {} : objectBody(req.body, 'POST /api/firmware/rollouts/:id/stop {"reason"}');
        const reason = typeof b.reason === 'string' && b.reason ? b.reason.slice(0, 200) : 'stopped by the operator';
        const r = await guarded(() => fw.stop(Number(req.params[0]), reason));
        return { status: 200, json: await fw.rolloutJson(r.id) };
      },
    },
  ];
}
