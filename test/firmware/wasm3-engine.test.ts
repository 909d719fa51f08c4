// wasm3 in the firmware image, for real: the probe image (test/firmware/apps/wasm3-probe: the firmware's
// guest engine, guest-engine.c over guest-core.c with wasm3 v0.5 compiled in by mcconfig) runs on the
// Moddable lin simulator every shipped guest and world (AssemblyScript, C, Rust, the WASI job), every
// hostile module, the engine probes, the WASI subset and calls between world members
// (test/host/support/guest-cases.ts), and must get the same results, fuel per call, trap kinds and
// import traffic as the host's V8 engine (and everything, the stack depth too, as the host's wasm3
// build). Needs the Moddable SDK and wasm3 (docs/firmware.md); says
// PENDING and passes without them.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { buildImage, missingSystemTools, root, sdkSource, SimImage, wasm3Source } from '../../scripts/firmware/sdk.js';
import type { GuestEngine } from '../../firmware/core/ports.js';
import { NodeGuestEngine } from '../../host/guests/wasm-engine.js';
import { Wasm3HostEngine } from '../../host/guests/wasm3-engine.js';
import { runProbe, type ProbeOutcome } from '../core/support/guest-probe.js';
import { guestCases } from '../host/support/guest-cases.js';

const APP = join(root, 'test', 'firmware', 'apps', 'wasm3-probe');
const OUT = join(root, 'build', 'firmware-tests', 'wasm3-probe');

const missing = !sdkSource() ? 'no Moddable SDK (../shared/toolchains/moddable or $GRIDLET_MODDABLE_SRC)'
  : !wasm3Source() ? 'no wasm3 source (../shared/toolchains/wasm3 or $WASM3)'
    : missingSystemTools().length ? `missing Debian packages: ${missingSystemTools().join(' ')}` : undefined;

/** The probe's main, bundled as the firmware's main is: one ES module importing only Moddable modules. */
async function bundleMain(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  await build({
    entryPoints: [join(APP, 'main.js')],
    outfile: join(OUT, 'main.js'),
    bundle: true, format: 'esm', platform: 'neutral', target: 'es2022', logLevel: 'silent',
    external: ['file', 'gridlet/*'],
  });
}

/** As the probe prints it: through JSON (NaN becomes null), without the trap's wording. */
function comparable(o: ProbeOutcome, kindsOnly: boolean): object {
  const j = JSON.parse(JSON.stringify(o)) as ProbeOutcome;
  return kindsOnly ? { case: j.case, step: j.step, kind: j.kind } : { ...j, msg: undefined };
}

if (missing) {
  console.log(`PENDING wasm3 on the lin simulator: ${missing}`);
} else {
  test('the firmware image runs every guest on wasm3 as the host runs it on V8', async () => {
    await bundleMain();
    const { so } = buildImage({ manifest: join(APP, 'manifest.json'), out: join(OUT, 'image') });
    const cases = guestCases();
    const dir = mkdtempSync(join(tmpdir(), 'gridlet-wasm3-probe-'));
    for (const c of cases) writeFileSync(join(dir, c.probe.file), c.wasm);
    writeFileSync(join(dir, 'probe.json'), JSON.stringify({ cases: cases.map((c) => c.probe) }));
    const sim = new SimImage({ so, dir });
    try {
      await sim.waitFor(/probe done/, { timeoutMs: 180_000 });
    } finally {
      await sim.kill();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(sim.lines.filter((l) => /probe error|XS abort/.test(l)), [], 'the probe ran every case');
    const device = new Map<string, ProbeOutcome[]>();
    for (const l of sim.lines) {
      const m = /probe (\{.*\})$/.exec(l);
      if (!m) continue;
      const o = JSON.parse(m[1]) as ProbeOutcome;
      device.set(o.case, [...(device.get(o.case) ?? []), o]);
    }
    const v8 = new NodeGuestEngine();
    const wasm3 = new Wasm3HostEngine();
    for (const c of cases) {
      const onHost = (engine: GuestEngine): ProbeOutcome[] => {
        const out: ProbeOutcome[] = [];
        runProbe(engine, c.probe, c.wasm, (o) => out.push(o));
        return out;
      };
      const onDevice = device.get(c.probe.name) ?? [];
      assert.equal(onDevice.map((o) => comparable(o, !!c.kindsOnly)), onHost(v8).map((o) => comparable(o, !!c.kindsOnly)), `${c.probe.name}${c.kindsOnly ? ` (${c.kindsOnly})` : ''}`);
      // The host's wasm3 build is the same C: there everything matches, the stack depth too.
      assert.equal(onDevice.map((o) => comparable(o, false)), onHost(wasm3).map((o) => comparable(o, false)), `${c.probe.name} (wasm3 on the host)`);
    }
    // The shipped guests ran: peak-guard's start function (AssemblyScript's) did not stop it.
    const peak = device.get('peak-guard')!;
    assert.is(peak[0].kind, 0, 'peak-guard loads');
    assert.ok(peak.filter((o) => o.step.endsWith(':tick') && o.kind === 0).length >= 90, 'peak-guard ticks');
    // The C and Rust guests tick; the WASI job ran its main and left through proc_exit; the world's
    // shedder ticked with its calls into setpoint charged to it; WASI wrote into guest memory.
    for (const name of ['load-shed', 'tariff-opt']) {
      assert.ok(device.get(name)!.filter((o) => o.step.endsWith(':tick') && o.kind === 0 && o.fuel > 0).length >= 90, `${name} ticks on the meter`);
    }
    assert.match(device.get('commission')![1].msg ?? '', /^proc_exit\(\d\)$/);
    assert.ok(device.get('shed-world')!.filter((o) => /shedder\.tick$/.test(o.step) && o.kind === 0).length >= 80);
    const calls = device.get('world calls between members')!;
    assert.ok(calls.find((o) => o.step === '4:app.tick')!.fuel > calls.find((o) => o.step === '3:lib.spin')!.fuel, 'a call into another member is charged to the caller');
    assert.is(device.get('wasi subset')![13].r, 40, 'fd_write wrote its count into guest memory');
  });
}

test.run();
