// test/core/support/dlms-fixtures.ts carries test/fixtures/dlms into XS; it must say what the files say.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { MODULE_PATH, moduleText } from '../../scripts/dlms-fixtures.js';

test('the generated fixture module matches the capture files (regenerate: node --import tsx scripts/dlms-fixtures.ts)', () => {
  assert.ok(readFileSync(MODULE_PATH, 'utf8') === moduleText(), 'test/core/support/dlms-fixtures.ts is stale');
});

test.run();
