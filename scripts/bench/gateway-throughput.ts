// Gateway scale (issue 10): (a) frames/s and readings/s through the whole pipeline (device → broker →
// gateway → durable commit → ack → broker → device), measured in the same run as the broker's own
// pass-through of the same message stream with no gateway; (b) ack latency at half that load;
// (c) the largest fleet (gridlet sim, 10 s reporting) one gateway holds with zero loss, from a list of
// sizes within a time budget; (d) the gateway's resident memory per connected meter.
//
// The broker for (a) and (b) is a Mosquitto of our own; the gateway is `gridlet gateway` as a child
// process. Environment (defaults keep the module under ~5 minutes on 2 cores):
//   GRIDLET_BENCH_DEVICES=200        devices streaming frames in (a) and (b)
//   GRIDLET_BENCH_WINDOW=8           frames each device keeps unacknowledged in (a)
//   GRIDLET_BENCH_SECONDS=10         length of each measurement in (a) and (b)
//   GRIDLET_BENCH_FLEETS=1000,2000   fleet sizes tried in (c), smallest first (`none`: skip (c) and (d))
//   GRIDLET_BENCH_FLEET_SECONDS=30   reporting time of each fleet in (c)
//   GRIDLET_BENCH_BUDGET_S=200       no new fleet size is started after this many seconds of (c)
// The 10,000-meter, 5-minute acceptance runs are `npm run scale` (docs/benchmarks.md).

import { randomFillSync } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { randomBytes, useRandom } from '../../firmware/core/crypto.js';
import { Body, decodeBody, DOWNLINK_TYPES, encodeBody, type DownBody } from '../../firmware/core/wire/bodies.js';
import { Direction, openBox, parseFrame, sealFrame } from '../../firmware/core/wire/frame.js';
import { topics } from '../../firmware/core/wire/topics.js';
import { WireDevice } from '../../test/gateway/wire-device.js';
import { procCpuSeconds, scaleRun, startGatewayChild, startMosquitto } from '../scale.js';

useRandom({ fill: (b) => randomFillSync(b) });

const env = (name: string, d: number) => (process.env[name] ? Number(process.env[name]) : d);
const PREFIX = 'gl';
const READINGS_PER_FRAME = 4;
const T0 = 1_700_000_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** CPU seconds this process (the load generator) has used. */
function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return 0;
  const s = Float64Array.from(xs).sort();
  return Math.round(s[Math.min(s.length - 1, Math.floor(s.length * p))] * 10) / 10;
}

async function connect(url: string, clientId: string): Promise<MqttClient> {
  const c = mqtt.connect(url, { clientId, clean: true, reconnectPeriod: 0, protocolVersion: 4 });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  (c.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  return c;
}

/** A paired device streaming readings frames; acks come back as `ack` downlinks. */
class Streamer {
  seq = 0;
  acked = 0;
  readonly sentAt = new Map<number, number>();
  readonly latencies: number[] = [];
  #wake: (() => void) | undefined;

  constructor(readonly d: WireDevice) {
    d.client!.on('message', (topic, payload) => {
      if (topic !== topics.down(PREFIX, d.id)) return;
      const f = parseFrame(new Uint8Array(payload));
      if (typeof f === 'string') return;
      const plain = openBox(f, d.ks!, Direction.down);
      if (!plain) return;
      const body = decodeBody(plain, DOWNLINK_TYPES) as DownBody;
      if (body.type !== Body.ack || body.seq <= this.acked) return;
      const now = performance.now();
      for (const [last, t] of this.sentAt) {
        if (last > body.seq) break;
        this.latencies.push(now - t);
        this.sentAt.delete(last);
      }
      this.acked = body.seq;
      this.#wake?.();
    });
  }

  /** One frame of four readings. */
  frame(): Uint8Array {
    const first = this.seq + 1;
    const records: [number, number, number][] = [];
    for (let i = 0; i < READINGS_PER_FRAME; i++) records.push([T0 + first + i, 1 + i, first + i]);
    this.seq += READINGS_PER_FRAME;
    this.d.upCounter++;
    return sealFrame(encodeBody({ type: Body.readings, first, records }), this.d.upCounter, randomBytes(8), this.d.ks!, Direction.up);
  }

  send(): void {
    const bytes = this.frame();
    this.sentAt.set(this.seq, performance.now());
    this.d.client!.publish(topics.up(PREFIX, this.d.id), Buffer.from(bytes), { qos: 1 });
  }

  /** Keeps `window` frames unacknowledged until `until`. */
  async closedLoop(window: number, until: number): Promise<void> {
    while (performance.now() < until) {
      while ((this.seq - this.acked) / READINGS_PER_FRAME < window) this.send();
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 200);
      });
    }
  }
}

