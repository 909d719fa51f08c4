// Replicas (ARCHITECTURE.md "Growing past one machine"): two gateway replicas (`gridlet gateway
// --broker … --store postgres://…` child processes) share one Mosquitto through an MQTT 5 shared
// subscription and one PostgreSQL database. A fleet of simulated meters (gridlet sim's Fleet) pairs
// through replica A's API while its Hellos and `paired` frames land on either replica, then reports;
// replica B is killed with SIGKILL halfway through. Every generated reading must then be stored exactly
// once, read back through A's API. GRIDLET_REPLICAS_METERS (default 300), GRIDLET_REPLICAS_SECONDS
// (default 20) and GRIDLET_REPLICAS_INTERVAL_MS (default 2000, between one meter's readings) scale it; the
// 2,000-meter acceptance run is the same test with GRIDLET_REPLICAS_METERS=2000 (docs/operator.md).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Fleet, type FleetReport } from '../../host/sim/fleet.js';
import { startMosquitto, type Child } from '../../scripts/scale.js';
import { tempDatabase, type TempDatabase } from './pg-support.js';
import { eventually, startTestGateway, type TestGateway } from '../gateway/support.js';

const METERS = Number(process.env.GRIDLET_REPLICAS_METERS ?? 300);
const SECONDS = Number(process.env.GRIDLET_REPLICAS_SECONDS ?? 20);
const INTERVAL_MS = Number(process.env.GRIDLET_REPLICAS_INTERVAL_MS ?? 2000);

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'gridlet-replicas-'));

interface Replica { name: string; proc: ChildProcess; url: string; log: string }

/** `gridlet gateway` on the broker and the database, its log in a file (shown when the test fails). */
async function startReplica(name: string, broker: string, store: string): Promise<Replica> {
  const log = join(work, `${name}.log`);
  const proc = spawn(process.execPath, [join(root, 'bin', 'gridlet.js'), 'gateway', '--data', join(work, name), '--broker', broker,
    '--store', store, '--http-listen', '127.0.0.1:0', '--log-level', 'warn'], { cwd: root, stdio: ['ignore', 'pipe', openSync(log, 'w')] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`replica ${name} not ready in 30 s: ${readFileSync(log, 'utf8').slice(-2000)}`)), 30_000);
    proc.stdout!.on('data', (b: Buffer) => {
      out += b;
      const m = /gateway ready .*http=(\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    });
    proc.once('exit', (code) => reject(new Error(`replica ${name} exited (${code}): ${readFileSync(log, 'utf8').slice(-2000)}`)));
  });
  return { name, proc, url, log };
}

let db: TempDatabase | undefined;
let mosquitto: Child | undefined;
const replicas: Replica[] = [];
let fleet: Fleet | undefined;

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && /^[a-z_]+(\{[^}]*\})? /.test(line)) sum += Number(line.split(' ').pop());
  return sum;
}

test.after(async () => {
  fleet?.stop();
  for (const r of replicas) {
    if (r.proc.exitCode === null && r.proc.signalCode === null) {
      const exited = new Promise((resolve) => r.proc.once('exit', resolve));
      r.proc.kill('SIGTERM');
      await exited;
    }
  }
  await mosquitto?.stop().catch(() => {});
  await db?.drop().catch(() => {});
  rmSync(work, { recursive: true, force: true });
});

test('pairing through one replica works whichever replica the device answers: 201, 403 and 409 across replicas', async () => {
  const pdb = await tempDatabase();
  const broker = await startMosquitto();
  const gws: TestGateway[] = [];
  try {
    gws.push(await startTestGateway({ broker: broker.url, store: pdb.url }));
    gws.push(await startTestGateway({ broker: broker.url, store: pdb.url }));
    const [a, b] = gws;
    assert.is(b.gw.id, a.gw.id, 'one identity');
    for (let i = 0; i < 4; i++) {
      const d = a.device();
      await d.connect(broker.url);
      await d.hello();
      // The Hello reached one of the two; both see it.
      for (const g of gws) await eventually(async () => (await g.api('GET', `/api/devices/${d.id}`)).status === 200, 5000, 'the Hello on both replicas');
      // A wrong code: the device's refusal (a Hello naming the nonce) may land on either replica.
      const wrong = await a.api('POST', '/api/pairings', { deviceId: d.id, code: 'AAAAA-AAAAA' });
      assert.is(wrong.status, 403, wrong.text);
      // Started on A, asked again on B meanwhile: 409. The device then answers the PairAccept that
      // its next Hello brings back (from either replica); A's request completes wherever that lands.
      d.autoPair = false;
      const accepts = d.pairAccepts.length;
      const pending = a.api('POST', '/api/pairings', { deviceId: d.id, code: d.code });
      await d.until(() => d.pairAccepts.length > accepts, 5000, 'the PairAccept');
      const busy = await b.api('POST', '/api/pairings', { deviceId: d.id, code: d.code });
      assert.is(busy.status, 409, busy.text);
      assert.match(busy.json.error, /already in progress/);
      d.autoPair = true;
      await d.hello();
      const ok = await pending;
      assert.is(ok.status, 201, ok.text);
      const onB = await b.api('GET', `/api/devices/${d.id}`);
      assert.is(onB.json.state, 'paired');
    }
    // Which replica each Hello and frame reached is the broker's choice; across the four devices and
    // their Hellos both replicas got messages.
    const heard = await Promise.all(gws.map(async (g) => (await g.metric('gridlet_hellos_received_total')) + (await g.metric('gridlet_frames_received_total'))));
    assert.ok(heard[0] > 0 && heard[1] > 0, `both replicas got messages: ${heard}`);
  } finally {
    for (const g of gws) await g.close();
    await broker.stop();
    await pdb.drop();
  }
});

