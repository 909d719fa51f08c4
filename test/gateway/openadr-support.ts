// Shared by the OpenADR tests: a test VTN, a gateway that is its VEN, and real meters (host agents on
// replayed readings, paired as an operator pairs them).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createHostAgent, type HostAgent } from '../../host/agent-host.js';
import type { OpenAdrSpecVersion } from '../../gateway/openadr/schema.js';
import type { OpenAdrTuning } from '../../gateway/openadr/ven.js';
import type { OpenAdrVtnOptions } from '../../gateway/openadr/service.js';
import { startTestGateway, sleep, type TestGateway } from './support.js';
import { TestVtn, type TestVtnOptions } from './openadr-vtn.js';

export const VEN_NAME = 'gw-test';

export interface VenSetup {
  vtn: TestVtn;
  vtn2?: TestVtn;
  /** The gateway (a test may restart it on the same data directory and replace this). */
  t: TestGateway;
  meters: HostAgent[];
  /** The gateway's log lines (pino JSON). */
  logs: { level: number; msg: string; [k: string]: unknown }[];
  dir: string;
  proxies: Map<number, Awaited<ReturnType<typeof linkProxy>>>;
  close(): Promise<void>;
}

/**
 * A meter's readings as a replay file: from now on, two readings a second (the interval is 500 ms), the
 * energy register advancing by a different, varying amount each time, so that reports have real values.
 */