/** The gateway's /metrics text. */
async function scrape(httpUrl: string): Promise<string> {
  return (await fetch(httpUrl + '/metrics')).text();
}

/** The gateway's main-thread time by part (gridlet_busy_seconds_total) and its GC time, in seconds. */
function busySeconds(text: string): { [part: string]: number } {
  const out: { [part: string]: number } = { gc: 0 };
  for (const m of text.matchAll(/^gridlet_busy_seconds_total\{part="([^"]+)"\} (\S+)$/gm)) out[m[1]] = Number(m[2]);
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum\{[^}]*\} (\S+)$/gm)) out.gc += Number(m[1]);
  return out;
}

/** The store's group commits so far and the writes (frames, chain appends…) they held. */
function groupCommits(text: string): { count: number; jobs: number } {
  return {
    count: Number(/^gridlet_store_group_commits_total (\S+)$/m.exec(text)?.[1] ?? 0),
    jobs: Number(/^gridlet_store_group_commit_jobs_total (\S+)$/m.exec(text)?.[1] ?? 0),
  };
}

/** The store's WAL checkpoints so far (run on their own thread) and the time commits were held for them. */
function checkpoints(text: string): { count: number; heldS: number } {
  const done = /^gridlet_store_checkpoints_total\{result="done"\} (\S+)$/m.exec(text);
  const held = /^gridlet_store_checkpoint_held_seconds_total (\S+)$/m.exec(text);
  return { count: Number(done?.[1] ?? 0), heldS: Math.round(Number(held?.[1] ?? 0) * 1000) / 1000 };
}

/** Pairs `n` wire devices through the gateway's API (bounded concurrency). */
async function pairAll(n: number, brokerUrl: string, httpUrl: string): Promise<WireDevice[]> {
  const out: WireDevice[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const d = new WireDevice(PREFIX);
      await d.connect(brokerUrl);
      await d.hello();
      for (let attempt = 0; ; attempt++) {
        const r = await fetch(httpUrl + '/api/pairings', {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deviceId: d.id, code: d.code }),
        });
        if (r.status === 201) break;
        if (attempt > 60) throw new Error(`pairing failed: ${r.status} ${await r.text()}`);
        await sleep(250);
      }
      await d.close();
      await d.connect(brokerUrl, { credentials: true });
      out.push(d);
    }
  };
  await Promise.all(Array.from({ length: Math.min(32, n) }, worker));
  return out;
}

/** (a) the broker alone: the same frames from `n` publishers to one QoS 1 subscriber. */
async function passThrough(url: string, brokerPid: number | undefined, n: number, window: number, seconds: number): Promise<{ perS: number; generatorUs: number; brokerUs: number }> {
  const sub = await connect(url, 'bench-sub-' + Math.random().toString(36).slice(2));
  let received = 0;
  sub.on('message', () => received++);
  await sub.subscribeAsync(`bench/v1/d/+/up`, { qos: 1 });
  const pubs = await Promise.all(Array.from({ length: n }, (_, i) => connect(url, `bench-pub-${i}-${Math.random().toString(36).slice(2)}`)));
  const ks = randomBytes(32);
  const frame = sealFrame(encodeBody({ type: Body.readings, first: 1, records: [[T0, 1, 1], [T0, 2, 2], [T0, 3, 3], [T0, 4, 4]] }), 1, randomBytes(8), ks, Direction.up);
  const payload = Buffer.from(frame);
  const own0 = ownCpuSeconds();
  const broker0 = procCpuSeconds(brokerPid);
  const start = performance.now();
  const until = start + seconds * 1000;
  let sent = 0;
  let stop = false;
  // The publishers together keep `window` messages per publisher that the subscriber has not yet received.
  await Promise.all(pubs.map(async (p, i) => {
    const topic = `bench/v1/d/${i}/up`;
    let mine = 0;
    while (!stop && performance.now() < until) {
      if (sent - received < window * n) {
        sent++;
        p.publish(topic, payload, { qos: 1 });
        if (++mine % window === 0) await new Promise((r) => setImmediate(r));
      } else await sleep(1);
    }
  }));
  stop = true;
  const counted = received;
  const elapsed = (performance.now() - start) / 1000;
  const us = (s: number) => Math.round((s / counted) * 1e6 * 10) / 10;
  const out = { perS: counted / elapsed, generatorUs: us(ownCpuSeconds() - own0), brokerUs: us(procCpuSeconds(brokerPid) - broker0) };
  await Promise.all([sub, ...pubs].map((c) => c.endAsync(true)));
  return out;
}

