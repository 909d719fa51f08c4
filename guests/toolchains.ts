// The compilers `gridlet guest build` drives for C and Rust guests, found on the machine (never
// downloaded): clang with lld for wasm32 (Debian: clang lld; wasi-libc and libclang-rt-dev-wasm32 for
// a WASI guest) and rustc with the wasm32-unknown-unknown standard library (Debian: rustc
// libstd-rust-dev-wasm32). The flags keep to what wasm3 runs (GUESTS.md "Module rules"): MVP plus
// sign extension, mutable globals and non-trapping float-to-int; one page of memory defined and
// exported; the stack first (an overflow traps below address 0 instead of overwriting data).
//
// Environment: GRIDLET_CLANG, GRIDLET_RUSTC (the compilers), WASI_SYSROOT (wasi-libc; default /usr
// as Debian lays it out, or /usr/share/wasi-sysroot).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Stack of a C or Rust guest, bytes: its memory_bytes must cover it and its static data. */
export const STACK_BYTES = 2048;

const LINK = [`-zstack-size=${STACK_BYTES}`, '--stack-first', '--initial-memory=65536', '--max-memory=65536', '--gc-sections'];

export class ToolchainMissing extends Error {}

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return { ok: false, out: r.error.message };
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
}

let clangFound: string | undefined;

/** The clang that links wasm32 (its --version line), or throws ToolchainMissing naming the packages. */
export function clang(): { cmd: string; version: string } {
  const cmd = process.env.GRIDLET_CLANG ?? 'clang';
  if (clangFound === undefined) {
    const v = run(cmd, ['--version']);
    if (!v.ok) throw new ToolchainMissing(`no clang (${cmd}: ${v.out.split('\n')[0]}): apt-get install clang lld, or set GRIDLET_CLANG`);
    const ld = run(cmd, ['--target=wasm32', '-print-prog-name=wasm-ld']).out || 'wasm-ld';
    if (!run(ld, ['--version']).ok) throw new ToolchainMissing(`no wasm-ld (${ld}): apt-get install lld`);
    clangFound = v.out.split('\n')[0];
  }
  return { cmd, version: clangFound };
}

/** wasi-libc's sysroot, or throws ToolchainMissing. */
export function wasiSysroot(): string {
  const candidates = process.env.WASI_SYSROOT ? [process.env.WASI_SYSROOT] : ['/usr', '/usr/share/wasi-sysroot'];
  for (const root of candidates) {
    if (existsSync(join(root, 'lib', 'wasm32-wasi', 'libc.a')) || existsSync(join(root, 'lib', 'wasm32-wasi', 'crt1-command.o'))) return root;
  }
  throw new ToolchainMissing(`no wasi-libc (looked in ${candidates.join(', ')}): apt-get install wasi-libc libclang-rt-dev-wasm32, or set WASI_SYSROOT`);
}

