#!/usr/bin/env node
// Checks the ESP32 targets as far as mcconfig goes without ESP-IDF: for each manifest in manifests/
// (esp32, esp32c3, esp32s3) mcconfig resolves the manifest and writes its makefile, and every module
// that build/firmware/main.js imports must be provided by the resolved manifest. A module no manifest
// includes is what makes an image fail at its first boot with `module "…" not found`. The release
// build's merged sdkconfig must enable app rollback, secure boot v2, flash encryption (release mode)
// and NVS encryption, and its partition table must have the two app slots, otadata and nvs_keys.
//
// It needs a full Moddable SDK ($MODDABLE, with build/devices/esp32); the SDK subset that builds only
// the Linux tools cannot resolve ESP32 manifests, and then this says so and passes (PENDING).
//
//   node scripts/firmware/check-targets.js        (run npm run build:firmware first)

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { root, wasm3Source } from './sdk.js';

export const TARGETS = [
  { platform: 'esp32', manifest: 'manifests/esp32/manifest.json' },
  { platform: 'esp32/esp32c3', manifest: 'manifests/esp32c3/manifest.json' },
  { platform: 'esp32/esp32s3', manifest: 'manifests/esp32s3/manifest.json' },
];

/** The module specifiers an ES module imports (static `import … from "x"` at line starts, as esbuild writes them). */
export function importsOf(code) {
  const out = new Set();
  for (const m of code.matchAll(/^import\s+(?:[^'"]*?\s+from\s+)?["']([^"']+)["'];?$/gm)) out.add(m[1]);
  return [...out].sort();
}

/** The module specifiers a resolved manifest (manifest_flat.json) provides. */
export function providedBy(flat) {
  const names = new Set();
  for (const [specifier, paths] of Object.entries(flat.modules ?? {})) {
    if (specifier !== '*') {
      names.add(specifier);
      continue;
    }
    for (const p of [paths].flat()) {
      if (p.endsWith('/*')) {
        const dir = p.slice(0, -2);
        if (!existsSync(dir)) continue;
        for (const f of readdirSync(dir)) if (/\.(js|ts)$/.test(f) && !f.endsWith('.d.ts')) names.add(f.replace(/\.(js|ts)$/, ''));
      } else names.add(basename(p));
    }
  }
  return names;
}

/** What a release build's merged sdkconfig must set (manifests/<target>/sdkconfig; docs/firmware.md "Hardening"). */
export const RELEASE_SDKCONFIG = [
  'CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y', 'CONFIG_SECURE_BOOT_V2_ENABLED=y', 'CONFIG_SECURE_FLASH_ENC_ENABLED=y',
  'CONFIG_SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y', 'CONFIG_NVS_ENCRYPTION=y',
];
/** Partitions firmware over the air and NVS encryption need: [name, type, subtype]. */
export const OTA_PARTITIONS = [['otadata', 'data', 'ota'], ['ota_0', 'app', 'ota_0'], ['ota_1', 'app', 'ota_1'], ['nvs_keys', 'data', 'nvs_keys'], ['gridlog', 'data', 'undefined']];

/** The release build's merged sdkconfig (sdkconfig.mc) and partition table that mcconfig wrote next to manifest_flat.json. */
function hardeningProblems(dir, sub) {
  const problems = [];
  const proj = join(dir, `xsProj-${sub}`);
  const sdkconfig = join(proj, 'sdkconfig.mc');
  const partitions = join(proj, 'partitions.csv');
  if (!existsSync(sdkconfig) || !existsSync(partitions)) return [`mcconfig wrote no sdkconfig.mc or partitions.csv in ${proj}`];
  const lines = new Set(readFileSync(sdkconfig, 'utf8').split(/\r?\n/).map((l) => l.trim()));
  const unset = RELEASE_SDKCONFIG.filter((o) => !lines.has(o));
  if (unset.length) problems.push(`the release sdkconfig lacks ${unset.join(', ')}`);
  const rows = readFileSync(partitions, 'utf8').split('\n').filter((l) => l.trim() && !l.trim().startsWith('#')).map((l) => l.split(',').map((x) => x.trim()));
  for (const [name, type, subtype] of OTA_PARTITIONS) {
    if (!rows.some((r) => r[0] === name && r[1] === type && r[2] === subtype)) problems.push(`the partition table has no ${name} (${type}, ${subtype})`);
  }
  if (rows.some((r) => r[2] === 'factory')) problems.push('the partition table still has a factory app: the bootloader would fall back to it');
  for (const name of ['nvs_keys', 'gridlog']) if (!rows.some((r) => r[0] === name && /encrypted/.test(r[5] ?? ''))) problems.push(`${name} is not flagged encrypted`);
  return problems;
}

export function checkTargets(moddable = process.env.MODDABLE) {
  if (!moddable || !existsSync(join(moddable, 'build', 'devices', 'esp32', 'manifest.json'))) {
    return { pending: `the Moddable SDK at ${moddable ?? '$MODDABLE (unset)'} has no build/devices/esp32: the ESP32 targets need the full SDK` };
  }
  const mainJs = join(root, 'build', 'firmware', 'main.js');
  if (!existsSync(mainJs)) throw new Error('no build/firmware/main.js: run npm run build:firmware first');
  const wanted = importsOf(readFileSync(mainJs, 'utf8'));
  const wasm3 = wasm3Source();
  const bin = join(moddable, 'build', 'bin', 'lin', 'release');
  const results = [];
  for (const t of TARGETS) {
    const out = join(root, 'build', 'targets', t.platform.replace('/', '-'));
    mkdirSync(out, { recursive: true });
    const r = spawnSync(join(bin, 'mcconfig'), ['-p', t.platform, '-o', out, join(root, t.manifest)], {
      cwd: root, encoding: 'utf8', env: { ...process.env, MODDABLE: moddable, PATH: `${bin}:${process.env.PATH}`, ...(wasm3 ? { WASM3: dirname(wasm3) } : {}) },
    });
    if (r.status !== 0) {
      results.push({ ...t, ok: false, problem: `mcconfig: ${(r.stdout + r.stderr).trim().split('\n').slice(-3).join(' ')}` });
      continue;
    }
    const sub = t.platform.split('/')[1] ?? 'esp32';
    const flatPath = join(out, 'tmp', 'esp32', sub === 'esp32' ? '' : sub, 'release', basename(dirname(t.manifest)), 'manifest_flat.json');
    const found = [flatPath, join(out, 'tmp', 'esp32', 'release', basename(dirname(t.manifest)), 'manifest_flat.json')].find(existsSync);
    if (!found) {
      results.push({ ...t, ok: false, problem: `mcconfig wrote no manifest_flat.json under ${out}` });
      continue;
    }
    const provided = providedBy(JSON.parse(readFileSync(found, 'utf8')));
    const missing = wanted.filter((w) => !provided.has(w) && w !== 'mc/config');
    const problems = missing.length ? [`main.js imports ${missing.join(', ')}, which no manifest of this target includes`] : [];
    problems.push(...hardeningProblems(dirname(found), sub));
    results.push({ ...t, ok: problems.length === 0, problem: problems.join('; ') });
  }
  return { results, wanted };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = checkTargets();
  if (r.pending) {
    console.log(`PENDING ESP32 targets: ${r.pending}`);
    process.exit(0);
  }
  for (const t of r.results) console.log(`${t.ok ? 'ok  ' : 'FAIL'} ${t.platform} (${t.manifest})${t.problem ? ` — ${t.problem}` : ''}`);
  process.exit(r.results.every((t) => t.ok) ? 0 : 1);
}
