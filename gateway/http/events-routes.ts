// GET /api/events: the dashboard's live stream (Server-Sent Events) of what the gateway's events say:
//   records  {deviceId, lastSeq, count, latest: {channel: [t, value]}, readings: [[seq, t, channel, value]…],
//             events: [[seq, t, kind, data]…]}   (readings and events capped per batch)
//   dr       {deviceId, seq, t, event, phase}     a demand-response event the device reported
//   device   {deviceId, change, …}                hello (seen / online), paired, revoked, status, guest-ack, lwt
// Each client has a bounded buffer: one that cannot keep up is disconnected (it reconnects and reloads)
// rather than growing the gateway's memory. A comment line every HEARTBEAT_MS keeps proxies and dead
// connections honest. close() ends every open stream so the gateway's own close is never held up.
// The browser reads this with fetch() (not EventSource), so it can send the bearer token on
// non-loopback binds like every other API call. `?device=ID` (repeatable) limits a stream to those
// devices. Opening a stream is recorded in the audit log once, with its device filter (it discloses
// live readings as they come), like every other read of meter data.

import type { ServerResponse } from 'node:http';
import { isDeviceId } from '../../firmware/core/wire/topics.js';
import type { PrivacyService } from '../privacy/service.js';
import type { GatewayEventMap, GatewayEventName, GatewayEvents, RecordsEvent } from '../events.js';
import { cborToJson } from '../json.js';
import { drRecordJson } from '../records.js';
import { EVERY_DEVICE, type Disclosure } from '../store/store.js';
import { HttpError, type Reply, type Route } from './server.js';

export const HEARTBEAT_MS = 15_000;
/** Events queued for a client whose socket is not draining before it is disconnected. */
export const MAX_CLIENT_BUFFER = 1000;
/** Readings and events of one records batch forwarded as they are; the rest only counted. */
export const MAX_BATCH_ITEMS = 200;
export const MAX_CLIENTS = 64;

interface Client {
  res: ServerResponse;
  queue: string[];
  waiting: boolean;
  /** The devices this stream is limited to (`?device=`); undefined: every device. */
  devices?: Set<string>;
}

export interface EventStreamOptions {
  /** Where each stream opened is recorded (the audit log). */
  privacy?: Pick<PrivacyService, 'recordDisclosure' | 'effectivePolicy'>;
}

export interface EventStream {
  routes: Route[];
  /** Open streams (tests, metrics). */
  clients(): number;
  close(): void;
}

/** A 'records' event as the stream sends it: event data made JSON here, at the edge, and only what is sent. */
function recordsSummary(deviceId: string, records: RecordsEvent['records']): { records: unknown; dr: unknown[] } {
  const latest: { [channel: string]: [number, number] } = {};
  const readings: [number, number, number, number][] = [];
  const events: [number, number, string, unknown][] = [];
  const dr: unknown[] = [];
  let lastSeq = 0;
  for (const r of records) {
    lastSeq = Math.max(lastSeq, r[0]);
    if (typeof r[2] === 'number') {
      latest[r[2]] = [r[1], r[3] as number];
      if (readings.length < MAX_BATCH_ITEMS) readings.push([r[0], r[1], r[2], r[3] as number]);
    } else if (r[2] === 'event') {
      if (events.length < MAX_BATCH_ITEMS) events.push([r[0], r[1], r[3], cborToJson(r[4])]);
      if (r[3] === 'dr') dr.push({ ...drRecordJson(r[0], r[1], cborToJson(r[4])), deviceId });
    } else if (events.length < MAX_BATCH_ITEMS) events.push([r[0], r[1], 'gap', { last: r[3], reason: r[4] }]);
  }
  return { records: { deviceId, lastSeq, count: records.length, latest, readings, events }, dr };
}

