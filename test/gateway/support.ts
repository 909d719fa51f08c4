// Shared by the gateway tests: a gateway on ephemeral ports in a temporary directory, an HTTP helper,
// a /metrics reader, and pairing a WireDevice the way an operator does.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomFillSync } from 'node:crypto';
import { useRandom } from '../../firmware/core/crypto.js';
import { Body, type Config } from '../../firmware/core/wire/bodies.js';
import { startGateway, type Gateway, type GatewayOptions } from '../../gateway/gateway.js';
import { WireDevice } from './wire-device.js';
import { apiCall } from '../support/http.js';

useRandom({ fill: (b) => randomFillSync(b) });

export const FAST = { pairTimeoutMs: 2000, resendIntervalMs: 300 };

export interface TestGateway {
  gw: Gateway;
  dir: string;
  prefix: string;
  opts: GatewayOptions;
  api(method: string, path: string, body?: unknown, headers?: { [k: string]: string }): Promise<{ status: number; json: any; text: string }>;
  metric(name: string, labels?: { [k: string]: string }): Promise<number>;
  devices: WireDevice[];
  device(): WireDevice;
  /** Closes devices and the gateway, keeping the data directory (for restarts). */
  stop(): Promise<void>;
  /** stop() and remove the data directory. */
  close(): Promise<void>;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'gridlet-gw-test-'));
}

export async function startTestGateway(o: Partial<GatewayOptions> = {}): Promise<TestGateway> {
  const dir = o.dataDir ?? tempDir();
  const prefix = o.topicPrefix ?? 'gl';
  const opts: GatewayOptions = {
    dataDir: dir, httpListen: '127.0.0.1:0', ...(o.broker ? {} : { mqttListen: '127.0.0.1:0' }), ...o,
    topicPrefix: prefix, tuning: { ...FAST, ...o.tuning },
  };
  const gw = await startGateway(opts);
  const devices: WireDevice[] = [];
  const t: TestGateway = {
    gw, dir, prefix, opts, devices,
    api: (method, path, body, headers) => apiCall(gw.httpUrl, method, path, body, headers),
    async metric(name, labels = {}) {
      const text = (await t.api('GET', '/metrics')).text;
      return metricValue(text, name, labels);
    },
    device() {
      const d = new WireDevice(prefix);
      devices.push(d);
      return d;
    },
    async stop() {
      for (const d of devices) await d.close();
      await gw.close();
    },
    async close() {
      await t.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return t;
}

/** Sums the samples of a metric whose labels include `labels`. */
export function metricValue(text: string, name: string, labels: { [k: string]: string } = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: { [k: string]: string } = {};
    for (const kv of (m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)) have[kv[1]] = kv[2];
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

/** Waits until the gateway has the device's Hello (the Hello travels through the broker). */
export async function helloSeen(t: TestGateway, d: WireDevice, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await t.api('GET', `/api/devices/${d.id}`);
    if (r.status === 200) return;
    if (Date.now() > deadline) throw new Error(`gateway never saw the Hello of ${d.id}`);
    await sleep(20);
  }
}

/**
 * Connects, Hellos and pairs a device through POST /api/pairings; reconnects it with its credentials.
 * Like a meter, the device takes the sharing policy the gateway sends at pairing (config `privacy`,
 * kept until acknowledged) and acknowledges it, so a test starts with nothing pending for it; the
 * policy body is left out of `d.downlinks`.
 */
export async function pairDevice(t: TestGateway, d = t.device()): Promise<WireDevice> {
  await d.connect(t.gw.mqttUrl);
  await d.hello();
  await helloSeen(t, d);
  const r = await t.api('POST', '/api/pairings', { deviceId: d.id, code: d.code });
  if (r.status !== 201) throw new Error(`pairing failed: ${r.status} ${r.text}`);
  const isPolicy = (x: WireDevice['downlinks'][number]) => x.body.type === Body.config && 'privacy' in (x.body as Config).values;
  const policy = await d.until(() => d.downlinks.find(isPolicy), 3000, 'the sharing policy sent at pairing');
  await d.close();
  await d.connect(t.gw.mqttUrl, { credentials: true });
  const accepted = t.gw.stats().framesAccepted;
  await d.send({ type: Body.downAck, counter: policy.counter });
  for (const end = Date.now() + 3000; t.gw.stats().framesAccepted === accepted;) {
    if (Date.now() > end) throw new Error(`device ${d.id}: the gateway did not take the down-ack of its policy`);
    await sleep(5);
  }
  d.downlinks = d.downlinks.filter((x) => !isPolicy(x));
  return d;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `f` returns a truthy value. */
export async function eventually<T>(f: () => Promise<T | undefined | false> | T | undefined | false, ms = 3000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export type SseEvent = { event: string; data: any };

/** Reads Server-Sent Events (`event:` and JSON `data:` lines) until `until` holds for what was read. */
export async function readSse(reader: ReadableStreamDefaultReader<Uint8Array>, until: (events: SseEvent[]) => boolean): Promise<SseEvent[]> {
  const text = new TextDecoder();
  const events: SseEvent[] = [];
  let buf = '';
  while (!until(events)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the stream ended after ${events.map((e) => e.event).join(', ')}`);
    buf += text.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (ev && data) events.push({ event: ev, data: JSON.parse(data) });
    }
  }
  return events;
}
