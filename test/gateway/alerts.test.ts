// docs/alerts.yml is what operators load into Prometheus: every gridlet metric and label its rules
// name must be one the gateway exports, or the alert silently never fires.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestGateway } from './support.js';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');

test('every metric and label the alert rules use is exported by the gateway', async () => {
  const rules = readFileSync(join(root, 'docs', 'alerts.yml'), 'utf8');
  const exprs = [...rules.matchAll(/expr: (?:\|\n)?([\s\S]*?)\n\s+(?:for|labels):/g)].map((m) => m[1]);
  assert.ok(exprs.length >= 10, `${exprs.length} rules read`);
  const t = await startTestGateway();
  try {
    const text = (await t.api('GET', '/metrics')).text;
    // name → its label names, from the exposition's TYPE lines and samples.
    const types = new Map<string, string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1], m[2]);
    const labels = new Map<string, Set<string>>();
    for (const m of text.matchAll(/^# HELP (\S+) /gm)) labels.set(m[1], new Set());
    for (const m of text.matchAll(/^(gridlet_\w+?)(?:_bucket|_sum|_count)?\{([^}]*)\}/gm)) {
      for (const l of m[2].matchAll(/(\w+)="/g)) labels.get(m[1])?.add(l[1]);
    }
    let checked = 0;
    for (const expr of exprs) {
      for (const m of expr.matchAll(/\b(gridlet_\w+)(\{[^}]*\})?/g)) {
        const name = m[1].replace(/_(bucket|sum|count)$/, (s) => (types.get(m[1].slice(0, -s.length)) === 'histogram' ? '' : s));
        assert.ok(types.has(name), `the rules use ${m[1]}, which the gateway does not export`);
        if (name !== m[1]) assert.is(types.get(name), 'histogram', `${m[1]} needs ${name} to be a histogram`);
        for (const l of (m[2] ?? '').matchAll(/(\w+)\s*[=!~]/g)) {
          if (l[1] === 'le' || l[1] === 'job' || l[1] === 'instance') continue;
          const known = labels.get(name);
          // A labelled series shows only once it has a value; its help text names nothing, so a
          // label no series shows yet is only refused when the metric has other labels.
          if (known && known.size) assert.ok(known.has(l[1]), `${name} has no label ${l[1]} (it has ${[...known].join(', ')})`);
        }
        checked++;
      }
    }
    assert.ok(checked >= 10, `${checked} metric uses checked`);
  } finally {
    await t.close();
  }
});

test.run();
