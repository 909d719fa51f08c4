// Privacy: sharing policies, the audit log of disclosures and retention.
//   GET/PUT/DELETE /api/devices/:id/privacy         a device's own policy (GET: the one in force and where from)
//   GET  /api/privacy/groups                        group policies, highest priority first
//   PUT  /api/privacy/groups {selector, priority?, policy}
//   DELETE /api/privacy/groups?selector=S
//   GET  /api/audit?device=&limit=&before=          disclosures, newest first
//   POST /api/privacy/retention/run                 runs retention now
//   GET  /api/privacy/tombstones/:id                the device's retention tombstones (for `gridlet verify`)
// State-changing routes follow the server's rules (http/security.ts): JSON only, bearer token off loopback.

import { cidText } from '../mesh/cid.js';
import { isDeviceId } from '../../firmware/core/wire/topics.js';
import { parsePolicy, PolicyError, summary, type PrivacyPolicy } from '../privacy/policy.js';
import type { Retention } from '../privacy/retention.js';
import { checkSelector, type PrivacyService } from '../privacy/service.js';
import type { Registry } from '../registry.js';
import type { AuditEntry, GroupPolicy, Store } from '../store/store.js';
import { HttpError, type Route } from './server.js';

export interface PrivacyRouteDeps {
  privacy: PrivacyService;
  registry: Registry;
  store: Store;
  retention: Retention;
}

export const MAX_AUDIT_LIMIT = 10_000;
const ID = '([^/]+)';

/** Runs a policy parser: PolicyError → 400 naming the field. */
function policyOf(v: unknown, what: string): PrivacyPolicy {
  try {
    return parsePolicy(v);
  } catch (e) {
    if (e instanceof PolicyError) throw new HttpError(400, `${what}: ${e.message}`);
    throw e;
  }
}

async function knownDevice(d: PrivacyRouteDeps, text: string): Promise<string> {
  if (!isDeviceId(text)) throw new HttpError(404, `no device "${text.slice(0, 40)}": a device id is 16 characters a-z and 2-7`);
  if (!(await d.store.getDevice(text)) && !(await d.registry.get(text))) throw new HttpError(404, `no device ${text} on this gateway or its mesh`);
  return text;
}

function groupJson(g: GroupPolicy) {
  return { selector: g.selector, priority: g.priority, policy: g.policy, summary: summary(g.policy), updatedAt: new Date(g.updatedAt).toISOString() };
}

function auditJson(e: AuditEntry) {
  return { ...e, at: new Date(e.at).toISOString() };
}

