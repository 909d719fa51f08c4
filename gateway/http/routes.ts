// The HTTP routes of ARCHITECTURE.md "Operator interface" that the gateway serves.

import type { Registry as PromRegistry } from 'prom-client';
import { isDeviceId } from '../../firmware/core/wire/topics.js';
import type { Pairing } from '../pairing.js';
import { recordJson } from '../records.js';
import { parseSelector } from '../labels.js';
import { checkLabels, type Registry } from '../registry.js';
import type { Store } from '../store/store.js';
import type { PrivacyService } from '../privacy/service.js';
import { dashboardRoutes } from '../web/serve.js';
import { HttpError, type Reply, type Route } from './server.js';
import { RecordKind } from '../../firmware/core/wire/constants.js';

export const MAX_RECORDS_LIMIT = 10_000;
export const DEFAULT_RECORDS_LIMIT = 1000;

export interface RouteDeps {
  gatewayId: string;
  registry: Registry;
  pairing: Pairing;
  store: Store;
  metrics: PromRegistry;
  /** Records reads of a device's records in the audit log. */
  privacy?: PrivacyService;
}

const ID = '([^/]+)';

function deviceId(text: string): string {
  if (!isDeviceId(text)) throw new HttpError(404, `no device "${text.slice(0, 40)}": a device id is 16 characters a-z and 2-7`);
  return text;
}

function uintParam(q: URLSearchParams, name: string, dflt: number, min: number, max: number): number {
  const v = q.get(name);
  if (v === null) return dflt;
  if (!/^\d{1,16}$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new HttpError(400, `${name} must be an integer from ${min} to ${max}, not "${v.slice(0, 40)}"`);
  }
  return Number(v);
}

function objectBody(body: unknown, what: string): { [k: string]: unknown } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, `${what}: the body must be a JSON object`);
  return body as { [k: string]: unknown };
}

export function routes(d: RouteDeps): Route[] {
  return [
    {
      method: 'GET', pattern: /^\/api\/health$/,
      async handle() {
        return { status: 200, json: { ok: true, gateway: d.gatewayId } };
      },
    },
    {
      method: 'POST', pattern: /^\/api\/pairings$/,
      async handle(req) {
        const b = objectBody(req.body, 'POST /api/pairings {"deviceId", "code"}');
        const outcome = await d.pairing.pair(b.deviceId, b.code);
        if (outcome.status === 201) return { status: 201, json: d.registry.deviceJson(outcome.device) };
        return { status: outcome.status, json: { error: outcome.error } };
      },
    },
    {
      method: 'GET', pattern: /^\/api\/devices$/,
      async handle(req) {
        const selector = parseSelector(req.query.getAll('label').join(','));
        if (typeof selector === 'string') throw new HttpError(400, selector);
        return { status: 200, json: await d.registry.list(selector) };
      },
    },
    {
      method: 'GET', pattern: new RegExp(`^/api/devices/${ID}$`),
      async handle(req) {
        const id = deviceId(req.params[0]);
        const dev = await d.registry.get(id);
        if (!dev) throw new HttpError(404, `no device ${id} on this gateway`);
        return { status: 200, json: dev };
      },
    },
    {
      method: 'DELETE', pattern: new RegExp(`^/api/devices/${ID}$`),
      async handle(req) {
        const id = deviceId(req.params[0]);
        const dev = await d.registry.revoke(id);
        if (!dev) throw new HttpError(404, `no paired device ${id} on this gateway`);
        if (dev === 'forbidden') {
          throw new HttpError(403, `device ${id} was paired by a gateway of another operator; only that operator's gateways may revoke it`);
        }
        return { status: 200, json: { id: dev.id, state: dev.state } };
      },
    },
    {
      method: 'PUT', pattern: new RegExp(`^/api/devices/${ID}/labels$`),
      async handle(req) {
        const id = deviceId(req.params[0]);
        const b = objectBody(req.body, 'PUT /api/devices/:id/labels {"labels": {"key": "value"}}');
        const labels = checkLabels(b.labels);
        if (typeof labels === 'string') throw new HttpError(400, labels);
        const dev = await d.registry.setLabels(id, labels);
        if (dev === 'not-paired') throw new HttpError(409, `device ${id} is not paired; pair it before labelling it`);
        if (!dev) throw new HttpError(404, `no device ${id} on this gateway`);
        return { status: 200, json: dev };
      },
    },
    {
      method: 'GET', pattern: new RegExp(`^/api/devices/${ID}/readings$`),
      async handle(req) {
        const id = deviceId(req.params[0]);
        const from = uintParam(req.query, 'from', 1, 1, Number.MAX_SAFE_INTEGER);
        const limit = uintParam(req.query, 'limit', DEFAULT_RECORDS_LIMIT, 1, MAX_RECORDS_LIMIT);
        if (!(await d.registry.get(id))) throw new HttpError(404, `no device ${id} on this gateway`);
        const records = await d.store.readRecords(id, from, limit);
        if (records.length && d.privacy) {
          const last = records[records.length - 1];
          const purposes = (await d.privacy.effectivePolicy(id)).operator.purposes;
          await d.privacy.recordDisclosure({
            audience: 'http', deviceId: id, kind: 'records', seq: [records[0].seq, last.kind === RecordKind.gap ? last.last : last.seq], level: 'full', purposes, via: 'http',
          });
        }
        return { status: 200, json: { records: records.map(recordJson) } };
      },
    },
    {
      method: 'GET', pattern: /^\/metrics$/,
      async handle(): Promise<Reply> {
        return { status: 200, text: await d.metrics.metrics(), contentType: d.metrics.contentType };
      },
    },
    // GET /, /app.css and the page's modules: the dashboard (gateway/web).
    ...dashboardRoutes(),
  ];
}
