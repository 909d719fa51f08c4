// ~20,000 mutated telegrams through the DSMR parser (see dsmr-fuzz.ts for the invariants).
// A failure names its seed; replay it with DSMR_FUZZ_SEED=<seed> node scripts/test.js unit dsmr-fuzz.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fuzzDsmr } from './dsmr-fuzz.js';

const seed = Number(process.env.DSMR_FUZZ_SEED ?? 20240601);

test(`20,000 mutated telegrams, seed ${seed}: bounded memory, only the parser's own errors, no silent damage`, () => {
  const stats = fuzzDsmr({ iterations: 20_000, seed });
  assert.is(stats.capacity, 2048);
  assert.ok(stats.maxBuffered <= stats.capacity);
  // The mutations reach every outcome.
  assert.ok(stats.accepted > 1000, `accepted ${stats.accepted}`);
  for (const [reason, n] of Object.entries(stats.refused)) assert.ok(n > 100, `${reason}: ${n}`);
  // With a CRC, a damaged telegram accepted with other values would need a CRC-16 collision.
  assert.ok(stats.acceptedChangedWithCrc <= 2, `accepted with CRC but changed: ${stats.acceptedChangedWithCrc}`);
  console.log(
    `dsmr fuzz: ${stats.iterations} iterations, ${(stats.bytes / 1e6).toFixed(1)} MB in ${stats.seconds.toFixed(1)} s ` +
      `(${Math.round(stats.iterations / stats.seconds)}/s); accepted ${stats.accepted} ` +
      `(${stats.acceptedChanged} changed, ${stats.acceptedChangedWithCrc} of them with a CRC); refused ${JSON.stringify(stats.refused)}`,
  );
});

test('the same seed replays the same run', () => {
  const a = fuzzDsmr({ iterations: 300, seed: 7 });
  const b = fuzzDsmr({ iterations: 300, seed: 7 });
  assert.equal({ ...a, seconds: 0 }, { ...b, seconds: 0 });
});

test.run();
