// OpenADR 3 (the gateway as a VEN): the time from an event's creation on the VTN to its dr-event at the
// meter, at the default poll (30 s) and with a webhook subscription. Everything runs in this process on
// 127.0.0.1: the test VTN (test/gateway/openadr-vtn.ts, 3.1.0), the gateway with its embedded broker and a
// real meter (a host agent), so one clock measures both ends:
//   latency = (the event stored on the VTN) → (the meter's schedule holds its dr-event)
// At the default poll the events are created at random moments, so the figures spread over a poll
// interval: the expected mean is about half of it. With the webhook the VTN's notification makes the
// gateway poll at once.

import { secondsFromNow, simpleEvent, startVen, type VenSetup } from '../../test/gateway/openadr-support.js';
import { eventually } from '../../test/gateway/support.js';

const POLL_SAMPLES = Number(process.env.GRIDLET_BENCH_OPENADR_POLL_SAMPLES ?? 6);
const WEBHOOK_SAMPLES = Number(process.env.GRIDLET_BENCH_OPENADR_WEBHOOK_SAMPLES ?? 30);
const DEFAULT_POLL_S = 30;

function stats(ms: number[]): { n: number; minMs: number; p50Ms: number; meanMs: number; maxMs: number } {
  const s = [...ms].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return { n: s.length, minMs: r(s[0]), p50Ms: r(s[Math.floor(s.length / 2)]), meanMs: r(s.reduce((a, b) => a + b, 0) / s.length), maxMs: r(s[s.length - 1]) };
}

async function measure(v: VenSetup, n: number, spread: number): Promise<number[]> {
  const { vtn, meters: [m] } = v;
  const program = vtn.addProgram({ programName: `bench-${Date.now()}` });
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    // A random moment within a poll interval (none for the webhook).
    if (spread) await new Promise((r) => setTimeout(r, Math.random() * spread));
    const t0 = performance.now();
    const ev = await vtn.addEvent(simpleEvent('3.1.0', program.id as string, { name: `e${i}`, start: secondsFromNow(3600), durationS: 60, level: 2 }));
    const id = `${ev.id}#0`;
    await eventually(() => m.agent.dr.list().some((e) => e.id === id), 3 * DEFAULT_POLL_S * 1000, `event ${id} at the meter`);
    out.push(performance.now() - t0);
  }
  return out;
}

export async function run(): Promise<object> {
  // Polling only, at the default interval.
  const polled = await startVen({ version: '3.1.0', meters: 1, link: { callbackUrl: 'none' }, tuning: { pollMs: undefined }, seconds: 3600 });
  let poll: number[];
  try {
    await eventually(() => polled.vtn.data.resources.size === 1, 60_000, 'the resource');
    poll = await measure(polled, POLL_SAMPLES, DEFAULT_POLL_S * 1000);
  } finally {
    await polled.close();
  }
  // With a webhook subscription (the VTN and the gateway both on loopback), polls still every 30 s.
  const hooked = await startVen({ version: '3.1.0', meters: 1, tuning: { pollMs: undefined }, seconds: 600 });
  let webhook: number[];
  try {
    await eventually(() => hooked.vtn.data.subscriptions.size === 1 && hooked.vtn.data.resources.size === 1, 60_000, 'the subscription');
    webhook = await measure(hooked, WEBHOOK_SAMPLES, 0);
  } finally {
    await hooked.close();
  }
  return {
    what: 'event created on the VTN → dr-event in the meter\'s schedule (3.1.0, one meter, 127.0.0.1)',
    defaultPoll: { pollS: DEFAULT_POLL_S, ...stats(poll) },
    webhook: stats(webhook),
  };
}
