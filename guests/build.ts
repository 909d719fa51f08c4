// `npm run build:guests` (and `gridlet guest build`): compiles guests/src/*.ts with AssemblyScript,
// restricted to what wasm3 runs, instruments each for metering, checks it against GUESTS.md and its
// manifest (manifests/guests/<name>.json), and writes guests/dist/<name>.wasm. Fails when a guest is
// over the 4 KiB budget or breaks any rule. The plain (uninstrumented) bytes stay in memory for the
// benchmark's metering-overhead comparison.
//
//   node --import tsx guests/build.ts [name…]

import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cidToText, guestCid } from '../firmware/core/guests/cid.js';
import { instrumentMetering } from '../firmware/core/guests/instrument.js';
import { parseManifestJson, type GuestManifest } from '../firmware/core/guests/manifest.js';
import { GUEST_MAX_BYTES, validateGuest } from '../firmware/core/guests/validate.js';

export const GUESTS_DIR = fileURLToPath(new URL('.', import.meta.url));
export const ROOT_DIR = join(GUESTS_DIR, '..');
export const SOURCE_DIR = join(GUESTS_DIR, 'src');
export const DIST_DIR = join(GUESTS_DIR, 'dist');
export const MANIFEST_DIR = join(ROOT_DIR, 'manifests', 'guests');

/**
 * asc flags: the stub runtime (a bump allocator, no GC), no bulk memory (wasm3 has none; SIMD, threads
 * and reference types are off by default), optimised for size, one page of memory that the module
 * defines and exports, and `abort` compiled to `unreachable` instead of an `env.abort` import.
 */
export const ASC_FLAGS = [
  '--runtime', 'stub',
  '--disable', 'bulk-memory',
  '-O3z', '--shrinkLevel', '2', '--converge',
  '--noAssert',
  '--use', 'abort=',
  '--initialMemory', '1', '--maximumMemory', '1',
];

export interface BuiltGuest {
  name: string;
  manifest: GuestManifest;
  /** What asc produced, before metering. */
  plain: Uint8Array;
  /** What ships: instrumented, validated. */
  metered: Uint8Array;
  meterPoints: number;
  cid: string;
}

export interface BuildOptions {
  /** Guest names (default: every guests/src/*.ts). */
  names?: string[];
  /** Write guests/dist/<name>.wasm (default true). */
  write?: boolean;
  /** Output folder (default guests/dist). */
  outDir?: string;
}

interface AscApi {
  main(argv: string[], options: {
    stdout?: { write(s: string): void };
    stderr?: { write(s: string): void };
    writeFile?: (name: string, contents: Uint8Array | string, baseDir: string) => void;
  }): Promise<{ error: Error | null }>;
}

async function loadAsc(): Promise<AscApi> {
  try {
    // The specifier is a variable so the type checker does not load asc's typings: they declare a global
    // `console` namespace (AssemblyScript's own) that would shadow Node's everywhere.
    const asc: string = 'assemblyscript/asc';
    return (await import(asc)).default as unknown as AscApi;
  } catch (e) {
    throw new Error(`the AssemblyScript compiler is not installed (npm install --save-dev assemblyscript): ${(e as Error).message}`);
  }
}

/** Compiles one AssemblyScript file to plain (unmetered) .wasm bytes, in memory. */
export async function compileGuest(file: string): Promise<Uint8Array> {
  const asc = await loadAsc();
  let out: Uint8Array | undefined;
  let errors = '';
  const sink = { write: (s: string) => { errors += s; } };
  const { error } = await asc.main([file, '--outFile', 'guest.wasm', ...ASC_FLAGS], {
    stdout: sink,
    stderr: sink,
    writeFile: (name, contents) => {
      if (name.endsWith('.wasm') && typeof contents !== 'string') out = contents;
    },
  });
  if (error || !out) throw new Error(`asc failed on ${file}: ${error?.message ?? 'no output'}\n${errors.trim()}`);
  return out;
}

export function guestNames(): string[] {
  return readdirSync(SOURCE_DIR).filter((f) => f.endsWith('.ts')).map((f) => basename(f, '.ts')).sort();
}

export function readManifest(name: string): GuestManifest {
  const file = join(MANIFEST_DIR, `${name}.json`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`guest ${name} has no manifest: create ${file} (GUESTS.md "Manifest")`);
  }
  const r = parseManifestJson(text);
  if (!r.ok) throw new Error(`${file}: ${r.reason}`);
  if (r.manifest.name !== name) throw new Error(`${file}: names guest "${r.manifest.name}", expected "${name}"`);
  return r.manifest;
}

/** Builds the guests; throws with every problem found. */
export async function buildGuests(options: BuildOptions = {}): Promise<BuiltGuest[]> {
  const names = options.names?.length ? options.names : guestNames();
  const outDir = options.outDir ?? DIST_DIR;
  const built: BuiltGuest[] = [];
  const problems: string[] = [];
  for (const name of names) {
    try {
      const manifest = readManifest(name);
      const plain = await compileGuest(join(SOURCE_DIR, `${name}.ts`));
      const { wasm, points } = instrumentMetering(plain);
      const v = validateGuest(wasm, manifest, { maxBytes: GUEST_MAX_BYTES });
      if (!v.ok) throw new Error(v.reason);
      built.push({ name, manifest, plain, metered: wasm, meterPoints: points, cid: cidToText(guestCid(wasm)) });
    } catch (e) {
      problems.push(`${name}: ${(e as Error).message}`);
    }
  }
  if (problems.length) throw new Error(`guest build failed:\n  ${problems.join('\n  ')}`);
  if (options.write ?? true) {
    mkdirSync(outDir, { recursive: true });
    for (const g of built) writeFileSync(join(outDir, `${g.name}.wasm`), g.metered);
  }
  return built;
}

/** One line per guest: name, sizes, metering points, CID. */
export function buildReport(built: BuiltGuest[]): string {
  return built.map((g) => `${g.name.padEnd(14)} ${String(g.metered.length).padStart(5)} bytes (plain ${g.plain.length}, ` +
    `${g.meterPoints} metering points, budget ${GUEST_MAX_BYTES})  ${g.cid}`).join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    const built = await buildGuests({ names: process.argv.slice(2) });
    console.log(buildReport(built));
    console.log(`wrote ${built.length} guests to ${DIST_DIR}`);
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
