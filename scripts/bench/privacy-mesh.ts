// Sharing on the mesh: how long a withdrawn consent takes to reach every gateway (the target
// is 2 s), and what summarising a day of 10-second readings into aggregates costs. Three gateways
// run in this process on 127.0.0.1: A and B of operator x, C of operator y. Each round grants operator y
// full readings of a meter paired at A, waits until C holds a readings message, then withdraws and
// measures, from the PUT, when A, B and C hold the new consent and when C has deleted its copies.

import { Body } from '../../firmware/core/wire/bodies.js';
import { summarise, type Reading } from '../../gateway/privacy/aggregate.js';
import { eventually, pairDevice, startTestGateway, type TestGateway } from '../../test/gateway/support.js';
import { operator } from '../../test/gateway/mesh-support.js';

const ROUNDS = Number(process.env.GRIDLET_BENCH_CONSENT_ROUNDS ?? 10);
const T0 = 1_700_006_400;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

export async function run(): Promise<object> {
  // Operators are keys; each trusts the other (its public file names it, so policies may say "y").
  const ops = { x: operator('x'), y: operator('y') };
  const mesh = (name: 'x' | 'y', peers: string[] = []) => ({
    operatorKey: ops[name].file, trustOperators: [ops[name === 'x' ? 'y' : 'x'].pub], meshListen: '/ip4/127.0.0.1/tcp/0', peers, meshSyncMs: 500,
  });
  const gws: TestGateway[] = [];
  try {
    const A = await startTestGateway(mesh('x'));
    gws.push(A);
    const B = await startTestGateway(mesh('x', [A.gw.meshAddr!]));
    gws.push(B);
    const C = await startTestGateway(mesh('y', [A.gw.meshAddr!, B.gw.meshAddr!]));
    gws.push(C);
    for (const t of gws) await eventually(async () => (await t.api('GET', '/api/mesh')).json.gateways.length === 3, 15_000, 'identities');
    const everywhere: number[] = [];
    const deleted: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const d = await pairDevice(A);
      const put = (level: string) => A.api('PUT', `/api/devices/${d.id}/privacy`, { peers: { y: { level } } });
      await put('full');
      await d.send({ type: Body.readings, first: 1, records: [[T0 + i, 1, i]] });
      await d.waitAck(1);
      await eventually(async () => (await C.gw.mesh.blocks.list('readings', d.id)).length === 1, 10_000, 'C holds the readings');
      const t0 = performance.now();
      await put('none');
      const cid = A.gw.mesh.consentOf(d.id).cid;
      const at = await Promise.all(gws.map(async (t) => {
        await eventually(() => t.gw.mesh.consentOf(d.id).cid === cid, 10_000, 'consent');
        return performance.now() - t0;
      }));
      everywhere.push(Math.max(...at));
      await eventually(async () => (await C.gw.mesh.blocks.list('readings', d.id)).length === 0, 10_000, 'deleted');
      deleted.push(performance.now() - t0);
    }
    // One day of 10-second readings of channels 1 and 3, summarised per 15-minute window.
    const day: Reading[] = [];
    for (let s = 0; s < 8640; s++) {
      day.push({ seq: 2 * s + 1, t: T0 + 10 * s, channel: 1, value: 1000 + s }, { seq: 2 * s + 2, t: T0 + 10 * s, channel: 3, value: 400 + (s % 17) });
    }
    const t1 = performance.now();
    for (let w = 0; w < 96; w++) summarise(day.filter((r) => r.t >= T0 + 900 * w && r.t < T0 + 900 * (w + 1)));
    const dayMs = performance.now() - t1;
    return {
      rounds: ROUNDS,
      consentOnAllGatewaysMs: { p50: Math.round(pct(everywhere, 50)), max: Math.round(Math.max(...everywhere)) },
      copiesDeletedAtOtherOperatorMs: { p50: Math.round(pct(deleted, 50)), max: Math.round(Math.max(...deleted)) },
      summariseOneDayOf10sReadingsMs: Math.round(dayMs * 100) / 100,
    };
  } finally {
    for (const t of gws) await t.close();
  }
}
