#!/usr/bin/env node
// `npm run test:firmware`: the firmware image for real. Builds the Moddable SDK's Linux tools (once,
// cached by the SDK's content hash), bundles the firmware (npm run build:firmware), builds the lin
// image with mcconfig, then runs test/firmware/*.test.ts against it on Moddable's own runtime.
//
// Without the SDK (../shared/toolchains/moddable beside this checkout, or $GRIDLET_MODDABLE_SRC) it
// prints PENDING and passes, unless GRIDLET_REQUIRE_FIRMWARE=1 (CI) makes that a failure.
//
//   node scripts/test-firmware.js [filter]

import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { checkTargets } from './firmware/check-targets.js';
import { buildImage, ensureSdk, root, sdkSource, wasm3Source } from './firmware/sdk.js';

const filter = process.argv[2];
const required = process.env.GRIDLET_REQUIRE_FIRMWARE === '1';
const say = (line) => console.log(line);

if (!sdkSource() || !wasm3Source()) {
  const what = !sdkSource() ? 'the Moddable SDK (../shared/toolchains/moddable or $GRIDLET_MODDABLE_SRC)' : 'wasm3 (../shared/toolchains/wasm3 or $WASM3)';
  say(`PENDING test:firmware: ${what} is not here; docs/firmware.md says how to get it`);
  process.exit(required ? 1 : 0);
}

function timed(name, fn) {
  const started = Date.now();
  try {
    const detail = fn();
    say(`ok   ${name}${detail ? ` — ${detail}` : ''} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
  } catch (e) {
    say(`FAIL ${name}\n${String(e.message ?? e).split('\n').map((l) => '    ' + l).join('\n')}`);
    process.exit(1);
  }
}

let sdk;
timed('Moddable SDK tools', () => {
  sdk = ensureSdk({ log: (l) => say(`     ${l}`) });
  return sdk.moddable;
});
timed('npm run build:firmware', () => {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-firmware.js')], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stdout + r.stderr);
});
// The ESP32 targets as far as mcconfig goes without ESP-IDF; needs a full SDK ($GRIDLET_MODDABLE_FULL).
{
  const t = checkTargets(process.env.GRIDLET_MODDABLE_FULL ?? sdk.moddable);
  if (t.pending) say(`PENDING ESP32 targets: ${t.pending} (set GRIDLET_MODDABLE_FULL)`);
  else {
    for (const r of t.results) say(`${r.ok ? 'ok  ' : 'FAIL'} mcconfig -p ${r.platform} ${r.manifest}${r.problem ? ` — ${r.problem}` : ''}`);
    if (!t.results.every((r) => r.ok)) process.exit(1);
  }
}

let image;
// Instrumented (-i): the same release build, with the XS machine keeping its stack peak for the heap test.
timed('lin image (mcconfig -m -i -p lin manifests/lin/manifest.json)', () => {
  image = buildImage({ manifest: join(root, 'manifests', 'lin', 'manifest.json'), out: join(root, 'build', 'firmware-lin'), instrument: true });
  return `${(statSync(image.so).size / 1024).toFixed(0)} KB mc.so, ${image.seconds.toFixed(1)} s, ${image.warnings.length} linker warnings`;
});

const r = spawnSync(process.execPath, [join(root, 'scripts', 'test.js'), 'firmware', ...(filter ? [filter] : [])], {
  cwd: root, stdio: 'inherit', env: { ...process.env, GRIDLET_FIRMWARE_IMAGE: image.so, GRIDLET_MODDABLE: sdk.moddable },
});
process.exit(r.status ?? 1);
