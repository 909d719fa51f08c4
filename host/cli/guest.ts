// `gridlet guest build|check|run`: the developer's tools for guests (GUESTS.md).
// (`gridlet guest deploy` goes through the gateway's HTTP API and lives with the gateway commands.)

import { readFileSync } from 'node:fs';
import { cidToText, guestCid, worldCid } from '../../firmware/core/guests/cid.js';
import { parseManifestJson } from '../../firmware/core/guests/manifest.js';
import { validateGuest, type GuestInfo } from '../../firmware/core/guests/validate.js';
import { decodeWorld, validateWorld, worldManifestToMap } from '../../firmware/core/guests/world.js';
import { householdScript, parseScript, runScript, runWorldScript, type Script, type TickReport } from '../guests/script.js';
import { guestEngine, isGuestEngineName } from '../guests/engines.js';
import { parse, processIo, run, UsageError } from './args.js';

const HELP = `usage: gridlet guest <command> …

  build [name…] [--out DIR]
      Compiles guests/src/<name>.ts (AssemblyScript), .c (clang --target=wasm32; wasm32-wasi with
      wasi-libc when it has a main or includes a libc header) or .rs (a no_std crate, rustc against
      guests/sdk/gridlet.rs) — restricted to what wasm3 runs, optimised for size —, instruments it
      for metering (metering.usegas at every function entry and loop header), checks it against
      GUESTS.md and manifests/guests/<name>.json, and writes guests/dist/<name>.wasm. A world,
      guests/src/worlds/<name>/ with manifests/worlds/<name>.json, is built member by member, checked
      as a world and written as guests/dist/<name>.world. Fails when a guest breaks a rule or is over
      4 KiB, or names the package to install when a compiler is missing.

  check <wasm> --manifest <json> [--json]
  check <world> [--json]
      Checks a module and its manifest against GUESTS.md: format, features wasm3 runs, imports (the
      gridlet table and the WASI subset: any other WASI function is refused by name), exports (init
      and tick, or _start for a one-shot job), memory, size and metering coverage. A world's bundle
      (guests/dist/<name>.world) carries its manifest: every member is checked, and what each calls
      of the others. Exit 0 when it may run, 1 with the reason when not.

  run <wasm> --manifest <json> [--script FILE] [--changes] [--json] [--guest-engine v8|wasm3]
  run <world> [--script FILE] …
      Runs init and then ticks every period_s of simulated time against a script of channel values and
      grid signals, on a host engine with the meter's limits (v8 by default; wasm3 is the meter's own
      engine compiled to WebAssembly), and prints one JSON line per tick:
        {"t", "tick", "state", "fuel", "relays": [{"id","on","result"}], "events": [{"kind","data"}],
         "faults": [why…], "log": [line…]}
      (a world adds "members": [{"name","tick","fuel"}] and ticks at its fastest member's period; a
      one-shot job runs once, at t = 0, and its summary has its "exitCode"),
      then a summary line {"summary": {…}}. Without --script it runs the household day shipped with
      the project (1-minute import power, voltage, current and energy; import limit 5000 W; DR level 1
      at 07:00–08:00 and 2 at 18:00–19:00). --changes prints only ticks where something happened;
      --json prints one JSON document {"ticks": […], "summary": {…}} instead.
      Script: {"start": unix s, "duration_s": s, "relays": [{"id", "critical", "safe_on"}], "kv": [slots],
               "steps": [{"t": s, "channels": {"3": W, …}, "signals": {"3": W, "2": level, "1": price}}]}

  deploy <name | wasm> (--device ID… | --label k=v) [--manifest JSON] [--wait S] [--gateway URL] [--json]
      Uploads the guest to a gateway and deploys it by CID to devices (gridlet guest deploy --help).`;