export function eventStream(events: GatewayEvents, o: EventStreamOptions = {}): EventStream {
  const clients = new Set<Client>();
  let closed = false;

  function write(c: Client, chunk: string): void {
    if (c.waiting) {
      if (c.queue.length >= MAX_CLIENT_BUFFER) return drop(c);
      c.queue.push(chunk);
      return;
    }
    if (!c.res.write(chunk)) {
      c.waiting = true;
      c.res.once('drain', () => {
        c.waiting = false;
        const q = c.queue.splice(0);
        for (const x of q) write(c, x);
      });
    }
  }
  function drop(c: Client): void {
    clients.delete(c);
    c.res.destroy();
  }
  function broadcast(event: string, data: unknown): void {
    if (!clients.size) return;
    const chunk = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    // Every event is about one device (its `deviceId`).
    const deviceId = (data as { deviceId?: string }).deviceId ?? '';
    for (const c of clients) if (!c.devices || c.devices.has(deviceId)) write(c, chunk);
  }
  /** One audit entry per stream opened: per device of its filter, else one about every device. */
  async function audit(devices: string[]): Promise<void> {
    if (!o.privacy) return;
    const entry = (deviceId: string, purposes: Disclosure['purposes']): Disclosure => ({
      audience: 'http', deviceId, kind: 'events', level: 'full', purposes, via: 'http',
    });
    if (devices.length === 0) return o.privacy.recordDisclosure(entry(EVERY_DEVICE, []));
    const out: Disclosure[] = [];
    for (const id of devices) out.push(entry(id, (await o.privacy.effectivePolicy(id)).operator.purposes));
    await o.privacy.recordDisclosure(out);
  }

  const device = (change: string) => (e: object) => broadcast('device', { change, ...e });
  const listeners: [GatewayEventName, (e: GatewayEventMap[GatewayEventName]) => void][] = [
    ['records', (e) => {
      if (!clients.size) return; // nobody watching: nothing to make JSON
      const { deviceId, records } = e as RecordsEvent;
      const s = recordsSummary(deviceId, records);
      broadcast('records', s.records);
      for (const x of s.dr) broadcast('dr', x);
    }],
    ['hello', device('hello')],
    ['paired', device('paired')],
    ['revoked', device('revoked')],
    ['status', device('status')],
    ['guest-ack', device('guest-ack')],
    ['lwt', device('lwt')],
  ];
  for (const [name, f] of listeners) events.on(name, f);
  const heartbeat = setInterval(() => {
    for (const c of clients) write(c, `: heartbeat ${Date.now()}\n\n`);
  }, HEARTBEAT_MS);
  heartbeat.unref();

  const route: Route = {
    method: 'GET', pattern: /^\/api\/events$/,
    async handle(req): Promise<Reply> {
      if (closed) return { status: 503, json: { error: 'the gateway is closing' } };
      if (clients.size >= MAX_CLIENTS) return { status: 503, json: { error: `at most ${MAX_CLIENTS} live streams at once; close a dashboard tab` } };
      const filter = [...new Set(req.query.getAll('device'))];
      const bad = filter.find((id) => !isDeviceId(id));
      if (bad !== undefined) throw new HttpError(400, `device "${bad.slice(0, 40)}" is not a device id: 16 characters a-z and 2-7`);
      await audit(filter);
      return {
        status: 200,
        stream(res) {
          res.writeHead(200, {
            'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no', connection: 'keep-alive',
          });
          const c: Client = { res, queue: [], waiting: false, devices: filter.length ? new Set(filter) : undefined };
          clients.add(c);
          res.on('close', () => clients.delete(c));
          res.socket?.setNoDelay(true);
          write(c, `retry: 2000\nevent: ready\ndata: ${JSON.stringify({ at: Date.now() })}\n\n`);
        },
      };
    },
  };

  return {
    routes: [route],
    clients: () => clients.size,
    close() {
      closed = true;
      clearInterval(heartbeat);
      for (const [name, f] of listeners) events.off(name, f);
      for (const c of clients) c.res.end();
      clients.clear();
    },
  };
}
