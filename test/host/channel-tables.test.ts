// The WIRE.md channel table is written twice: in the spec and once in code (firmware/core/wire/
// constants.ts), which the meter parsers, the console, the CLI and the dashboard (served as /shared.js,
// test/gateway/dashboard.test.ts) all use. Every channel a meter can send is named, with the spec's unit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Channel, CHANNELS, channelName, channelUnit, MAX_CHANNEL, Signal } from '../../firmware/core/wire/constants.js';

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

/** energyImported, EnergyImported, GL_CH_ENERGY_IMPORTED, ENERGY_IMPORTED → ENERGY_IMPORTED. */
const snake = (name: string) => name.replace(/^GL_(CH|SIGNAL)_/, '').replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

/** name → number of the constants in one namespace/module/enum block of a guest SDK. */
function sdkConstants(file: string, block: RegExp, entry: RegExp): Map<string, number> {
  const text = readFileSync(join(root, 'guests', 'sdk', file), 'utf8');
  const body = block.exec(text)?.[1] ?? '';
  const out = new Map<string, number>();
  for (const m of body.matchAll(entry)) out.set(snake(m[1]), Number(m[2]));
  return out;
}

test('the guest SDKs (AssemblyScript, C, Rust) number channels and signals as the core does', () => {
  const core = (o: { [k: string]: number }) => new Map(Object.entries(o).map(([k, v]) => [snake(k), v]));
  const channels = core(Channel);
  const signals = core(Signal);
  const sdks: [string, Map<string, number>, Map<string, number>][] = [
    ['gridlet.ts', sdkConstants('gridlet.ts', /namespace Channel \{([\s\S]*?)\n\}/, /const (\w+): i32 = (\d+)/g),
      sdkConstants('gridlet.ts', /namespace Signal \{([\s\S]*?)\n\}/, /const (\w+): i32 = (\d+)/g)],
    ['gridlet.h', sdkConstants('gridlet.h', /([\s\S]*)/, /(GL_CH_\w+) = (\d+)/g), sdkConstants('gridlet.h', /([\s\S]*)/, /(GL_SIGNAL_\w+) = (\d+)/g)],
    ['gridlet.rs', sdkConstants('gridlet.rs', /pub mod channel \{([\s\S]*?)\n\}/, /pub const (\w+): i32 = (\d+)/g),
      sdkConstants('gridlet.rs', /pub mod signal \{([\s\S]*?)\n\}/, /pub const (\w+): i32 = (\d+)/g)],
  ];
  for (const [file, ch, sig] of sdks) {
    assert.ok(ch.size >= 12 && sig.size === 3, `${file}: its constants were found`);
    for (const [name, n] of ch) assert.is(n, channels.get(name), `${file}: channel ${name}`);
    for (const [name, n] of sig) assert.is(n, signals.get(name), `${file}: signal ${name}`);
  }
});

test.run();
