// The host engine's exact memory cap (GUESTS.md "Module rules"): before Node compiles a guest, every
// load and store is rewritten into a call to a small helper that checks the effective address against
// the manifest's `memory_bytes` and only then performs the original access, and `memory.grow` into a
// helper that refuses growth past the cap. A breach records the address in an added i64 global and
// executes `unreachable`, which the engine turns into a memory GuestTrap. Bulk memory is refused by the
// validator, so loads, stores and grow are every way a guest can touch its memory.
//
// Exact: an access of n bytes at effective address ea = addr + offset (computed in 64 bits, so it cannot
// wrap) is allowed iff ea + n ≤ memory_bytes. Helpers are appended after the guest's own functions, so
// no index moves. With `inlineFuel` the metering pairs become inline checks on a fuel global (below).

import {
  ACCESS_BYTES, ACCESS_TYPE, decodeInstr, ExternKind, Instr, isLoad, isStore, parseModule, WasmError, WasmReader, type FuncType,
} from '../../firmware/core/guests/wasm.js';
import { copyInstr, rewriteModule, WasmWriter, writeLocals } from '../../guests/tools/wasm-writer.js';
import { usegasIndex } from '../../firmware/core/guests/validate.js';
import { BREACH_EXPORT, breachGlobal as breachGlobalEntry, capPages, GROW_TYPE, growHelper } from '../../firmware/core/guests/grow-guard.js';

/**
 * Export name of the breach global (grow-guard.ts): -1 none, ≥ 0 the offending address, -2 a refused
 * memory.grow (BREACH_GROW), -3 fuel spent.
 */
export { BREACH_EXPORT, BREACH_GROW } from '../../firmware/core/guests/grow-guard.js';
export const BREACH_FUEL = -3;
/** Export name of the fuel left in the current call (inline metering). */
export const FUEL_EXPORT = '__gridlet_fuel';
/**
 * The module's start function, exported instead of run by instantiation, so that the engine runs it
 * like any call: with its budget, and with a breach or fuel trap told apart from a plain trap.
 */
export const START_EXPORT = '__gridlet_start';

const I32 = 0x7f;
const I64 = 0x7e;

interface Helper { key: string; type: FuncType; body: Uint8Array }

export interface Guarded {
  wasm: Uint8Array;
  /** Memory accesses rewritten. */
  accesses: number;
  /** usegas pairs turned into inline fuel checks. */
  fuelPoints: number;
}

export interface GuardOptions {
  /**
   * Charge fuel inline instead of calling the usegas import: every `i64.const N; call $usegas` pair
   * becomes `fuel -= N; if (fuel < 0) trap` on an exported i32 global the engine loads with the
   * call's budget (budgets are at most 10^7). Same points, same amounts, same trap as the import; no call into JS per region.
   */
  inlineFuel?: boolean;
}