function readBytes(file: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(file));
  } catch (e) {
    throw new Error(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function readManifest(file: string): unknown {
  const text = new TextDecoder().decode(readBytes(file, 'manifest'));
  const r = parseManifestJson(text);
  if (!r.ok) throw new Error(`${file}: ${r.reason}`);
  return JSON.parse(text);
}

export async function guestMain(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
    console.log(HELP);
    return sub ? 0 : 2;
  }
  switch (sub) {
    case 'build': return run('guest build', HELP, processIo, () => build(rest));
    case 'check': return run('guest check', HELP, processIo, () => check(rest));
    case 'run': return run('guest run', HELP, processIo, () => runGuest(rest));
    case 'deploy': return (await import('./ops.js')).guestDeployMain(rest);
    default:
      console.error(`gridlet guest: unknown command "${sub}"`);
      return 2;
  }
}

async function build(argv: string[]): Promise<number> {
  const r = parse(argv, { out: { type: 'string' } }, true);
  if (r.values.help) {
    console.log(HELP);
    return 0;
  }
  const { buildAll, buildReport, DIST_DIR } = await import('../../guests/build.js');
  const built = await buildAll({ names: r.positionals, outDir: r.values.out as string | undefined });
  console.log(buildReport(built));
  const n = built.guests.length;
  const w = built.worlds.length;
  console.log(`wrote ${n} guest${n === 1 ? '' : 's'}${w ? ` and ${w} world${w === 1 ? '' : 's'}` : ''} to ${(r.values.out as string | undefined) ?? DIST_DIR}`);
  return 0;
}

const isWorldFile = (file: string) => file.endsWith('.world');

/** What a check prints about one module (a guest, or a world's member). */
function describe(i: GuestInfo, fuelPerCall: number, memoryBytes: number, indent: string): string[] {
  const exports = i.job ? '_start (a one-shot job: it runs once when deployed)' : `init, tick${i.hasOnSignal ? ', on_signal' : ''}${i.hasInitialize ? ', _initialize' : ''}`;
  const lines = [
    `${indent}imports: ${i.imports.join(', ') || '(none)'}${i.wasi.length ? `; WASI: ${i.wasi.join(', ')}` : ''}${i.peers.length ? `; calls ${i.peers.join(', ')}` : ''}`,
    `${indent}exports: ${exports}; memory ${i.memoryPages} page(s), capped at ${memoryBytes} bytes (static data ends at ${i.dataEnd})`,
    `${indent}metering: ${i.meterPoints} points in ${i.functions} functions, costliest region ${i.maxRegionCost} fuel; budget ${fuelPerCall} per call`,
  ];
  for (const name of i.ungranted) lines.push(`${indent}warning: ${ungrantedWarning(name)}`);
  return lines;
}

function ungrantedWarning(name: string): string {
  return `imports ${name} but the manifest grants no capability for it: every call will answer -1 (or NaN) and be counted`;
}

function checkWorld(file: string, json: boolean): number {
  const bundle = readBytes(file, 'world');
  const d = decodeWorld(bundle);
  if (!d.ok) return refuse(file, d.reason, json);
  const v = validateWorld(d);
  if (!v.ok) return refuse(file, v.reason, json);
  const cid = cidToText(worldCid(bundle));
  const members = v.world.members.map((m, i) => ({ m, info: v.infos[i], size: v.modules[i].length, cid: cidToText(guestCid(v.modules[i])) }));
  if (json) {
    console.log(JSON.stringify({
      ok: true, cid, size: bundle.length, manifest: worldManifestToMap(v.world),
      members: members.map(({ m, info, size, cid }) => ({
        name: m.name, size, cid, offers: m.exports, info: { ...info, grants: undefined }, warnings: info.ungranted.map(ungrantedWarning),
      })),
    }));
    return 0;
  }
  console.log(`ok: world ${v.world.name} ${v.world.version}, ${bundle.length} bytes, ${members.length} members, cid ${cid}`);
  for (const { m, info, size, cid } of members) {
    const holds = m.grants.relays.length ? `, holds relay ${m.grants.relays.join(', ')}` : '';
    console.log(`  ${m.name}: ${size} bytes (budget 4096), every ${m.manifest.period_s} s${holds}${m.exports.length ? `, offers ${m.exports.join(', ')}` : ''}, cid ${cid}`);
    for (const l of describe(info, m.manifest.fuel_per_call, m.manifest.memory_bytes, '    ')) console.log(l);
  }
  return 0;
}

async function check(argv: string[]): Promise<number> {
  const r = parse(argv, { manifest: { type: 'string' }, json: { type: 'boolean' } }, true);
  if (r.values.help) {
    console.log(HELP);
    return 0;
  }
  if (r.positionals.length !== 1) throw new UsageError(`guest check needs one .wasm or .world file`);
  const file = r.positionals[0];
  const json = r.values.json === true;
  if (isWorldFile(file)) {
    if (r.values.manifest) throw new UsageError(`guest check ${file}: a world's bundle carries its manifest; --manifest is for a .wasm`);
    return checkWorld(file, json);
  }
  if (!r.values.manifest) throw new UsageError(`guest check needs --manifest <json> (a .world carries its own)`);
  const wasm = readBytes(file, 'module');
  let manifest: unknown;
  try {
    manifest = readManifest(r.values.manifest as string);
  } catch (e) {
    return refuse(file, (e as Error).message, json);
  }
  const v = validateGuest(wasm, manifest);
  if (!v.ok) return refuse(file, v.reason, json);
  const cid = cidToText(guestCid(wasm));
  const warnings = v.info.ungranted.map(ungrantedWarning);
  if (json) {
    console.log(JSON.stringify({ ok: true, cid, manifest: v.manifest, info: { ...v.info, grants: undefined }, warnings }));
    return 0;
  }
  const i = v.info;
  console.log(`ok: ${v.manifest.name} ${v.manifest.version}, ${i.size} bytes (budget 4096), cid ${cid}`);
  for (const l of describe(i, v.manifest.fuel_per_call, v.manifest.memory_bytes, '  ')) console.log(l);
  return 0;
}

function refuse(file: string, reason: string, json: boolean): number {
  if (json) console.log(JSON.stringify({ ok: false, reason }));
  else console.error(`gridlet guest check: ${file} is refused: ${reason}`);
  return 1;
}

async function runGuest(argv: string[]): Promise<number> {
  const r = parse(argv, {
    manifest: { type: 'string' }, script: { type: 'string' }, changes: { type: 'boolean' }, json: { type: 'boolean' },
    'guest-engine': { type: 'string' },
  }, true);
  if (r.values.help) {
    console.log(HELP);
    return 0;
  }
  const engineName = r.values['guest-engine'] ?? 'v8';
  if (!isGuestEngineName(engineName)) throw new UsageError(`--guest-engine ${engineName}: expected v8 or wasm3`);
  if (r.positionals.length !== 1) throw new UsageError(`guest run needs one .wasm or .world file`);
  const file = r.positionals[0];
  const world = isWorldFile(file);
  if (!world && !r.values.manifest) throw new UsageError(`guest run needs --manifest <json> (a .world carries its own)`);
  const wasm = readBytes(file, world ? 'world' : 'module');
  const manifest = world ? undefined : readManifest(r.values.manifest as string);
  const d = world ? decodeWorld(wasm) : undefined;
  const v = d ? (d.ok ? validateWorld(d) : d) : validateGuest(wasm, manifest);
  if (!v.ok) {
    console.error(`gridlet guest run: ${file} is refused: ${v.reason}`);
    return 1;
  }
  let script: Script;
  if (r.values.script) {
    const text = new TextDecoder().decode(readBytes(r.values.script as string, 'script'));
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new Error(`${r.values.script}: not valid JSON: ${(e as Error).message}`);
    }
    script = parseScript(parsed);
  } else {
    script = householdScript();
  }
  // `gridlet guest run … | head`: a closed pipe ends the run quietly.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  const changesOnly = r.values.changes === true;
  const asDocument = r.values.json === true;
  const ticks: TickReport[] = [];
  const out: string[] = [];
  const flush = () => {
    if (out.length) process.stdout.write(out.join(''));
    out.length = 0;
  };
  const engine = guestEngine(engineName);
  const run = world
    ? (onTick: (t: TickReport) => void) => runWorldScript(wasm, script, onTick, engine)
    : (onTick: (t: TickReport) => void) => runScript(wasm, manifest, script, onTick, engine);
  const summary = run((t) => {
    const eventful = t.relays.length || t.events.length || t.faults.length || t.log.length;
    if (changesOnly && !eventful) return;
    if (asDocument) ticks.push(t);
    else {
      out.push(JSON.stringify(t) + '\n');
      if (out.length >= 256) flush();
    }
  });
  flush();
  if (asDocument) console.log(JSON.stringify({ ticks, summary }));
  else console.log(JSON.stringify({ summary }));
  return summary.ack.state === 'running' ? 0 : 1;
}
