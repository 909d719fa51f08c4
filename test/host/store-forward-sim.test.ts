// The real agent (flash log on a flash that loses power) against the real gateway (embedded
// broker, SQLite) over MQTT links that flap and lose messages: ≥ 10,000 power cuts and ≥ 1,000 link
// flaps, and every reading taken is stored exactly once, in order, none invented.
// Replay a failing seed: GRIDLET_SEED=<seed> node scripts/test.js unit store-forward-sim (GRIDLET_PROGRESS=1
// with scripts/uvu-file.js prints progress as it goes)

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runStoreForwardSim } from '../../host/sim/store-forward-sim.js';
import { assertNothingLost, simGateway } from './support/sim-gateway.js';

const seed = Number(process.env.GRIDLET_SEED ?? Date.now() % 1_000_000);
const cuts = Number(process.env.GRIDLET_SIM_CUTS ?? 10_000);
const flaps = Number(process.env.GRIDLET_SIM_FLAPS ?? 1_000);

test(`${cuts} power cuts and ${flaps} link flaps lose and duplicate nothing (seed ${seed})`, async () => {
  const r = await runStoreForwardSim({ startGateway: simGateway, seed, cuts, flaps, progress: process.env.GRIDLET_PROGRESS ? (l) => process.stderr.write(l + '\n') : undefined });
  console.log(`store-forward sim: ${JSON.stringify({ ...r, failures: r.failures.length })}`);
  assert.ok(r.cuts >= cuts, `cuts inflicted: ${r.cuts}`);
  assert.ok(r.flaps >= flaps, `flaps inflicted: ${r.flaps}`);
  assert.ok(r.messagesLost.up > 0 && r.messagesLost.down > 0, 'the links lost messages in both directions');
  assert.ok(r.readingsTaken > cuts, 'readings were taken between the cuts');
  assertNothingLost(r, seed);
});

test.run();
