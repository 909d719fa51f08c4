// The gateway the store-and-forward simulation's meters talk to: a real one (embedded broker, SQLite)
// on free ports, quiet. Shared by the simulation's tests and its benchmark. Kept downlinks (offers among
// them) are resent to a device heard 2 s after the last send, not 30 s: these meters lose power every
// few seconds, and a rollout here waits 30 s for its devices.

import * as assert from 'uvu/assert';
import { startGateway } from '../../../gateway/gateway.js';
import type { SimGateway, StoreForwardResult } from '../../../host/sim/store-forward-sim.js';

export function simGateway(dataDir: string): Promise<SimGateway> {
  return startGateway({ dataDir, mqttListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', logger: { log() {} }, tuning: { resendIntervalMs: 2000 } });
}

/** What every store-and-forward run must end with: no failure, and every reading stored once, in order. */
export function assertNothingLost(r: StoreForwardResult, seed: number): void {
  assert.equal(r.failures, [], `seed ${seed}: ${r.failures.join('; ')}`);
  assert.is(r.lost, 0, `seed ${seed}: lost readings`);
  assert.is(r.duplicated, 0, `seed ${seed}: duplicated readings`);
  assert.is(r.invented, 0, `seed ${seed}: invented readings`);
  assert.is(r.outOfOrder, 0, `seed ${seed}: readings out of order`);
}
