// The WIRE.md channel table is written twice: in the spec and once in code (firmware/core/wire/
// constants.ts), which the meter parsers, the console, the CLI and the dashboard (served as /shared.js,
// test/gateway/dashboard.test.ts) all use. Every channel a meter can send is named, with the spec's unit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Channel, CHANNELS, channelName, channelUnit, MAX_CHANNEL } from '../../firmware/core/wire/constants.js';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');

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

test('channels 1–22: named with one unit in WIRE.md and in code', () => {
  const values = Object.values(Channel).sort((a, b) => a - b);
  assert.equal(values, Array.from({ length: MAX_CHANNEL }, (_, i) => i + 1), 'numbered 1…MAX_CHANNEL without gaps');
  const wire = wireChannels();
  for (let c = 1; c <= MAX_CHANNEL; c++) {
    assert.is.not(channelName(c), `channel-${c}`, `console name of ${c}`);
    assert.ok(CHANNELS[c][1], `channel ${c} has a name for people`);
    assert.ok(wire.has(c), `WIRE.md has channel ${c}`);
    assert.is(unit(wire.get(c)!), channelUnit(c), `unit of ${c}: WIRE.md vs console`);
  }
  assert.is(channelName(Channel.reactivePowerExported), 'reactive-power-exported');
  assert.is(channelName(Channel.powerImportedL3), 'power-imported-l3');
  assert.is(CHANNELS[Channel.reactiveEnergyImported][1], 'Reactive energy imported');
});

test.run();