export function privacyRoutes(d: PrivacyRouteDeps): Route[] {
  const devicePolicy = async (id: string) => {
    // A policy edited by hand in the database that no longer checks out is named, not hidden in a 500.
    const r = await d.privacy.resolve(id).catch((e: Error) => {
      throw new HttpError(500, `${e.message}; set that policy again or remove it`);
    });
    return { deviceId: id, policy: r.policy, source: r.source, summary: summary(r.policy) };
  };
  return [
    {
      method: 'GET', pattern: new RegExp(`^/api/devices/${ID}/privacy$`),
      async handle(req) {
        return { status: 200, json: await devicePolicy(await knownDevice(d, req.params[0])) };
      },
    },
    {
      method: 'PUT', pattern: new RegExp(`^/api/devices/${ID}/privacy$`),
      async handle(req) {
        const id = await knownDevice(d, req.params[0]);
        const policy = policyOf(req.body, 'PUT /api/devices/:id/privacy');
        await d.privacy.setDevicePolicy(id, policy);
        return { status: 200, json: await devicePolicy(id) };
      },
    },
    {
      method: 'DELETE', pattern: new RegExp(`^/api/devices/${ID}/privacy$`),
      async handle(req) {
        const id = await knownDevice(d, req.params[0]);
        const removed = await d.privacy.deleteDevicePolicy(id);
        return { status: 200, json: { removed, ...(await devicePolicy(id)) } };
      },
    },
    {
      method: 'GET', pattern: /^\/api\/privacy\/groups$/,
      async handle() {
        return { status: 200, json: { groups: (await d.privacy.groupPolicies()).map(groupJson) } };
      },
    },
    {
      method: 'PUT', pattern: /^\/api\/privacy\/groups$/,
      async handle(req) {
        const b = req.body;
        if (typeof b !== 'object' || b === null || Array.isArray(b)) {
          throw new HttpError(400, 'PUT /api/privacy/groups: the body is {"selector", "priority", "policy"}');
        }
        const o = b as { [k: string]: unknown };
        for (const k of Object.keys(o)) {
          if (!['selector', 'priority', 'policy'].includes(k)) throw new HttpError(400, `${k.slice(0, 40)}: unknown field (fields: selector, priority, policy)`);
        }
        let selector: string;
        try {
          selector = checkSelector(o.selector);
        } catch (e) {
          throw new HttpError(400, (e as Error).message);
        }
        const priority = o.priority ?? 0;
        if (typeof priority !== 'number' || !Number.isSafeInteger(priority) || Math.abs(priority) > 1_000_000) {
          throw new HttpError(400, '"priority" is an integer from -1000000 to 1000000 (higher is tried first)');
        }
        if (o.policy === undefined) throw new HttpError(400, 'give "policy": the sharing policy for the devices the selector matches');
        const policy = policyOf(o.policy, 'policy');
        const g = await d.privacy.setGroupPolicy(selector, priority, policy);
        return { status: 200, json: groupJson(g) };
      },
    },
    {
      method: 'DELETE', pattern: /^\/api\/privacy\/groups$/,
      async handle(req) {
        const selector = req.query.get('selector');
        if (!selector) throw new HttpError(400, 'name the group: DELETE /api/privacy/groups?selector=key=value');
        if (!(await d.privacy.deleteGroupPolicy(selector))) throw new HttpError(404, `no group policy for selector "${selector.slice(0, 80)}"`);
        return { status: 200, json: { removed: selector } };
      },
    },
    {
      method: 'GET', pattern: /^\/api\/audit$/,
      async handle(req) {
        const device = req.query.get('device') ?? undefined;
        if (device !== undefined && !isDeviceId(device)) throw new HttpError(400, `device "${device.slice(0, 40)}" is not a device id (16 characters a-z and 2-7)`);
        const num = (name: string, dflt: number | undefined, max: number) => {
          const v = req.query.get(name);
          if (v === null) return dflt;
          if (!/^\d{1,16}$/.test(v) || Number(v) < 1 || Number(v) > max) throw new HttpError(400, `${name} must be an integer from 1 to ${max}, not "${v.slice(0, 40)}"`);
          return Number(v);
        };
        const limit = num('limit', 100, MAX_AUDIT_LIMIT)!;
        const beforeId = num('before', undefined, Number.MAX_SAFE_INTEGER);
        const entries = await d.store.privacy.audit({ deviceId: device, limit, beforeId });
        return { status: 200, json: { entries: entries.map(auditJson) } };
      },
    },
    {
      method: 'POST', pattern: /^\/api\/privacy\/retention\/run$/,
      async handle() {
        const r = await d.retention.run();
        return { status: 200, json: { at: new Date(r.at).toISOString(), devices: r.devices } };
      },
    },
    {
      method: 'GET', pattern: new RegExp(`^/api/privacy/tombstones/${ID}$`),
      async handle(req) {
        const id = req.params[0];
        if (!isDeviceId(id)) throw new HttpError(404, `no device "${id.slice(0, 40)}": a device id is 16 characters a-z and 2-7`);
        const blocks = await d.store.blocks.list('tombstone', id);
        return { status: 200, json: { deviceId: id, tombstones: blocks.map((b) => cidText(b.cid)) } };
      },
    },
  ];
}
