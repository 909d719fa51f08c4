// The guest module rules of GUESTS.md, checked on the bytes before anything runs them: on the meter
// (before wasm3 loads a guest), in `gridlet guest check`, and in the gateway's `POST /api/guests`.
// Every refusal carries a reason a developer can act on.

import { parseManifest, type GuestManifest, type Grants } from './manifest.js';
import { WASI_IMPORTS, WASI_MODULE } from './wasi.js';
import {
  analyzeBody, ExternKind, funcLabel, funcType, PAGE_BYTES, parseModule, PARSE_LIMIT_BYTES, signatureText,
  WasmError, type FuncType, type WasmModule,
} from './wasm.js';

/** A shipped guest is at most 4 KiB of .wasm (GUESTS.md "Size budget"). */
export const GUEST_MAX_BYTES = 4096;

const I32 = 0x7f;
const I64 = 0x7e;
const F64 = 0x7c;

/** The `gridlet` import table (GUESTS.md "Imports"), with each import's signature. */
export const GRIDLET_IMPORTS: { readonly [name: string]: FuncType } = {
  time: { params: [], results: [F64] },
  local_hour: { params: [], results: [I32] },
  weekday: { params: [], results: [I32] },
  channel: { params: [I32], results: [F64] },
  signal: { params: [I32], results: [F64] },
  relay: { params: [I32, I32], results: [I32] },
  relay_state: { params: [I32], results: [I32] },
  emit: { params: [I32, F64], results: [I32] },
  log: { params: [I32, I32], results: [] },
  kv_get: { params: [I32], results: [F64] },
  kv_set: { params: [I32, F64], results: [I32] },
};

export const USEGAS: FuncType = { params: [I64], results: [] };

/** Exports a guest must (or may) have, with signatures. */
export const GUEST_EXPORTS: { readonly [name: string]: FuncType } = {
  init: { params: [], results: [I32] },
  tick: { params: [], results: [I32] },
  on_signal: { params: [I32, F64], results: [] },
};

/** A one-shot job's entry point (a WASI command's `_start`), and a WASI reactor's initialiser. */
export const START_EXPORT = '_start';
export const INITIALIZE_EXPORT = '_initialize';
const NO_FUNC: FuncType = { params: [], results: [] };

/** Functions other members of a world export to a guest, by member name (GUESTS.md "Microworlds"). */
export type PeerExports = { readonly [member: string]: { readonly [name: string]: FuncType } };

function own<T>(o: { readonly [k: string]: T }, k: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined;
}

export interface GuestInfo {
  /** Bytes of .wasm. */
  size: number;
  /** The `gridlet` imports it uses. */
  imports: string[];
  /** The WASI functions it uses (GUESTS.md "WASI"). */
  wasi: string[];
  /** Functions of other world members it calls, as "member.name". */
  peers: string[];
  /** A one-shot job (exports `_start`) rather than a ticked guest (init, tick). */
  job: boolean;
  /** Exports `_initialize` (a WASI reactor), called before init. */
  hasInitialize: boolean;
  /** Imports it uses that its manifest grants nothing for: they will return -1 / NaN and be counted. */
  ungranted: string[];
  hasOnSignal: boolean;
  /** Defined functions. */
  functions: number;
  /** usegas calls that open a metered region (one per function and per loop). */
  meterPoints: number;
  /** Fuel the most expensive straight pass through one region costs. */
  maxRegionCost: number;
  memoryPages: number;
  /** First byte past the last data segment (what static data occupies). */
  dataEnd: number;
  grants: Grants;
}

export type GuestValidation = { ok: true; info: GuestInfo; manifest: GuestManifest } | { ok: false; reason: string };

export interface ValidateOptions {
  /** Size budget; default 4096 (GUESTS.md). */
  maxBytes?: number;
  /** In a world: what the other members export (module name = member name). */
  peers?: PeerExports;
}

function sameType(a: FuncType, b: FuncType): boolean {
  if (a.params.length !== b.params.length || a.results.length !== b.results.length) return false;
  for (let i = 0; i < a.params.length; i++) if (a.params[i] !== b.params[i]) return false;
  for (let i = 0; i < a.results.length; i++) if (a.results[i] !== b.results[i]) return false;
  return true;
}

