// `npm run build:guests` (and `gridlet guest build`): compiles the guests in guests/src by their
// extension — AssemblyScript (.ts), C (.c, clang; wasi-libc when it has a main or a libc header) and
// Rust (.rs, a no_std crate against the SDK crate, rustc) — restricted to what wasm3 runs,
// instruments each for metering, checks it against GUESTS.md and its manifest
// (manifests/guests/<name>.json), and writes guests/dist/<name>.wasm. The worlds in
// guests/src/worlds/<world>/ (one source per member, manifest manifests/worlds/<world>.json) are built
// member by member the same way, checked as a world, and written as guests/dist/<world>.world (the
// bundle its CID names). Fails when a guest is over the 4 KiB budget or breaks any rule. The plain
// (uninstrumented) bytes stay in memory for the sizes it reports and the benchmark.
// guests/dist/toolchains.json records the C and Rust compilers the checked-in files were built with.
//
//   node --import tsx guests/build.ts [name…]

import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cidToText, guestCid, worldCid } from '../firmware/core/guests/cid.js';
import { instrumentMetering } from './tools/instrument.js';
import { parseManifestJson, type GuestManifest } from '../firmware/core/guests/manifest.js';
import { GUEST_MAX_BYTES, validateGuest, type GuestInfo } from '../firmware/core/guests/validate.js';
import {
  parseModule,
} from '../firmware/core/guests/wasm.js';
import { rewriteModule } from './tools/wasm-writer.js';
import { encodeWorld, parseWorldManifest, validateWorld, type WorldManifest } from '../firmware/core/guests/world.js';
import { compileC, compileRust, STACK_BYTES, toolVersion } from './toolchains.js';

export const GUESTS_DIR = fileURLToPath(new URL('.', import.meta.url));
export const ROOT_DIR = join(GUESTS_DIR, '..');
export const SOURCE_DIR = join(GUESTS_DIR, 'src');
export const WORLD_SOURCE_DIR = join(SOURCE_DIR, 'worlds');
export const SDK_DIR = join(GUESTS_DIR, 'sdk');
export const DIST_DIR = join(GUESTS_DIR, 'dist');
export const MANIFEST_DIR = join(ROOT_DIR, 'manifests', 'guests');
export const WORLD_MANIFEST_DIR = join(ROOT_DIR, 'manifests', 'worlds');
/** The compilers guests/dist was built with (the staleness test compares C and Rust guests only under them). */
export const TOOLCHAINS_FILE = join(DIST_DIR, 'toolchains.json');

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

export type Language = 'assemblyscript' | 'c' | 'rust';
const LANGUAGES: { [ext: string]: Language } = { '.ts': 'assemblyscript', '.c': 'c', '.rs': 'rust' };

export interface GuestSource {
  name: string;
  file: string;
  language: Language;
}

export interface BuiltGuest {
  name: string;
  language: Language;
  manifest: GuestManifest;
  /** What the compiler produced, custom sections dropped, before metering. */
  plain: Uint8Array;
  /** What ships: instrumented, validated. */
  metered: Uint8Array;
  meterPoints: number;
  info: GuestInfo;
  cid: string;
}

export interface BuiltWorld {
  name: string;
  manifest: WorldManifest;
  /** Members in manifest order (`name` is the member's). */
  members: BuiltGuest[];
  /** What ships: guests/dist/<world>.world. */
  bundle: Uint8Array;
  cid: string;
}

