// 20,000 mutated meter captures through the meter parser (see dlms-fuzz.ts for the invariants).
// A failure names its seed; replay it with DLMS_FUZZ_SEED=<seed> node scripts/test.js unit dlms-fuzz.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fuzzDlms } from './dlms-fuzz.js';

const seed = Number(process.env.DLMS_FUZZ_SEED ?? 20260312);

test(`20,000 mutated captures, seed ${seed}: bounded memory, only the parser's own errors, no silent damage`, () => {
  const stats = fuzzDlms({ iterations: 20_000, seed });
  assert.ok(stats.maxBuffered <= stats.capacity);
  // The mutations reach every layer.
  assert.ok(stats.accepted > 1500, `accepted ${stats.accepted}`);
  for (const layer of ['hdlc', 'mbus', 'gbt', 'gcm', 'axdr', 'detect']) assert.ok((stats.refused[layer] ?? 0) > 100, `${layer}: ${stats.refused[layer]}`);
  assert.ok((stats.refused.apdu ?? 0) > 10, `apdu: ${stats.refused.apdu}`);
  assert.is(stats.acceptedChangedChecked, 0, 'a one-bit error past FCS, checksum or tag');
  console.log(
    `dlms fuzz: ${stats.iterations} iterations, ${(stats.bytes / 1e6).toFixed(1)} MB in ${stats.seconds.toFixed(1)} s ` +
      `(${Math.round(stats.iterations / stats.seconds)}/s); accepted ${stats.accepted} (${stats.acceptedChanged} changed); refused ${JSON.stringify(stats.refused)}`,
  );
});

test('the same seed replays the same run', () => {
  const a = fuzzDlms({ iterations: 300, seed: 7 });
  const b = fuzzDlms({ iterations: 300, seed: 7 });
  assert.equal({ ...a, seconds: 0 }, { ...b, seconds: 0 });
});

test.run();