function replayFile(dir: string, n: number, seconds: number): string {
  const t0 = Math.floor(Date.now() / 1000);
  let wh = 1_000_000 * (n + 1);
  const lines: string[] = [];
  for (let k = 0; k < seconds * 2; k++) {
    const w = 800 + ((k * 37 + n * 101) % 900);
    wh += 1 + ((k * 13 + n * 7) % 5);
    lines.push(JSON.stringify({ t: t0 + Math.floor(k / 2), values: [[1, wh], [3, w]] }));
  }
  const file = join(dir, `meter-${n}.jsonl`);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

export async function startVen(o: {
  version: OpenAdrSpecVersion; meters?: number; labels?: { [k: string]: string }[]; vtn?: Partial<TestVtnOptions>;
  link?: Partial<OpenAdrVtnOptions>; tuning?: Partial<OpenAdrTuning>; seconds?: number;
  /** Meters (by index) whose link goes through a proxy the test can cut (VenSetup.proxies). */
  proxied?: number[];
  /** A second VTN (an aggregator's) of this version, after the first on the command line. */
  second?: OpenAdrSpecVersion;
}): Promise<VenSetup> {
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-openadr-'));
  const vtn = await TestVtn.start({ version: o.version, ...o.vtn });
  const vtn2 = o.second ? await TestVtn.start({ version: o.second }) : undefined;
  const logs: VenSetup['logs'] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void logs.push(JSON.parse(l)) });
  const t = await startTestGateway({
    dataDir: join(dir, 'gw'), logger,
    openadr: [
      { url: vtn.url, clientId: 'ven1', clientSecret: 'secret1', version: o.version, venName: VEN_NAME, ...o.link },
      ...(vtn2 ? [{ url: vtn2.url, clientId: 'ven1', clientSecret: 'secret1', version: o.second, venName: VEN_NAME, ...o.link }] : []),
    ],
    openadrTuning: { pollMs: 150, timeoutMs: 1000, reportGraceMs: 1500, authBackoffMaxMs: 1000, ...o.tuning },
  });
  const meters: HostAgent[] = [];
  const proxies: VenSetup['proxies'] = new Map();
  for (let n = 0; n < (o.meters ?? 0); n++) {
    if (o.proxied?.includes(n)) proxies.set(n, await linkProxy(t.gw.mqttUrl));
    const h = createHostAgent({ brokers: [proxies.get(n)?.url ?? t.gw.mqttUrl], meter: `replay:${replayFile(dir, n, o.seconds ?? 240)}`, intervalMs: 500, topicPrefix: t.prefix });
    h.agent.start();
    meters.push(h);
  }
  for (const [n, h] of meters.entries()) {
    for (let i = 0; ; i++) {
      const r = await t.api('POST', '/api/pairings', { deviceId: h.agent.deviceId, code: h.agent.identity.pairCode });
      if (r.status === 201) break;
      if (i > 60) throw new Error(`pairing ${h.agent.deviceId}: ${r.status} ${r.text}`);
      await sleep(200);
    }
    const labels = o.labels?.[n];
    if (labels) {
      const r = await t.api('PUT', `/api/devices/${h.agent.deviceId}/labels`, { labels });
      if (r.status !== 200) throw new Error(`labels: ${r.status} ${r.text}`);
    }
  }
  const setup: VenSetup = {
    vtn, vtn2, t, meters, logs, dir, proxies,
    async close() {
      for (const h of meters) h.stop();
      for (const p of proxies.values()) await p.close();
      await setup.t.close();
      await vtn.close();
      await vtn2?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return setup;
}

/** The meter's scheduled demand-response events by id. */
export function drOf(h: HostAgent): Map<string, { level: number; state: string; start: number; duration: number; limit?: number }> {
  return new Map(h.agent.dr.list().map((e) => [e.id, e]));
}

/** A whole second some seconds from now. */
export function secondsFromNow(s: number): number {
  return Math.floor(Date.now() / 1000) + s;
}

export function iso(unixS: number): string {
  return new Date(unixS * 1000).toISOString().replace('.000Z', 'Z');
}

/** A SIMPLE event of one interval, targeted as the version writes targets. */
export function simpleEvent(version: OpenAdrSpecVersion, programID: string, o: {
  name: string; start: number; durationS: number; level: number; targets?: { ven?: string[]; resource?: string[]; label?: string[] };
  reports?: { payloadType: string; units?: string; readingType?: string; aggregate?: boolean }[]; intervals?: number;
}): { [k: string]: unknown } {
  const targets: unknown[] = [];
  for (const [kind, list] of Object.entries(o.targets ?? {})) {
    for (const x of list ?? []) {
      if (version === '3.1.0') targets.push(kind === 'label' ? `label:${x}` : x);
      else targets.push({ type: kind === 'ven' ? 'VEN_NAME' : kind === 'resource' ? 'RESOURCE_NAME' : 'GROUP', values: [x] });
    }
  }
  const n = o.intervals ?? 1;
  return {
    programID, eventName: o.name,
    ...(targets.length ? { targets } : {}),
    ...(o.reports ? { reportDescriptors: o.reports } : {}),
    payloadDescriptors: [{ ...(version === '3.1.0' ? { objectType: 'EVENT_PAYLOAD_DESCRIPTOR' } : {}), payloadType: 'SIMPLE' }],
    intervalPeriod: { start: iso(o.start), duration: `PT${o.durationS}S` },
    intervals: Array.from({ length: n }, (_, i) => ({ id: i, payloads: [{ type: 'SIMPLE', values: [o.level] }] })),
  };
}

/** A TCP proxy in front of the broker, for one meter: cut() takes the meter's link away, restore() gives it back. */
export async function linkProxy(target: string): Promise<{ url: string; cut(): Promise<void>; restore(): Promise<void>; close(): Promise<void> }> {
  const t = new URL(target);
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = () => new Promise<void>((resolve) => {
    server = createServer((c) => {
      const up = connect(Number(t.port), t.hostname);
      for (const s of [c, up]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {});
      }
      c.pipe(up).pipe(c);
      c.on('close', () => up.destroy());
      up.on('close', () => c.destroy());
    });
    server.listen(port, '127.0.0.1', () => {
      port = (server!.address() as AddressInfo).port;
      resolve();
    });
  });
  const cut = async () => {
    const s = server;
    server = undefined;
    for (const x of sockets) x.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  return { url: `mqtt://127.0.0.1:${port}`, cut, restore: listen, close: cut };
}