export interface BuildOptions {
  /** Guest and world names (default: every source in guests/src and every world). */
  names?: string[];
  /** Write guests/dist (default true). */
  write?: boolean;
  /** Output folder (default guests/dist). */
  outDir?: string;
  /** Languages to build (default all); the others are left out. */
  languages?: Language[];
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
export async function compileAssemblyScript(file: string): Promise<Uint8Array> {
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

/** Compiles a source by its extension; custom sections (names, producers) are dropped. */
export async function compileSource(file: string): Promise<Uint8Array> {
  const language = LANGUAGES[extname(file)];
  let bytes: Uint8Array;
  switch (language) {
    case 'assemblyscript': bytes = await compileAssemblyScript(file); break;
    case 'c': bytes = compileC(file, [SDK_DIR, SOURCE_DIR]); break;
    case 'rust': bytes = compileRust(file, join(SDK_DIR, 'gridlet.rs'), basename(file, '.rs').replace(/-/g, '_')); break;
    default: throw new Error(`${file}: a guest's source is .ts (AssemblyScript), .c or .rs`);
  }
  return rewriteModule(parseModule(bytes), { dropCustom: true });
}

function sourcesIn(dir: string): GuestSource[] {
  if (!existsSync(dir)) return [];
  const out: GuestSource[] = [];
  for (const f of readdirSync(dir).sort()) {
    const language = LANGUAGES[extname(f)];
    if (!language || !statSync(join(dir, f)).isFile()) continue;
    const name = basename(f, extname(f));
    const twin = out.find((s) => s.name === name);
    if (twin) throw new Error(`${join(dir, f)} and ${twin.file} are both guest "${name}": one source per name`);
    out.push({ name, file: join(dir, f), language });
  }
  return out;
}

/** The guests in guests/src (not the worlds' members). */
export function guestSources(): GuestSource[] {
  return sourcesIn(SOURCE_DIR);
}

export function guestNames(): string[] {
  return guestSources().map((s) => s.name);
}

/** The worlds: folders of guests/src/worlds. */
export function worldNames(): string[] {
  if (!existsSync(WORLD_SOURCE_DIR)) return [];
  return readdirSync(WORLD_SOURCE_DIR).filter((d) => statSync(join(WORLD_SOURCE_DIR, d)).isDirectory()).sort();
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

export function readWorldManifest(name: string): WorldManifest {
  const file = join(WORLD_MANIFEST_DIR, `${name}.json`);
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`world ${name} has no readable manifest ${file}: ${(e as Error).message} (GUESTS.md "Microworlds")`);
  }
  const r = parseWorldManifest(value);
  if (!r.ok) throw new Error(`${file}: ${r.reason}`);
  if (r.world.name !== name) throw new Error(`${file}: names world "${r.world.name}", expected "${name}"`);
  return r.world;
}

/** A C or Rust guest's stack and static data must fit its memory_bytes (else its first call traps). */
function checkStack(language: Language, manifest: GuestManifest, info: GuestInfo): void {
  if (language === 'assemblyscript') return;
  const need = Math.max(STACK_BYTES, info.dataEnd);
  if (manifest.memory_bytes < need) {
    throw new Error(`memory_bytes ${manifest.memory_bytes} is less than the ${STACK_BYTES}-byte stack and static data (up to byte ${need}) the ${language === 'c' ? 'C' : 'Rust'} guest needs`);
  }
}

type Compiled = Omit<BuiltGuest, 'info'>;

async function compileOne(source: GuestSource, manifest: GuestManifest): Promise<Compiled> {
  const plain = await compileSource(source.file);
  const { wasm, points } = instrumentMetering(plain);
  return { name: source.name, language: source.language, manifest, plain, metered: wasm, meterPoints: points, cid: cidToText(guestCid(wasm)) };
}

async function buildGuest(source: GuestSource): Promise<BuiltGuest> {
  const manifest = readManifest(source.name);
  const b = await compileOne(source, manifest);
  const v = validateGuest(b.metered, manifest, { maxBytes: GUEST_MAX_BYTES });
  if (!v.ok) throw new Error(v.reason);
  checkStack(b.language, manifest, v.info);
  return { ...b, info: v.info };
}

async function buildWorld(name: string): Promise<BuiltWorld> {
  const world = readWorldManifest(name);
  const sources = sourcesIn(join(WORLD_SOURCE_DIR, name));
  const compiled: Compiled[] = [];
  for (const m of world.members) {
    const source = sources.find((s) => s.name === m.name);
    if (!source) throw new Error(`member ${m.name} has no source: create guests/src/worlds/${name}/${m.name}.{ts,c,rs}`);
    compiled.push(await compileOne(source, m.manifest));
  }
  for (const s of sources) {
    if (!world.members.some((m) => m.name === s.name)) throw new Error(`${s.file} is not a member of the world's manifest`);
  }
  const modules = compiled.map((m) => m.metered);
  const v = validateWorld({ world, modules }, { maxBytes: GUEST_MAX_BYTES });
  if (!v.ok) throw new Error(v.reason);
  const members = compiled.map((m, i): BuiltGuest => {
    try {
      checkStack(m.language, m.manifest, v.infos[i]);
    } catch (e) {
      throw new Error(`member "${m.name}": ${(e as Error).message}`);
    }
    return { ...m, info: v.infos[i] };
  });
  const bundle = encodeWorld(world, modules);
  return { name, manifest: world, members, bundle, cid: cidToText(worldCid(bundle)) };
}

/** Builds guests and worlds; throws with every problem found. */
export async function buildAll(options: BuildOptions = {}): Promise<{ guests: BuiltGuest[]; worlds: BuiltWorld[] }> {
  const sources = guestSources();
  const worlds = worldNames();
  const wanted = options.names?.length ? options.names : [...sources.map((s) => s.name), ...worlds];
  const languages = options.languages;
  const outDir = options.outDir ?? DIST_DIR;
  const guests: BuiltGuest[] = [];
  const builtWorlds: BuiltWorld[] = [];
  const problems: string[] = [];
  for (const name of wanted) {
    try {
      const source = sources.find((s) => s.name === name);
      if (source) {
        if (!languages || languages.indexOf(source.language) >= 0) guests.push(await buildGuest(source));
      } else if (worlds.indexOf(name) >= 0) {
        const langs = sourcesIn(join(WORLD_SOURCE_DIR, name)).map((s) => s.language);
        if (!languages || langs.every((l) => languages.indexOf(l) >= 0)) builtWorlds.push(await buildWorld(name));
      } else {
        throw new Error(`no guest or world of that name (guests: ${sources.map((s) => s.name).join(', ')}; worlds: ${worlds.join(', ') || 'none'})`);
      }
    } catch (e) {
      problems.push(`${name}: ${(e as Error).message}`);
    }
  }
  if (problems.length) throw new Error(`guest build failed:\n  ${problems.join('\n  ')}`);
  if (options.write ?? true) {
    mkdirSync(outDir, { recursive: true });
    for (const g of guests) writeFileSync(join(outDir, `${g.name}.wasm`), g.metered);
    for (const w of builtWorlds) writeFileSync(join(outDir, `${w.name}.world`), w.bundle);
    const compiled = [...guests, ...builtWorlds.flatMap((w) => w.members)].map((g) => g.language);
    if (outDir === DIST_DIR && (compiled.includes('c') || compiled.includes('rust'))) writeToolchains(compiled);
  }
  return { guests, worlds: builtWorlds };
}

/** Builds the guests in guests/src (not the worlds); throws with every problem found. */
export async function buildGuests(options: BuildOptions = {}): Promise<BuiltGuest[]> {
  const names = options.names?.length ? options.names : guestNames();
  return (await buildAll({ ...options, names })).guests;
}

export interface Toolchains { clang?: string; rustc?: string }

export function readToolchains(): Toolchains {
  try {
    return JSON.parse(readFileSync(TOOLCHAINS_FILE, 'utf8')) as Toolchains;
  } catch {
    return {};
  }
}

function writeToolchains(languages: Language[]): void {
  const t = readToolchains();
  if (languages.includes('c')) t.clang = toolVersion('clang');
  if (languages.includes('rust')) t.rustc = toolVersion('rustc');
  writeFileSync(TOOLCHAINS_FILE, JSON.stringify({ clang: t.clang, rustc: t.rustc }, null, 2) + '\n');
}

function line(name: string, g: BuiltGuest): string {
  return `${name.padEnd(20)} ${g.language.padEnd(14)} ${String(g.metered.length).padStart(5)} bytes (plain ${String(g.plain.length).padStart(4)}, ` +
    `${String(g.meterPoints).padStart(2)} metering points, budget ${GUEST_MAX_BYTES})  ${g.cid}`;
}

/** One line per guest and world member: name, language, sizes, metering points, CID. */
export function buildReport(built: BuiltGuest[] | { guests: BuiltGuest[]; worlds: BuiltWorld[] }): string {
  const { guests, worlds } = Array.isArray(built) ? { guests: built, worlds: [] as BuiltWorld[] } : built;
  const lines = guests.map((g) => line(g.name, g));
  for (const w of worlds) {
    lines.push(`${w.name.padEnd(20)} world          ${String(w.bundle.length).padStart(5)} bytes (${w.members.length} members)  ${w.cid}`);
    for (const m of w.members) lines.push(line(`  ${w.name}.${m.name}`, m));
  }
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    const built = await buildAll({ names: process.argv.slice(2) });
    console.log(buildReport(built));
    console.log(`wrote ${built.guests.length} guests and ${built.worlds.length} worlds to ${DIST_DIR}`);
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