/** Function index of `metering.usegas`, or -1. */
export function usegasIndex(m: WasmModule): number {
  let k = 0;
  for (const imp of m.imports) {
    if (imp.kind !== ExternKind.func) continue;
    if (imp.module === 'metering' && imp.name === 'usegas') return k;
    k++;
  }
  return -1;
}

function isGranted(name: string, g: Grants): boolean {
  switch (name) {
    case 'channel': return g.channelAll || g.channels.length > 0;
    case 'signal': return g.signalAll || g.signals.length > 0;
    case 'relay': return g.relays.length > 0;
    case 'emit': return g.emit;
    case 'kv_get': case 'kv_set': return g.kvSlots > 0;
    default: return true;
  }
}

/**
 * Checks a module against GUESTS.md and its manifest. Rules, in order:
 *  1. size ≤ 4096 bytes (options.maxBytes); nothing over 64 KiB is parsed at all;
 *  2. magic `\0asm`, version 1, known sections in order, each within the module and exactly filled
 *     by its entries (a truncated section or body is named);
 *  3. only what wasm3 runs: MVP, sign extension, non-trapping float-to-int (0xfc 0–7), multi-value,
 *     mutable globals. SIMD (0xfd, v128), threads (0xfe, shared memory), bulk memory (0xfc 8–11,
 *     passive data, data count), reference types (0xfc 12–17, table.get/set, ref.*, typed select,
 *     externref tables, non-zero call_indirect table), exceptions and tail calls are refused;
 *  4. imports: functions only, from `gridlet` with the names and signatures of the import table,
 *     `metering.usegas (i64) -> ()`, the WASI subset (wasi.ts; any other WASI function is refused by
 *     name) and, in a world, the functions other members export (options.peers); nothing else (no
 *     imported memory, table or global);
 *  5. exactly one memory, defined by the module, at most 1 page (minimum and any maximum), exported as
 *     `memory`; at most one table; active data segments at constant offsets within `memory_bytes`;
 *  6. exports `init () -> i32`, `tick () -> i32`, optionally `on_signal (i32, f64) -> ()` and
 *     `_initialize () -> ()`; or, for a one-shot job, `_start () -> ()` and none of those; `usegas` is
 *     neither exported nor placed in a table; a start function, if any, takes and returns nothing;
 *  7. metering: every function body and every loop body starts with `i64.const N; call $usegas` with N
 *     at least the static cost of that region (wasm.ts `analyzeBody`), and every other call to usegas
 *     follows an `i64.const` with N ≥ 0. A module that merely imports usegas fails here.
 */
export function validateGuest(bytes: Uint8Array, manifest: unknown, options: ValidateOptions = {}): GuestValidation {
  const mr = parseManifest(manifest);
  if (!mr.ok) return mr;
  const maxBytes = options.maxBytes ?? GUEST_MAX_BYTES;
  if (bytes.length > maxBytes) {
    return { ok: false, reason: `module is ${bytes.length} bytes; a guest is at most ${maxBytes} bytes (GUESTS.md size budget)` };
  }
  try {
    const info = check(bytes, mr.manifest, mr.grants, options.peers);
    return { ok: true, info, manifest: mr.manifest };
  } catch (e) {
    if (e instanceof WasmError) return { ok: false, reason: e.message };
    throw e;
  }
}

const WASI_NAMES = Object.keys(WASI_IMPORTS).join(', ');

