// gridlet's OpenAPI validator (gateway/openadr/schema.ts) against Ajv: every example of the OpenADR
// fixture collection gets the verdict Ajv gave it (schema-validation.json, made with Ajv 8 and
// ajv-formats), against both versions' documents, and the same places are named when it fails.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDateTime, OpenAdrSpec, OPENADR_VERSIONS, problemText } from '../../gateway/openadr/schema.js';

const dir = join(fileURLToPath(import.meta.url), '..', '..', 'fixtures', 'openadr');
const verdicts = JSON.parse(readFileSync(join(dir, 'schema-validation.json'), 'utf8')) as { file: string; [version: string]: string }[];

test('every fixture gets Ajv\'s verdict against both versions, failing at the places Ajv names', () => {
  let compared = 0;
  let failures = 0;
  for (const e of verdicts) {
    for (const version of OPENADR_VERSIONS) {
      const m = /^(ok|FAIL)\((\w+)\)(?::\s*(.*))?$/.exec(e[version]);
      if (!m) continue; // n/a: a fragment, not an object of the API
      const spec = OpenAdrSpec.published(version);
      const value = JSON.parse(readFileSync(join(dir, e.file), 'utf8')) as unknown;
      const problems = (Array.isArray(value) ? value : [value]).flatMap((x) => spec.validate(m[2], x));
      const where = `${e.file} as ${version} ${m[2]}`;
      assert.is(problems.length === 0, m[1] === 'ok', `${where}: Ajv says ${e[version]}, gridlet says ${problemText(problems) || 'ok'}`);
      if (m[1] === 'FAIL') {
        failures++;
        const mine = new Set(problems.map((p) => p.path || '/'));
        for (const ajv of m[3].split('; ')) {
          const path = ajv.split(' ')[0];
          assert.ok(mine.has(path), `${where}: Ajv names ${path} (${ajv}); gridlet names ${[...mine].join(', ')}`);
        }
      }
      compared++;
    }
  }
  assert.ok(compared >= 100, `${compared} verdicts compared`);
  assert.ok(failures >= 40 && failures < compared - 40, 'both verdicts occur');
});

test('3.1.0 as gridlet reads it: a VTN\'s VEN and resource objects (objectType VEN, RESOURCE) validate', () => {
  const resource = JSON.parse(readFileSync(join(dir, 'openleadr-rs', 'openleadr-rs__resource.json'), 'utf8'));
  assert.match(problemText(OpenAdrSpec.published('3.1.0').validate('resource', resource)), /\/objectType must be one of "BL_RESOURCE_REQUEST"/);
  assert.equal(OpenAdrSpec.load('3.1.0').validate('resource', resource), []);
  const ven = { id: 'v1', createdDateTime: '2025-01-01T00:00:00Z', modificationDateTime: '2025-01-01T00:00:00Z', objectType: 'VEN', clientID: 'c1', venName: 'gw' };
  assert.equal(OpenAdrSpec.load('3.1.0').validate('ven', ven), []);
  assert.match(problemText(OpenAdrSpec.load('3.1.0').validate('ven', { ...ven, venName: undefined, objectType: 'PROGRAM2' })), /objectType must be one of/);
});

test('date-time is RFC 3339 with a time zone and a real date', () => {
  for (const s of ['2023-06-15T09:30:00Z', '2024-02-29T23:59:59.123+01:00', '2023-06-15 09:30:00z']) assert.ok(isDateTime(s), s);
  for (const s of ['2023-06-15T09:30:00', '17:15:16', '0001-01-01', '2023-02-29T00:00:00Z', '2023-06-15T24:00:00Z', '2023-13-01T00:00:00Z']) {
    assert.not.ok(isDateTime(s), s);
  }
});

test('nullable, enums, int32 and oneOf are enforced as OpenAPI 3.0 says', () => {
  const spec = OpenAdrSpec.load('3.1.0');
  assert.equal(spec.validate('eventRequest', { programID: 'p1', eventName: null, intervals: [] }), []);
  assert.match(problemText(spec.validate('eventRequest', { programID: 'p 1' })), /\/programID must match the pattern/);
  assert.match(problemText(spec.validate('interval', { id: 2 ** 31, payloads: [] })), /\/id must be a 32-bit integer/);
  assert.match(problemText(spec.validate('venRequest', { objectType: 'VEN_VEN_REQUEST' })), /oneOf/);
  assert.equal(spec.validate('venRequest', { objectType: 'VEN_VEN_REQUEST', venName: 'gw' }), []);
  assert.match(problemText(spec.validate('notification', { objectType: 'EVENT', operation: 'POST', object: {} })), /\/operation must be one of "CREATE"/);
  assert.ok(OpenAdrSpec.load('3.0.1').operations().some((o) => o.method === 'POST' && o.path === '/vens/{venID}/resources'));
  assert.ok(spec.operations().some((o) => o.method === 'DELETE' && o.path === '/resources/{resourceID}'));
});

test.run();