/** Rewrites `bytes` so that it cannot touch memory at or past `memoryBytes` (and, optionally, meters inline). */
export function guardMemory(bytes: Uint8Array, memoryBytes: number, options: GuardOptions = {}): Guarded {
  const m = parseModule(bytes);
  // Data the cap puts out of reach is refused at load, as wasm3 refuses it (its memory ends at the cap).
  for (let i = 0; i < m.data.length; i++) {
    const d = m.data[i];
    if (d.offset !== undefined && (d.offset >>> 0) + d.size > memoryBytes) {
      throw new WasmError(`data segment ${i} ends at byte ${(d.offset >>> 0) + d.size}, past memory_bytes ${memoryBytes}`);
    }
  }
  if (m.memories.length === 0) {
    // No memory to guard; a start function is still exported, to run on its budget.
    if (m.start === undefined) return { wasm: bytes, accesses: 0, fuelPoints: 0 };
    const wasm = rewriteModule(m, { addExports: [{ name: START_EXPORT, kind: ExternKind.func, index: m.start }], dropStart: true });
    return { wasm, accesses: 0, fuelPoints: 0 };
  }
  const importedGlobals = m.imports.filter((i) => i.kind === ExternKind.global).length;
  const breachGlobal = importedGlobals + m.globals.length;
  const fuelGlobal = breachGlobal + 1;
  const usegas = options.inlineFuel ? usegasIndex(m) : -1;
  const firstHelper = m.funcImportCount + m.funcs.length;
  const helpers: Helper[] = [];
  const index = new Map<string, number>();

  const helperFor = (op: number, align: number, offset: number): number => {
    const key = op === 0x40 ? 'grow' : `${op}:${align}:${offset}`;
    const known = index.get(key);
    if (known !== undefined) return known;
    const w = new WasmWriter(64);
    let type: FuncType;
    if (op === 0x40) {
      type = GROW_TYPE;
      w.bytes(growHelper(capPages(memoryBytes), m.memories[0].max, breachGlobal));
    } else {
      w.u8(0); // no locals
      const size = ACCESS_BYTES[op - 0x28];
      const vt = ACCESS_TYPE[op - 0x28];
      type = isLoad(op) ? { params: [I32], results: [vt] } : { params: [I32, vt], results: [] };
      // if (u64(addr) + offset + size > cap) { breach = u64(addr) + offset; unreachable }
      w.u8(0x20).u8(0).u8(0xad).u8(0x42).sleb(offset + size).u8(0x7c).u8(0x42).sleb(memoryBytes).u8(0x56);
      w.u8(0x04).u8(0x40);
      w.u8(0x20).u8(0).u8(0xad).u8(0x42).sleb(offset).u8(0x7c).u8(0x24).u32(breachGlobal).u8(0x00);
      w.u8(0x0b);
      w.u8(0x20).u8(0);
      if (isStore(op)) w.u8(0x20).u8(1);
      w.u8(op).u32(align).u32(offset);
      w.u8(0x0b);
    }
    const i = firstHelper + helpers.length;
    helpers.push({ key, type, body: w.result() });
    index.set(key, i);
    return i;
  };

  let accesses = 0;
  let fuelPoints = 0;
  const bodies: Uint8Array[] = [];
  const ins = new Instr();
  const next = new Instr();
  for (const b of m.bodies) {
    const out = new WasmWriter(b.end - b.entryStart + 32);
    writeLocals(b, out);
    const r = new WasmReader(m.bytes, b.codeStart, b.end);
    while (r.pos < r.end) {
      decodeInstr(r, ins);
      if (usegas >= 0 && ins.op === 0x42 && r.pos < r.end && m.bytes[r.pos] === 0x10) {
        const save = r.pos;
        decodeInstr(r, next);
        if (next.a === usegas) {
          // fuel -= N; if (fuel < 0) { breach = -3; unreachable }   (i32: budgets are at most 10^7,
          // and a charge over 2^30 exhausts any budget, so clamping it changes nothing)
          const n = Math.min(ins.a, 2 ** 30);
          out.u8(0x23).u32(fuelGlobal).u8(0x41).sleb(n).u8(0x6b).u8(0x24).u32(fuelGlobal);
          out.u8(0x23).u32(fuelGlobal).u8(0x41).u8(0).u8(0x48);
          out.u8(0x04).u8(0x40).u8(0x42).sleb(BREACH_FUEL).u8(0x24).u32(breachGlobal).u8(0x00).u8(0x0b);
          fuelPoints++;
          continue;
        }
        r.pos = save;
      }
      if ((ins.op >= 0x28 && ins.op <= 0x3e) || ins.op === 0x40) {
        out.u8(0x10).u32(helperFor(ins.op, ins.a, ins.b));
        accesses++;
      } else {
        copyInstr(m, ins, out, (f) => f);
      }
    }
    bodies.push(out.result());
  }

  // Helper types are appended after the module's own.
  const addTypes: FuncType[] = [];
  const typeOf = (t: FuncType): number => {
    for (let i = 0; i < addTypes.length; i++) {
      const a = addTypes[i];
      if (a.params.join() === t.params.join() && a.results.join() === t.results.join()) return m.types.length + i;
    }
    addTypes.push(t);
    return m.types.length + addTypes.length - 1;
  };
  const addFuncs = helpers.map((h) => ({ type: typeOf(h.type), body: h.body }));
  const wasm = rewriteModule(m, {
    addTypes,
    addFuncs,
    addGlobals: [
      breachGlobalEntry(), // breach: (mut i64) (i64.const -1)
      ...(usegas >= 0 ? [new Uint8Array([I32, 0x01, 0x41, 0x00, 0x0b])] : []), // fuel left in this call: (mut i32)
    ],
    addExports: [
      { name: BREACH_EXPORT, kind: ExternKind.global, index: breachGlobal },
      ...(usegas >= 0 ? [{ name: FUEL_EXPORT, kind: ExternKind.global, index: fuelGlobal }] : []),
      ...(m.start !== undefined ? [{ name: START_EXPORT, kind: ExternKind.func, index: m.start }] : []),
    ],
    dropStart: true,
    rewriteBody: (i, _b, out) => {
      out.bytes(bodies[i]);
    },
  });
  return { wasm, accesses, fuelPoints };
}