test(`two replicas share ${METERS} meters; one is killed mid-load; no reading is lost or stored twice`, async () => {
  db = await tempDatabase();
  mosquitto = await startMosquitto();
  // One after the other: the second replica loads the identity the first one stored.
  replicas.push(await startReplica('a', mosquitto.url, db.url));
  replicas.push(await startReplica('b', mosquitto.url, db.url));
  const [a, b] = replicas;
  const logs = () => replicas.map((r) => `--- replica ${r.name} (${r.proc.exitCode ?? r.proc.signalCode ?? 'running'}):\n` +
    readFileSync(r.log, 'utf8').split('\n').slice(-15).join('\n')).join('\n');

  let killedAt: { bFrames: number; aFrames: number } | undefined;
  let killing: Promise<void> | undefined;
  fleet = new Fleet({
    meters: METERS, broker: mosquitto.url, gateway: a.url, durationS: SECONDS, intervalMs: INTERVAL_MS, graceS: 120, seed: 10,
    onProgress(p) {
      if (p.phase !== 'run' || killing || p.done < SECONDS / 2) return;
      killing = (async () => {
        const [aFrames, bFrames] = await Promise.all([metric(a.url, 'gridlet_frames_received_total'), metric(b.url, 'gridlet_frames_received_total')]);
        killedAt = { aFrames, bFrames };
        b.proc.kill('SIGKILL');
      })();
    },
  });
  let report: FleetReport;
  try {
    report = await fleet.run();
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${logs()}`);
  }
  await killing;
  fleet.stop();
  const line = `paired=${report.paired} sent=${report.sent} acked=${report.acked} lost=${report.lost} dup=${report.dup} ` +
    `p50_ms=${report.p50_ms} p99_ms=${report.p99_ms} frames=${report.frames} seconds=${JSON.stringify(report.seconds)}`;
  console.log(`replicas: meters=${METERS} ${line} at-kill=${JSON.stringify(killedAt)}`);

  assert.ok(a.proc.exitCode === null && a.proc.signalCode === null, `replica A is still up\n${logs()}`);
  assert.ok(killedAt, 'replica B was killed during the run');
  assert.is(b.proc.signalCode, 'SIGKILL');
  assert.ok(killedAt!.aFrames > 0 && killedAt!.bFrames > 0, `both replicas took frames before the kill: ${JSON.stringify(killedAt)}`);
  assert.is(report.paired, METERS, 'every meter paired through replica A, wherever its frames landed');
  assert.ok(report.sent > METERS * 2, `the fleet reported: ${line}`);
  assert.is(report.lost, 0, `nothing lost: ${line}\n${logs()}`);
  assert.is(report.dup, 0, `nothing stored twice: ${line}`);
  assert.is(report.acked, report.sent, `everything acknowledged: ${line}`);

  // The database agrees: one row per (device, seq), and every meter's records are there.
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    const r = await c.query<{ devices: number; readings: number }>(
      `SELECT count(DISTINCT device_id)::int AS devices, count(*) FILTER (WHERE kind = 1)::int AS readings FROM records`);
    assert.is(r.rows[0].devices, METERS);
    const paired = await c.query<{ n: number; gateways: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT gateway_id)::int AS gateways FROM devices WHERE state = 'paired'`);
    assert.equal(paired.rows[0], { n: METERS, gateways: 1 }, 'one gateway identity for both replicas');
  } finally {
    await c.end();
  }
});

test.run();