export async function run() {
  const devices = env('GRIDLET_BENCH_DEVICES', 200);
  const window = env('GRIDLET_BENCH_WINDOW', 8);
  const seconds = env('GRIDLET_BENCH_SECONDS', 10);
  const mosq = await startMosquitto();
  let result: { [k: string]: unknown } = {};
  try {
    const pass = await passThrough(mosq.url, mosq.proc.pid, devices, window, seconds);
    const brokerMsgs = pass.perS;
    const gw = await startGatewayChild({ broker: mosq.url });
    try {
      const paired = await pairAll(devices, mosq.url, gw.httpUrl);
      const streams = paired.map((d) => new Streamer(d));
      // (a) closed loop: every device keeps `window` frames unacknowledged.
      const before = await scrape(gw.httpUrl);
      const busy0 = busySeconds(before);
      const groups0 = groupCommits(before);
      const cpu0 = gw.cpuSeconds();
      const main0 = gw.mainThreadCpuSeconds();
      const own0 = ownCpuSeconds();
      const broker0 = procCpuSeconds(mosq.proc.pid);
      const a0 = streams.reduce((s, x) => s + x.acked, 0);
      const start = performance.now();
      await Promise.all(streams.map((s) => s.closedLoop(window, start + seconds * 1000)));
      const elapsed = (performance.now() - start) / 1000;
      const readings = streams.reduce((s, x) => s + x.acked, 0) - a0;
      const gwCpu = gw.cpuSeconds() - cpu0;
      const mainCpu = gw.mainThreadCpuSeconds() - main0;
      const ownCpu = ownCpuSeconds() - own0;
      const brokerCpu = procCpuSeconds(mosq.proc.pid) - broker0;
      const after = await scrape(gw.httpUrl);
      const busy1 = busySeconds(after);
      const groups1 = groupCommits(after);
      const frames = readings / READINGS_PER_FRAME;
      const perFrameUs = (s: number) => Math.round((s / frames) * 1e6 * 10) / 10;
      // CPU per frame of the whole gateway process (all threads), and where it went: the main thread's
      // time in each part as a share of its busy time (wall clock, which a busy machine stretches for all
      // parts alike), applied to the process's CPU; `other` is the rest (MQTT client, ingress, handlers,
      // event loop, other threads).
      const spent = (part: string) => (busy1[part] ?? 0) - (busy0[part] ?? 0);
      const loop = spent('loop');
      const breakdown: { [part: string]: number } = {};
      let named = 0;
      for (const part of Object.keys(busy1)) {
        if (part === 'loop' || loop <= 0) continue;
        const cpu = (spent(part) / loop) * gwCpu;
        breakdown[part] = perFrameUs(cpu);
        named += cpu;
      }
      breakdown.other = perFrameUs(gwCpu - named);
      // Let the last frames of the closed loop be acknowledged before the open-loop run.
      const settle = performance.now() + 10_000;
      while (streams.some((s) => s.acked < s.seq) && performance.now() < settle) await sleep(100);
      const framesPerS = readings / READINGS_PER_FRAME / elapsed;
      // (b) open loop at half that rate, spread evenly over devices and time.
      for (const s of streams) {
        s.latencies.length = 0;
        s.sentAt.clear();
      }
      const rate = framesPerS / 2;
      const gap = 1000 / rate;
      const bStart = performance.now();
      let k = 0;
      while (performance.now() - bStart < seconds * 1000) {
        const due = Math.floor((performance.now() - bStart) / gap);
        while (k < due) streams[k++ % streams.length].send();
        await sleep(Math.max(1, gap));
      }
      const settleB = performance.now() + 10_000;
      while (streams.some((s) => s.acked < s.seq) && performance.now() < settleB) await sleep(100);
      const lat = streams.flatMap((s) => s.latencies);
      const ck = checkpoints(await scrape(gw.httpUrl));
      const sentB = k;
      for (const d of paired) await d.close();
      result = {
        devices, window, measureSeconds: seconds, readingsPerFrame: READINGS_PER_FRAME,
        gateway: {
          framesPerS: Math.round(framesPerS), readingsPerS: Math.round(framesPerS * READINGS_PER_FRAME),
          cpuCoresUsed: Math.round((gwCpu / elapsed) * 100) / 100,
          cpuUsPerFrame: perFrameUs(gwCpu),
          // Of it, the main thread's (the event loop, which every frame passes through; the rest is the
          // threads: signing, fsyncs, checkpoints).
          mainThreadCpuUsPerFrame: perFrameUs(mainCpu),
          cpuBreakdownUs: breakdown,
          loopBusyUsPerFrame: perFrameUs(loop),
          // The store's group commits in (a): per frame, and the writes (frames, chain appends…) each held.
          groupCommitsPerFrame: Math.round(((groups1.count - groups0.count) / frames) * 1000) / 1000,
          jobsPerGroupCommit: Math.round(((groups1.jobs - groups0.jobs) / Math.max(1, groups1.count - groups0.count)) * 10) / 10,
        },
        // The machine's other CPU in the same measurements: this process (the devices, or the publishers
        // and the subscriber) and Mosquitto, per frame through the gateway and per message passed through.
        generatorCpuUsPerFrame: perFrameUs(ownCpu),
        brokerCpuUsPerFrame: perFrameUs(brokerCpu),
        brokerPassThrough: { messagesPerS: Math.round(brokerMsgs), generatorCpuUsPerMessage: pass.generatorUs, brokerCpuUsPerMessage: pass.brokerUs },
        ratio: Math.round((framesPerS / brokerMsgs) * 1000) / 1000,
        halfLoad: {
          framesPerS: Math.round(sentB / seconds), acked: lat.length, sent: sentB,
          ackP50Ms: pct(lat, 0.5), ackP99Ms: pct(lat, 0.99),
        },
        // WAL checkpoints during (a) and (b), and how long commits waited for their second passes.
        checkpoints: ck,
      };
    } finally {
      await gw.stop();
    }
  } finally {
    await mosq.stop();
  }

  // (c) and (d): fleets of simulated meters at 10 s reporting against one gateway (embedded broker).
  const sizes = (process.env.GRIDLET_BENCH_FLEETS ?? '1000,2000').split(',').map(Number).filter((x) => x > 0);
  const fleetSeconds = env('GRIDLET_BENCH_FLEET_SECONDS', 30);
  const budget = env('GRIDLET_BENCH_BUDGET_S', 200) * 1000;
  const c0 = performance.now();
  const fleets: unknown[] = [];
  let largest = 0;
  let rssPerMeter = 0;
  for (const meters of sizes) {
    if (performance.now() - c0 > budget) break;
    const r = await scaleRun('embedded', { meters, durationS: fleetSeconds, graceS: 30 });
    const holds = r.report.lost === 0 && r.report.dup === 0 && r.report.unpaired === 0 && r.report.acked === r.report.sent;
    fleets.push({
      meters, holds, sent: r.report.sent, lost: r.report.lost, dup: r.report.dup, ackP50Ms: r.report.p50_ms, ackP99Ms: r.report.p99_ms,
      gatewayRssMiB: Math.round(r.gateway.rssBytes / 2 ** 20), rssPerMeterKiB: Math.round(r.gateway.rssPerMeterBytes / 1024 * 10) / 10,
      connectSeconds: r.report.seconds.connect, pairSeconds: r.report.seconds.pair,
    });
    if (!holds) break;
    largest = meters;
    rssPerMeter = r.gateway.rssPerMeterBytes;
  }
  return {
    ...result,
    fleet: { reportingS: 10, runSeconds: fleetSeconds, tried: fleets, largestZeroLoss: largest, rssPerMeterKiB: Math.round(rssPerMeter / 1024 * 10) / 10 },
  };
}
