// Privacy on one gateway's SQLite store: how fast the policy in force is resolved (the mesh
// asks for every message it announces or serves), what a group change over many devices costs, and how
// long a retention run takes to remove a month of one meter's 10-second readings (one signed readings
// message per 10 minutes) and sign its tombstone. Nothing here touches the network.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import pino from 'pino';
import { encodeMessage, signerFromSeed } from '../../gateway/mesh/message.js';
import { protocols } from '../../gateway/mesh/pcid.js';
import { readingsPayload, type MeshRecord } from '../../gateway/mesh/protocols.js';
import { parsePolicy } from '../../gateway/privacy/policy.js';
import { Retention } from '../../gateway/privacy/retention.js';
import { PrivacyService } from '../../gateway/privacy/service.js';
import { SqliteStore } from '../../gateway/store/sqlite.js';
import type { StoredRecord } from '../../gateway/store/store.js';

const DEVICES = Number(process.env.GRIDLET_BENCH_PRIVACY_DEVICES ?? 2000);
const DAYS = Number(process.env.GRIDLET_BENCH_RETENTION_DAYS ?? 30);
const DAY_MS = 86_400_000;

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** A distinct device id (16 characters of the RFC 4648 base32 alphabet) for each n. */
function id(n: number): string {
  let s = '';
  for (let i = 0; i < 16; i++, n = Math.floor(n / 32)) s = B32[n % 32] + s;
  return s;
}

export async function run(): Promise<object> {
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-bench-privacy-'));
  const store = new SqliteStore(join(dir, 'db.sqlite'));
  const now = Date.now();
  const privacy = new PrivacyService({ store, log: pino({ level: 'silent' }), now: () => now });
  try {
    for (let i = 0; i < DEVICES; i++) {
      await store.completePairing({
        id: id(i), publicKey: new Uint8Array(32), ks: new Uint8Array(32), gatewayId: 'gggggggggggggggg', model: 'm', firmware: 'f',
        capabilities: [], firstSeen: now, counter: 1, now,
      });
      await store.setLabels(id(i), { feeder: `F${i % 20}` });
    }
    await privacy.setGroupPolicy('feeder=F3', 5, parsePolicy({ mesh: 'daily', retentionDays: 30 }));
    await privacy.setDevicePolicy(id(7), parsePolicy({ retentionDays: 7 }));

    let t0 = performance.now();
    const lookups = 20_000;
    for (let i = 0; i < lookups; i++) await privacy.effectivePolicy(id(i % DEVICES));
    const resolvePerSecond = Math.round(lookups / ((performance.now() - t0) / 1000));

    t0 = performance.now();
    await privacy.setGroupPolicy('feeder=F4', 6, parsePolicy({ mesh: '15min' }));
    const groupChangeMs = Math.round(performance.now() - t0);

    // One meter: DAYS days of 10-second readings, a readings message per 10 minutes (60 records).
    const seed = nacl.randomBytes(32);
    const signer = signerFromSeed(seed, nacl.sign.keyPair.fromSeed(seed).publicKey);
    const dev = id(7);
    const start = now - (DAYS + 7) * DAY_MS;
    let seq = 0;
    let counter = 1;
    let prev: Uint8Array[] = [];
    t0 = performance.now();
    const frames = Math.round(DAYS * 24 * 6);
    for (let m = 0; m < frames; m++) {
      const records: StoredRecord[] = [];
      const at = start + m * 600_000;
      for (let k = 0; k < 60; k++) {
        seq++;
        records.push({ kind: 1, seq, t: Math.floor((at + k * 10_000) / 1000), gatewayTimed: false, channel: 1, value: 1000 + (seq % 300) });
      }
      await store.commitFrame({ deviceId: dev, ks: new Uint8Array(32), counter: ++counter, now: at, records });
      const mesh = records.map((r): MeshRecord => [r.seq, r.t, 1, (r as { value: number }).value]);
      const msg = encodeMessage(protocols().readings.pcid, readingsPayload({ device: dev, gateway: 'gggggggggggggggg', records: mesh, prev }), signer);
      await store.blocks.appendChain({
        deviceId: dev, prev, covers: [[records[0].seq, seq]],
        block: { cid: msg.cid, bytes: msg.bytes, kind: 'readings', deviceId: dev, receivedAt: at },
      });
      prev = [msg.cid];
    }
    const fillSeconds = (performance.now() - t0) / 1000;

    const retention = new Retention({ store, privacy, gatewayId: 'gggggggggggggggg', signer, log: pino({ level: 'silent' }), now: () => now });
    t0 = performance.now();
    const report = await retention.run();
    const runMs = Math.round(performance.now() - t0);
    t0 = performance.now();
    const again = await retention.run();
    const idleRunMs = Math.round(performance.now() - t0);
    const r = report.devices.find((x) => x.deviceId === dev);
    return {
      devices: DEVICES,
      resolvePerSecond,
      groupChangeMs,
      retention: {
        messages: frames, records: seq, fillSeconds: Math.round(fillSeconds * 10) / 10,
        removedRecords: r?.recordsDeleted ?? 0, removedMessages: r?.blocksDeleted ?? 0, runMs, idleRunMs,
        idleRunRemoved: again.devices.length,
      },
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
