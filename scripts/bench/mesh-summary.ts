// Mesh summaries with 10,000 meters (mesh.ts announceSummary): the bytes a gateway publishes per 5-second
// sync interval in steady state, when every summary names everything it holds (full) and when it names
// only what changed since the last (delta, with a full summary every anti-entropy interval besides).
// One gateway in this process holds DEVICES paired meters with one readings message each (signed at its
// start, as for meters paired before it had a mesh); each round CHANGED meters report a reading, then the
// same state is summarised both ways. Bytes are the encoded gossip messages (before libp2p framing) of
// what goes to one admitted peer of the gateway's operator (a bare node, mesh-admission-v2).

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pino } from 'pino';
import { base32 } from '../../firmware/core/bytes.js';
import { sha256 } from '../../firmware/core/crypto.js';
import { startGateway } from '../../gateway/gateway.js';
import { loadOrCreateIdentity } from '../../gateway/identity.js';
import type { SummaryEvent, SummarySent } from '../../gateway/mesh/mesh.js';
import type { MeshRecord } from '../../gateway/mesh/protocols.js';
import { SUMMARY_MAX_BYTES } from '../../gateway/mesh/summary.js';
import { SqliteStore } from '../../gateway/store/sqlite.js';
import { eventually, tempDir } from '../../test/gateway/support.js';
import { KeyGateway, operator, peerNode } from '../../test/gateway/mesh-support.js';
import { rmSync } from 'node:fs';

const DEVICES = Number(process.env.GRIDLET_BENCH_SUMMARY_DEVICES ?? 10_000);
/** Meters reporting per interval: 100 of 10,000 is each meter once every ~8 minutes. */
const CHANGED = Number(process.env.GRIDLET_BENCH_SUMMARY_CHANGED ?? 100);
const ROUNDS = Number(process.env.GRIDLET_BENCH_SUMMARY_ROUNDS ?? 5);
const INTERVAL_MS = 5000;
const ANTI_ENTROPY_MS = 12 * INTERVAL_MS;
const T0 = 1_700_000_000;

const mean = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);

export async function run(): Promise<object> {
  const dir = tempDir();
  const identity = loadOrCreateIdentity(dir);
  const store = new SqliteStore(join(dir, 'gridlet.sqlite'));
  const ids: string[] = [];
  try {
    for (let i = 0; i < DEVICES; i++) {
      const key = new Uint8Array(randomBytes(32));
      const id = base32(sha256(key).subarray(0, 10));
      const ks = new Uint8Array(randomBytes(32));
      await store.completePairing({ id, publicKey: key, ks, gatewayId: identity.id, model: 'bench', firmware: '1', capabilities: [], firstSeen: T0 * 1000, counter: 1, now: T0 * 1000 });
      await store.commitFrame({ deviceId: id, ks, counter: 2, now: T0 * 1000, records: [{ kind: 1, seq: 1, t: T0, gatewayTimed: false, channel: 1, value: i }] });
      ids.push(id);
    }
  } finally {
    await store.close();
  }

  let t0 = performance.now();
  // Summaries are driven below, not by the timer.
  const op = operator('bench');
  const gw = await startGateway({
    dataDir: dir, mqttListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', meshListen: '/ip4/127.0.0.1/tcp/0', operatorKey: op.file,
    meshSyncMs: 3_600_000, meshAntiEntropyMs: 3_600_000, logger: pino({ level: 'silent' }),
  });
  const startMs = Math.round(performance.now() - t0);
  // Summaries go to admitted peers only: one peer of the same operator listens.
  const listener = await peerNode(new KeyGateway(op.key), [gw.meshAddr!]);
  try {
    const mesh = gw.mesh;
    await eventually(() => mesh.node!.admittedPeers().length === 1, 15_000, 'the listener admitted');
    await mesh.settled();
    let largest = 0;
    gw.events.on('mesh-summary', (e: SummaryEvent) => void (largest = Math.max(largest, e.bytes)));
    await mesh.announceSummary('full');
    const full: SummarySent[] = [];
    const delta: SummarySent[] = [];
    const fullMs: number[] = [];
    const deltaMs: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < CHANGED; i++) {
        const id = ids[(r * CHANGED + i) % ids.length];
        const records: MeshRecord[] = [[2 + r, T0 + 300 * (r + 1), 1, r]];
        gw.events.emit('records', { deviceId: id, records, frames: [records] });
      }
      // The 'records' handlers queue their work: wait until it is queued, then until it is done.
      await new Promise((res) => setImmediate(res));
      await mesh.settled();
      t0 = performance.now();
      delta.push(await mesh.announceSummary('delta'));
      deltaMs.push(performance.now() - t0);
      t0 = performance.now();
      full.push(await mesh.announceSummary('full'));
      fullMs.push(performance.now() - t0);
    }
    const fullBytes = mean(full.map((s) => s.bytes));
    const deltaBytes = mean(delta.map((s) => s.bytes));
    const withAntiEntropy = Math.round(deltaBytes + fullBytes * (INTERVAL_MS / ANTI_ENTROPY_MS));
    return {
      devices: DEVICES, changedPerInterval: CHANGED, rounds: ROUNDS, intervalMs: INTERVAL_MS, antiEntropyMs: ANTI_ENTROPY_MS,
      gatewayStartMs: startMs,
      perInterval: {
        full: { bytes: fullBytes, messages: mean(full.map((s) => s.messages)), cids: mean(full.map((s) => s.cids)), computeMs: mean(fullMs) },
        delta: { bytes: deltaBytes, messages: mean(delta.map((s) => s.messages)), cids: mean(delta.map((s) => s.cids)), computeMs: mean(deltaMs) },
        deltaWithAntiEntropy: { bytes: withAntiEntropy },
      },
      ratioFullToDelta: Math.round((fullBytes / deltaBytes) * 10) / 10,
      ratioFullToDeltaWithAntiEntropy: Math.round((fullBytes / withAntiEntropy) * 10) / 10,
      largestMessageBytes: largest, summaryLimitBytes: SUMMARY_MAX_BYTES,
    };
  } finally {
    await listener.node.close();
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
