// The WIRE.md channel table is written in four places until they are unified: the spec, the meter
// parsers' constants (firmware/core/meter/dsmr.ts), the console and CLI names (firmware/core/console/
// text.ts) and the dashboard (gateway/web/app.js). Every channel a meter can send is named, with the
// same unit, everywhere.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Channel, MAX_CHANNEL } from '../../firmware/core/meter/dsmr.js';
import { channelName, channelUnit } from '../../firmware/core/console/text.js';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');

function dashboardChannels(): Map<number, [string, string]> {
  const js = readFileSync(join(root, 'gateway', 'web', 'app.js'), 'utf8');
  const table = /const CHANNELS = \{([\s\S]*?)\n\};/.exec(js)![1];
  const out = new Map<number, [string, string]>();
  for (const m of table.matchAll(/(\d+): \['([^']+)', '([^']*)'\]/g)) out.set(Number(m[1]), [m[2], m[3]]);
  return out;
}

function wireChannels(): Map<number, string> {
  const md = readFileSync(join(root, 'docs', 'design', 'WIRE.md'), 'utf8');
  const start = md.indexOf('## Channels (v1)');
  const next = md.indexOf('\n## ', start + 1);
  const section = md.slice(start, next < 0 ? undefined : next);
  const out = new Map<number, string>();
  for (const line of section.split('\n')) {
    const m = /^\| ([\d /]+) \| [^|]+ \| ([^|]+) \|/.exec(line);
    if (!m) continue;
    for (const n of m[1].split('/')) out.set(Number(n.trim()), m[2].trim());
  }
  return out;
}

const unit = (u: string) => u.replace('dm³ (litres)', 'dm3').replace('dm³', 'dm3').replace(/^the register.*/, '');

test('channels 1–22: named with one unit in WIRE.md, the console and the dashboard', () => {
  const values = Object.values(Channel).sort((a, b) => a - b);
  assert.equal(values, Array.from({ length: MAX_CHANNEL }, (_, i) => i + 1), 'numbered 1…MAX_CHANNEL without gaps');
  const dash = dashboardChannels();
  const wire = wireChannels();
  for (let c = 1; c <= MAX_CHANNEL; c++) {
    assert.is.not(channelName(c), `channel-${c}`, `console name of ${c}`);
    assert.ok(dash.has(c), `dashboard has channel ${c}`);
    assert.ok(wire.has(c), `WIRE.md has channel ${c}`);
    assert.is(unit(dash.get(c)![1]), channelUnit(c), `unit of ${c}: dashboard vs console`);
    assert.is(unit(wire.get(c)!), channelUnit(c), `unit of ${c}: WIRE.md vs console`);
  }
  assert.is(channelName(Channel.reactivePowerExported), 'reactive-power-exported');
  assert.is(channelName(Channel.powerImportedL3), 'power-imported-l3');
  assert.is(dash.get(Channel.reactiveEnergyImported)![0], 'Reactive energy imported');
});

test.run();