/** Does this C source need wasi-libc: a main (a one-shot job), or a libc header? */
export function cNeedsWasi(source: string): { wasi: boolean; command: boolean } {
  const command = /\bint\s+main\s*\(/.test(source);
  const libc = /^\s*#\s*include\s*</m.test(source);
  return { wasi: command || libc, command };
}

/** Compiles one C guest to plain .wasm bytes. */
export function compileC(file: string, includes: string[]): Uint8Array {
  const { cmd } = clang();
  const source = readFileSync(file, 'utf8');
  const { wasi, command } = cNeedsWasi(source);
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-c-'));
  const out = join(dir, 'guest.wasm');
  const args = [
    ...(wasi ? ['--target=wasm32-wasi', `--sysroot=${wasiSysroot()}`] : ['--target=wasm32', '-nostdlib', '-ffreestanding']),
    '-mcpu=mvp', '-msign-ext', '-mmutable-globals', '-mnontrapping-fptoint',
    '-Oz', '-std=gnu11', '-Wall', '-Wextra', '-Werror',
    ...includes.map((i) => `-I${i}`),
    ...(wasi && !command ? ['-mexec-model=reactor'] : []),
    ...(wasi ? [] : ['-Wl,--no-entry', '-Wl,--allow-undefined']),
    ...LINK.map((l) => `-Wl,${l}`),
    '-o', out, file,
  ];
  try {
    const r = run(cmd, args);
    if (!r.ok) {
      if (/libclang_rt\.builtins-wasm32/.test(r.out)) throw new ToolchainMissing(`clang has no wasm32 builtins: apt-get install libclang-rt-dev-wasm32\n${r.out}`);
      throw new Error(`clang failed on ${file}:\n${r.out}`);
    }
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let rustcFound: { cmd: string; version: string } | undefined;

/** A rustc with wasm32-unknown-unknown's core library, or throws ToolchainMissing naming the packages. */
export function rustc(): { cmd: string; version: string } {
  if (rustcFound) return rustcFound;
  const candidates = process.env.GRIDLET_RUSTC ? [process.env.GRIDLET_RUSTC] : ['/usr/bin/rustc', 'rustc'];
  const tried: string[] = [];
  for (const cmd of candidates) {
    const v = run(cmd, ['--version']);
    if (!v.ok) {
      tried.push(`${cmd}: not found`);
      continue;
    }
    const sysroot = run(cmd, ['--print', 'sysroot']).out;
    const lib = join(sysroot, 'lib', 'rustlib', 'wasm32-unknown-unknown', 'lib');
    const hasCore = existsSync(lib) && readdirSync(lib).some((f) => f.startsWith('libcore-'));
    if (hasCore) return (rustcFound = { cmd, version: v.out.split('\n')[0] });
    tried.push(`${cmd} (${v.out.split('\n')[0]}): no wasm32-unknown-unknown target`);
  }
  throw new ToolchainMissing(`no rustc for wasm32-unknown-unknown (${tried.join('; ')}): apt-get install rustc libstd-rust-dev-wasm32, or set GRIDLET_RUSTC`);
}

const RUST_FLAGS = [
  '--edition', '2021', '--target', 'wasm32-unknown-unknown',
  '-C', 'opt-level=z', '-C', 'panic=abort', '-C', 'debuginfo=0', '-C', 'codegen-units=1',
  '-C', 'target-feature=+sign-ext,+mutable-globals,+nontrapping-fptoint',
  '--cap-lints', 'warn',
];

/**
 * Source paths rustc writes into the module (panic locations) are made relative to the checkout, so a
 * guest builds to the same bytes wherever the repository lies.
 */
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Compiles one Rust guest (a no_std crate) against the gridlet SDK crate, to plain .wasm bytes. */
export function compileRust(file: string, sdk: string, crate: string): Uint8Array {
  const { cmd } = rustc();
  const remap = ['--remap-path-prefix', `${REPO}=.`];
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-rs-'));
  try {
    const lib = join(dir, 'libgridlet.rlib');
    const a = run(cmd, [...RUST_FLAGS, ...remap, '--crate-type', 'rlib', '--crate-name', 'gridlet', '-o', lib, sdk]);
    if (!a.ok) throw new Error(`rustc failed on the SDK ${sdk}:\n${a.out}`);
    const out = join(dir, 'guest.wasm');
    const b = run(cmd, [
      ...RUST_FLAGS, ...remap, '--crate-type', 'cdylib', '--crate-name', crate, '-C', 'lto',
      ...LINK.map((l) => `-Clink-arg=${l}`),
      '--extern', `gridlet=${lib}`, '-o', out, file,
    ]);
    if (!b.ok) throw new Error(`rustc failed on ${file}:\n${b.out}`);
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The version line of a tool, for the build record; undefined when it is not there. */
export function toolVersion(which: 'clang' | 'rustc'): string | undefined {
  try {
    return which === 'clang' ? clang().version : rustc().version;
  } catch (e) {
    if (e instanceof ToolchainMissing) return undefined;
    throw e;
  }
}
