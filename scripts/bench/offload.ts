// Offload: the gateway's own share of an answer's latency, and how many jobs per second the
// queue moves with a fast backend. Everything runs in this process on 127.0.0.1: the gateway with its
// embedded broker, test-double devices speaking the wire protocol, and an OpenAI-compatible test server
// streaming SSE, so one clock measures both ends.
//   overhead = (job sent by the device → first job-result chunk at the device)
//            − (request at the server → first token written by the server)
// It covers MQTT both ways, frame checks and commit, the context from the store, the HTTP request, SSE
// parsing, chunking, sealing and publishing the downlink.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Body, type JobResult } from '../../firmware/core/wire/bodies.js';
import { writeTinyGguf } from '../../gateway/offload/tiny-gguf.js';
import { startFakeLlm, streamText, type FakeRequest } from '../../test/gateway/fake-llm.js';
import { pairDevice, startTestGateway } from '../../test/gateway/support.js';
import type { WireDevice } from '../../test/gateway/wire-device.js';

/** node-llama-cpp is optional; a variable keeps the type checker from requiring it. */
const LLAMA_PACKAGE: string = 'node-llama-cpp';

const OVERHEAD_JOBS = Number(process.env.GRIDLET_BENCH_OFFLOAD_JOBS ?? 100);
const THROUGHPUT_JOBS = Number(process.env.GRIDLET_BENCH_OFFLOAD_THROUGHPUT ?? 1000);
const DEVICES = 20;
const BACKEND_TTFT_MS = 20;

const FAST = { rateBurst: 1e9, rateIntervalMs: 1, dailyQuota: 0, maxPerDevice: 2, concurrency: 16, maxQueued: 1000 };

export async function run(): Promise<object> {
  return {
    overhead: await overhead(),
    throughput: await throughput(),
    gguf: await gguf(),
  };
}

/** The device's TCP socket without Nagle (MQTT packets are small: otherwise each one may wait for a
 *  delayed ACK, 40 ms, which would swamp what is measured here). A real meter should do the same. */
async function device(t: Awaited<ReturnType<typeof startTestGateway>>): Promise<WireDevice> {
  const d = await pairDevice(t);
  (d.client as unknown as { stream: { setNoDelay(on: boolean): void } }).stream.setNoDelay(true);
  return d;
}

async function finalOf(d: WireDevice, job: number): Promise<void> {
  await d.until(() => (d.bodies(Body.jobResult) as JobResult[]).some((b) => b.job === job && b.final), 30_000, `job ${job}`);
}

async function overhead(): Promise<object> {
  const fake = await startFakeLlm(streamText('The meter reads 1234 W; that is normal for an evening.', { ttftMs: BACKEND_TTFT_MS, per: 4 }), { piece: 1 << 16 });
  const t = await startTestGateway({ llmUrl: fake.url, offload: { queue: FAST } });
  try {
    const d = await device(t);
    await d.send({ type: Body.readings, first: 1, records: [[1_700_000_000, 3, 1234]] });
    await d.waitAck(1);
    const over: number[] = [];
    const up: number[] = [];
    const down: number[] = [];
    const ttfc: number[] = [];
    for (let job = 1; job <= OVERHEAD_JOBS + 5; job++) {
      const sent = performance.now();
      await d.send({ type: Body.job, job, kind: 'llm.generate', input: { prompt: `question ${job}` } });
      await d.until(() => (d.bodies(Body.jobResult) as JobResult[]).some((b) => b.job === job && b.index === 0), 10_000, `first chunk of ${job}`);
      const first = performance.now();
      await finalOf(d, job);
      const r = fake.requests[fake.requests.length - 1] as FakeRequest;
      if (job <= 5) continue; // warm-up
      const backend = r.firstTokenAt! - r.receivedAt;
      over.push(first - sent - backend);
      up.push(r.receivedAt - sent);
      down.push(first - r.firstTokenAt!);
      ttfc.push(first - sent);
    }
    return {
      what: 'time to first chunk at the device minus the backend\'s own time to first token (ms)',
      jobs: over.length, backendTtftMs: BACKEND_TTFT_MS,
      gatewayOverheadMs: stats(over),
      deviceToBackendRequestMs: stats(up),
      firstTokenToDeviceMs: stats(down),
      timeToFirstChunkMs: stats(ttfc),
    };
  } finally {
    await t.close();
    await fake.close();
  }
}

async function throughput(): Promise<object> {
  const fake = await startFakeLlm(streamText('ok, the meter is fine.', { per: 6 }), { piece: 1 << 16 });
  const t = await startTestGateway({ llmUrl: fake.url, offload: { llmConcurrency: 16, queue: FAST } });
  try {
    const devices: WireDevice[] = [];
    for (let i = 0; i < DEVICES; i++) devices.push(await device(t));
    const per = Math.ceil(THROUGHPUT_JOBS / DEVICES);
    let errors = 0;
    const t0 = performance.now();
    await Promise.all(devices.map(async (d) => {
      for (let job = 1; job <= per; job++) {
        await d.send({ type: Body.job, job, kind: 'llm.generate', input: { prompt: 'status?' } });
        await finalOf(d, job);
      }
      errors += (d.bodies(Body.jobResult) as JobResult[]).filter((b) => b.error !== undefined).length;
    }));
    const seconds = (performance.now() - t0) / 1000;
    return {
      what: `jobs through the queue per second: ${DEVICES} devices, each sending its next job when the last one is answered; the backend streams a 22-character answer in 4 events at once`,
      jobs: per * DEVICES, errors, seconds: round(seconds), jobsPerSecond: round((per * DEVICES) / seconds),
      jobResultsSent: t.gw.stats().downlinksSent,
    };
  } finally {
    await t.close();
    await fake.close();
  }
}

/** The embedded backend on the generated tiny model (real llama.cpp inference), if node-llama-cpp is installed. */
async function gguf(): Promise<object> {
  try {
    await import(LLAMA_PACKAGE);
  } catch {
    return { skipped: 'node-llama-cpp is not installed' };
  }
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-bench-gguf-'));
  const path = join(dir, 'tiny.gguf');
  writeTinyGguf(path, { seed: 7 });
  const t = await startTestGateway({ llmGguf: path, offload: { llama: { threads: 1 }, queue: { ...FAST, maxTokens: 64 } } });
  try {
    const d = await device(t);
    const ttfc: number[] = [];
    let loadMs = 0;
    for (let job = 1; job <= 11; job++) {
      const sent = performance.now();
      await d.send({ type: Body.job, job, kind: 'llm.generate', input: { prompt: 'how is my meter?' } });
      await d.until(() => (d.bodies(Body.jobResult) as JobResult[]).some((b) => b.job === job && b.index === 0), 60_000, `first chunk of ${job}`);
      if (job === 1) loadMs = performance.now() - sent;
      else ttfc.push(performance.now() - sent);
      await finalOf(d, job);
    }
    return {
      what: 'time to first chunk with --llm-gguf on the generated tiny model (2 layers, 32 wide, 1 thread)',
      firstJobIncludingLoadMs: round(loadMs), timeToFirstChunkMs: stats(ttfc),
    };
  } finally {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function stats(xs: number[]): { median: number; p95: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: round(q(0.5)), p95: round(q(0.95)), min: round(s[0]), max: round(s[s.length - 1]) };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