function check(bytes: Uint8Array, manifest: GuestManifest, grants: Grants, peers: PeerExports | undefined): GuestInfo {
  const m = parseModule(bytes, Math.max(PARSE_LIMIT_BYTES, 0));

  // Imports.
  const used: string[] = [];
  const wasi: string[] = [];
  const peerCalls: string[] = [];
  for (const imp of m.imports) {
    const where = `import ${imp.module}.${imp.name}`;
    if (imp.kind !== ExternKind.func) {
      const kind = ['function', 'table', 'memory', 'global'][imp.kind];
      throw new WasmError(`${where} is a ${kind}; a guest imports only functions (it defines and exports its own memory)`);
    }
    const t = m.types[imp.type];
    if (imp.module === 'metering') {
      if (imp.name !== 'usegas') throw new WasmError(`${where} is unknown: the only metering import is metering.usegas`);
      if (!sameType(t, USEGAS)) throw new WasmError(`${where} has signature ${signatureText(t)}; it must be (i64) -> ()`);
      continue;
    }
    if (imp.module === WASI_MODULE) {
      const w = own(WASI_IMPORTS, imp.name);
      if (!w) {
        throw new WasmError(`${where} is a WASI function gridlet does not provide; a guest may use ${WASI_NAMES} (GUESTS.md "WASI")`);
      }
      if (!sameType(t, w)) throw new WasmError(`${where} has signature ${signatureText(t)}; WASI gives ${signatureText(w)}`);
      if (wasi.indexOf(imp.name) >= 0) throw new WasmError(`${where} is imported twice`);
      wasi.push(imp.name);
      continue;
    }
    if (imp.module.slice(0, 4) === 'wasi') {
      throw new WasmError(`${where} is from WASI module "${imp.module}"; gridlet provides a subset of ${WASI_MODULE} (build for wasm32-wasi, snapshot preview1)`);
    }
    const peer = peers ? own(peers, imp.module) : undefined;
    if (peer) {
      const p = own(peer, imp.name);
      if (!p) {
        const names = Object.keys(peer);
        throw new WasmError(`${where}: world member "${imp.module}" does not export "${imp.name}" to the others (it exports ${names.length ? names.join(', ') : 'nothing'})`);
      }
      if (!sameType(t, p)) throw new WasmError(`${where} has signature ${signatureText(t)}; member "${imp.module}" exports it as ${signatureText(p)}`);
      const label = `${imp.module}.${imp.name}`;
      if (peerCalls.indexOf(label) >= 0) throw new WasmError(`${where} is imported twice`);
      peerCalls.push(label);
      continue;
    }
    if (imp.module !== 'gridlet') {
      const others = peers && Object.keys(peers).length ? `, the members of its world (${Object.keys(peers).join(', ')})` : '';
      throw new WasmError(`${where} is from module "${imp.module}"; a guest imports only from "gridlet", "${WASI_MODULE}" (the WASI subset)${others} and metering.usegas`);
    }
    const want = own(GRIDLET_IMPORTS, imp.name);
    if (!want) {
      throw new WasmError(`${where} is not in the gridlet import table (${Object.keys(GRIDLET_IMPORTS).join(', ')})`);
    }
    if (!sameType(t, want)) {
      throw new WasmError(`${where} has signature ${signatureText(t)}; GUESTS.md gives ${signatureText(want)}`);
    }
    if (used.indexOf(imp.name) >= 0) throw new WasmError(`${where} is imported twice`);
    used.push(imp.name);
  }

  // Memory and tables.
  if (m.memories.length === 0) throw new WasmError('the module defines no memory; a guest defines one (at most 1 page) and exports it as "memory"');
  if (m.memories.length > 1) throw new WasmError(`the module defines ${m.memories.length} memories; a guest has at most one`);
  const mem = m.memories[0];
  const link = ' (C and Rust: link with --initial-memory=65536 --max-memory=65536)';
  if (mem.min > 1) throw new WasmError(`memory declares ${mem.min} pages initially; a guest declares at most 1 page (64 KiB)${link}`);
  if (mem.max !== undefined && mem.max > 1) throw new WasmError(`memory declares a maximum of ${mem.max} pages; a guest declares at most 1 page (64 KiB)${link}`);
  if (m.tables.length > 1) throw new WasmError(`the module defines ${m.tables.length} tables; at most one`);
  let dataEnd = 0;
  for (let i = 0; i < m.data.length; i++) {
    const d = m.data[i];
    if (d.offset === undefined) throw new WasmError(`data segment ${i} has a computed offset; a guest's data sits at constant offsets`);
    const end = (d.offset >>> 0) + d.size;
    if (end > manifest.memory_bytes) {
      throw new WasmError(`data segment ${i} ends at byte ${end}, past the manifest's memory_bytes ${manifest.memory_bytes}`);
    }
    if (end > dataEnd) dataEnd = end;
  }

  // Exports.
  let memoryExported = false;
  for (const e of m.exports) {
    if (e.name === 'memory') {
      if (e.kind !== ExternKind.memory) throw new WasmError('export "memory" is not the memory');
      memoryExported = true;
    }
  }
  if (!memoryExported) throw new WasmError('the module does not export its memory as "memory"');
  const exportedFunc = (name: string, want: FuncType): boolean => {
    const e = m.exports.find((x) => x.name === name);
    if (!e) return false;
    if (e.kind !== ExternKind.func) throw new WasmError(`export "${name}" is not a function`);
    const t = funcType(m, e.index)!;
    if (!sameType(t, want)) throw new WasmError(`export "${name}" has signature ${signatureText(t)}; GUESTS.md gives ${signatureText(want)}`);
    return true;
  };
  const job = exportedFunc(START_EXPORT, NO_FUNC);
  const hasInitialize = exportedFunc(INITIALIZE_EXPORT, NO_FUNC);
  for (const name of Object.keys(GUEST_EXPORTS)) {
    const has = exportedFunc(name, GUEST_EXPORTS[name]);
    if (job && has) {
      throw new WasmError(`the module exports both "${START_EXPORT}" and "${name}": a guest is either a one-shot job (${START_EXPORT}, a WASI command with a main) or ticked (init, tick); a ticked WASI guest is linked as a reactor (clang -mexec-model=reactor)`);
    }
    if (!job && !has && name !== 'on_signal') {
      throw new WasmError(`the module does not export "${name}"; a guest exports init () -> i32 and tick () -> i32 (or, as a one-shot job, ${START_EXPORT} () -> ())`);
    }
  }
  if (job && hasInitialize) throw new WasmError(`the module exports both "${START_EXPORT}" and "${INITIALIZE_EXPORT}": a WASI command or a reactor, not both`);
  const usegas = usegasIndex(m);
  if (usegas >= 0) {
    for (const e of m.exports) {
      if (e.kind === ExternKind.func && e.index === usegas) throw new WasmError(`export "${e.name}" re-exports metering.usegas`);
    }
    for (let i = 0; i < m.elements.length; i++) {
      if (m.elements[i].funcs.indexOf(usegas) >= 0) throw new WasmError(`element segment ${i} puts metering.usegas in a table (it could be called with any amount)`);
    }
  }
  if (m.start !== undefined) {
    const t = funcType(m, m.start)!;
    if (t.params.length || t.results.length) throw new WasmError(`start function ${m.start} has signature ${signatureText(t)}; it must be () -> ()`);
  }

  // Code: features and indices (analyzeBody throws), then metering coverage.
  const regions = m.bodies.map((_, i) => analyzeBody(m, i, usegas, false));
  if (usegas < 0) {
    throw new WasmError('the module is not metered: it does not import metering.usegas (build it with `gridlet guest build`, or add it through the gateway, which instruments it)');
  }
  let points = 0;
  let maxCost = 0;
  for (let i = 0; i < regions.length; i++) {
    const fi = m.funcImportCount + i;
    for (let k = 0; k < regions[i].length; k++) {
      const p = regions[i][k];
      const what = k === 0 ? `${funcLabel(m, fi)}` : `${funcLabel(m, fi)}: the loop at byte ${p.at}`;
      if (p.charged < 0) {
        throw new WasmError(`metering does not cover ${what}: it must start with \`i64.const N; call $usegas\``);
      }
      if (p.charged < p.cost) {
        throw new WasmError(`metering undercharges ${what}: usegas(${p.charged}) but its code costs ${p.cost}`);
      }
      if (p.cost > maxCost) maxCost = p.cost;
      points++;
    }
  }

  const ungranted: string[] = [];
  for (const name of used) if (!isGranted(name, grants)) ungranted.push(name);
  return {
    size: bytes.length,
    imports: used,
    wasi,
    peers: peerCalls,
    job,
    hasInitialize,
    ungranted,
    hasOnSignal: m.exports.some((e) => e.name === 'on_signal'),
    functions: m.funcs.length,
    meterPoints: points,
    maxRegionCost: maxCost,
    memoryPages: mem.min,
    dataEnd,
    grants,
  };
}

/** Page count needed for `bytes` of memory. */
export function pagesFor(bytes: number): number {
  return Math.ceil(bytes / PAGE_BYTES);
}
