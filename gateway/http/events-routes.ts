// GET /api/events: the dashboard's live stream (Server-Sent Events) of what the gateway's events say:
//   records  {deviceId, lastSeq, count, latest: {channel: [t, value]}, readings: [[seq, t, channel, value]…],
//             events: [[seq, t, kind, data]…]}   (readings and events capped per batch)
//   dr       {deviceId, seq, t, event, phase}     a demand-response event the device reported
//   device   {deviceId, change, …}                hello (seen / online), paired, revoked, status, guest-ack, lwt
// Each client has a bounded buffer: one that cannot keep up is disconnected (it reconnects and reloads)
// rather than growing the gateway's memory. A comment line every HEARTBEAT_MS keeps proxies and dead
// connections honest. close() ends every open stream so the gateway's own close is never held up.
// The browser reads this with fetch() (not EventSource), so it can send the bearer token on
// non-loopback binds like every other API call.

import type { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { RecordJson } from '../records.js';
import type { Reply, Route } from './server.js';

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
}

export interface EventStream {
  routes: Route[];
  /** Open streams (tests, metrics). */
  clients(): number;
  close(): void;
}

function recordsSummary(deviceId: string, records: RecordJson[]): { records: unknown; dr: unknown[] } {
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
      if (events.length < MAX_BATCH_ITEMS) events.push([r[0], r[1], r[3], r[4]]);
      if (r[3] === 'dr' && typeof r[4] === 'object' && r[4] !== null) dr.push({ deviceId, seq: r[0], t: r[1], ...(r[4] as object) });
    } else if (events.length < MAX_BATCH_ITEMS) events.push([r[0], r[1], 'gap', { last: r[3], reason: r[4] }]);
  }
  return { records: { deviceId, lastSeq, count: records.length, latest, readings, events }, dr };
}

export function eventStream(events: EventEmitter): EventStream {
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
    for (const c of clients) write(c, chunk);
  }

  const device = (change: string) => (e: { [k: string]: unknown }) => broadcast('device', { change, ...e });
  const listeners: [string, (e: any) => void][] = [
    ['records', (e: { deviceId: string; records: RecordJson[] }) => {
      const s = recordsSummary(e.deviceId, e.records);
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
    async handle(): Promise<Reply> {
      if (closed) return { status: 503, json: { error: 'the gateway is closing' } };
      if (clients.size >= MAX_CLIENTS) return { status: 503, json: { error: `at most ${MAX_CLIENTS} live streams at once; close a dashboard tab` } };
      return {
        status: 200,
        stream(res) {
          res.writeHead(200, {
            'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no', connection: 'keep-alive',
          });
          const c: Client = { res, queue: [], waiting: false };
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
