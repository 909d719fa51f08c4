// Demand response and tariffs (WIRE.md bodies 21 dr-event and 25 tariff):
//   POST /api/devices/:id/dr-events   gridlet's JSON {"id", "start", "duration", "level", …} or an OpenADR 3
//                                     event (3.0.1 or 3.1.0, or a list of them); ?currency= for PRICE
//   POST /api/dr-events?label=k=v     the same, to every paired device the label selector matches
//   POST /api/devices/:id/tariff      {"price", "currency", "from", "until"}
//   GET  /api/devices/:id/dr-events   the demand-response history the device reported (its `dr` event
//                                     records: start, end, missed) among its last DR_HISTORY_RECORDS records
// Each answers 202 with the bodies sent (and notes on what an OpenADR event held that is not sent).

import type { DrEvent, Tariff } from '../../firmware/core/wire/bodies.js';
import { bodyJson, currencyField, nativeDrEvent, nativeTariff } from '../dr/native.js';
import { drRecordJson, recordJson } from '../records.js';
import { isOpenAdr, mapOpenAdr, type OpenAdrEventSummary } from '../dr/openadr.js';
import { parseSelector } from '../labels.js';
import type { DeviceRow } from '../store/store.js';
import { checkFits, deviceIdParam, ID, pairedDevice, parsed, sendAll, type DeviceOpsDeps } from './device-ops.js';
import { HttpError, type Route } from './server.js';

export const DR_HISTORY_RECORDS = 10_000;

interface DrPlan {
  format: 'gridlet' | 'openadr';
  bodies: (DrEvent | Tariff)[];
  notes: string[];
  openadr?: OpenAdrEventSummary[];
}

function plan(body: unknown, query: URLSearchParams, nowS: number): DrPlan {
  const currencyText = query.get('currency');
  const currency = currencyText === null ? undefined : parsed('', () => currencyField(currencyText, '?currency'));
  let p: DrPlan;
  if (isOpenAdr(body)) {
    const m = parsed('OpenADR event', () => mapOpenAdr(body, { nowS, currency }));
    p = { format: 'openadr', bodies: m.bodies, notes: m.notes, openadr: m.events };
  } else {
    if (currency !== undefined) throw new HttpError(400, '?currency applies to OpenADR PRICE payloads only');
    p = { format: 'gridlet', bodies: [parsed('dr-event', () => nativeDrEvent(body, nowS))], notes: [] };
  }
  p.bodies.forEach((b, i) => checkFits(b, `body ${i + 1} (${bodyJson(b).body})`));
  return p;
}

function answer(p: DrPlan): { [k: string]: unknown } {
  return { format: p.format, ...(p.openadr ? { openadr: p.openadr } : {}), bodies: p.bodies.map(bodyJson), notes: p.notes };
}

export function drRoutes(d: DeviceOpsDeps): Route[] {
  const nowS = () => Math.floor(d.now() / 1000);
  return [
    {
      method: 'POST', pattern: new RegExp(`^/api/devices/${ID}/dr-events$`),
      async handle(req) {
        const device = await pairedDevice(d, req.params[0]);
        const p = plan(req.body, req.query, nowS());
        await sendAll(d, device, p.bodies);
        d.log.info({ device: device.id, format: p.format, bodies: p.bodies.length }, 'demand response sent');
        return { status: 202, json: { deviceId: device.id, ...answer(p) } };
      },
    },
    {
      method: 'GET', pattern: new RegExp(`^/api/devices/${ID}/dr-events$`),
      async handle(req) {
        const id = deviceIdParam(req.params[0]);
        const row = await d.store.getDevice(id);
        if (!row) {
          if (await d.registry.get(id)) return { status: 200, json: { deviceId: id, events: [] } };
          throw new HttpError(404, `no device ${id} on this gateway`);
        }
        const from = Math.max(1, row.ackedSeq - DR_HISTORY_RECORDS + 1);
        const events = (await d.store.readRecords(id, from, DR_HISTORY_RECORDS)).map(recordJson)
          .filter((r) => r[2] === 'event' && r[3] === 'dr')
          .map((r) => drRecordJson(r[0], r[1], r[4]));
        return { status: 200, json: { deviceId: id, fromSeq: from, events } };
      },
    },
    {
      method: 'POST', pattern: /^\/api\/dr-events$/,
      async handle(req) {
        const text = req.query.getAll('label').join(',');
        const selector = parseSelector(text);
        if (typeof selector === 'string') throw new HttpError(400, selector);
        if (selector.length === 0) {
          throw new HttpError(400, 'give a label selector, ?label=key=value (or POST /api/devices/:id/dr-events for one device)');
        }
        const p = plan(req.body, req.query, nowS());
        const listed = (await d.registry.list(selector)).filter((x) => x.state === 'paired');
        if (listed.length === 0) throw new HttpError(404, `no paired device matches the label selector ${text}`);
        const sent: string[] = [];
        for (const x of listed) {
          // Revoked meanwhile: skipped, not an error for the others.
          const device: DeviceRow | undefined = await d.store.getDevice(x.id);
          if (device?.state !== 'paired') continue;
          await sendAll(d, device, p.bodies);
          sent.push(device.id);
        }
        d.log.info({ selector: text, devices: sent.length, format: p.format, bodies: p.bodies.length }, 'demand response sent to a group');
        return { status: 202, json: { selector: text, devices: sent, ...answer(p) } };
      },
    },
    {
      method: 'POST', pattern: new RegExp(`^/api/devices/${ID}/tariff$`),
      async handle(req) {
        const device = await pairedDevice(d, req.params[0]);
        const body = parsed('tariff', () => nativeTariff(req.body));
        checkFits(body, 'the tariff');
        await sendAll(d, device, [body]);
        d.log.info({ device: device.id, currency: body.currency }, 'tariff sent');
        return { status: 202, json: { deviceId: device.id, bodies: [bodyJson(body)] } };
      },
    },
  ];
}
