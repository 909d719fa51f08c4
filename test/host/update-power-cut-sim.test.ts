// Power cuts over the firmware update path: the store-and-forward simulation with A/B slots on a flash
// that loses power, a KeyValue store whose writes are cut, and one release after another rolled out to
// every device by the real gateway (each third one never reaches its gateway and must roll back). ≥ 10,000
// cuts land while an update is under way; every boot starts an intact image, every device ends on an
// image that reaches its gateway, and every reading is stored exactly once, in order.
// Replay a failing seed: GRIDLET_SEED=<seed> node scripts/test.js unit update-power-cut

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runStoreForwardSim } from '../../host/sim/store-forward-sim.js';
import { assertNothingLost, simGateway } from './support/sim-gateway.js';

const seed = Number(process.env.GRIDLET_SEED ?? Date.now() % 1_000_000);
// 300 by default in `npm test`; the acceptance figure is GRIDLET_OTA_CUTS=10000 (see docs/firmware.md).
const cuts = Number(process.env.GRIDLET_OTA_CUTS ?? 300);

test(`${cuts} power cuts on the update path end on a bootable image and lose no reading (seed ${seed})`, async () => {
  // The acceptance run also rolls out a release that must roll back (every third) under the cuts.
  const releasesUnderFaults = Number(process.env.GRIDLET_OTA_RELEASES ?? (cuts >= 1000 ? 3 : 0));
  const r = await runStoreForwardSim({ startGateway: simGateway, seed, cuts, flaps: Math.round(cuts / 50), updates: true, releasesUnderFaults, progress: process.env.GRIDLET_PROGRESS ? (l) => process.stderr.write(l + '\n') : undefined });
  console.log(`update power-cut sim: ${JSON.stringify({ ...r, failures: r.failures.length })}`);
  assert.ok(r.updateCuts! >= cuts, `cuts on the update path: ${r.updateCuts}`);
  assert.ok(r.releases! >= Math.max(1, releasesUnderFaults), `releases rolled out: ${r.releases}`);
  assert.ok((r.outcomes!.confirmed ?? 0) > 0, `outcomes: ${JSON.stringify(r.outcomes)}`);
  // Once the cuts stop, the last rollout reaches every device and ends there: none is left offered or half way.
  const open = Object.entries(r.lastOutcomes!).filter(([state]) => !['confirmed', 'rolled-back', 'failed'].includes(state));
  assert.equal(open, [], `devices whose update did not end: ${JSON.stringify(r.lastOutcomes)}`);
  assert.ok(r.bootsChecked! > r.cuts, 'every boot was checked');
  assertNothingLost(r, seed);
});

test.run();
