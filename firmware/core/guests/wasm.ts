// The WebAssembly binary format, as far as gridlet needs it: a bounded module parser, an instruction
// decoder that knows exactly the opcodes wasm3 runs (GUESTS.md "Module rules"), the static cost model
// the metering uses, and a small writer for tools that rewrite modules (instrumenter, host engine).
// No WebAssembly API: this runs on XS.

/** Section ids (WebAssembly core spec §5.5.2). */
export const Section = {
  custom: 0, type: 1, import: 2, function: 3, table: 4, memory: 5, global: 6, export: 7, start: 8,
  element: 9, code: 10, data: 11, dataCount: 12,
} as const;

export const SECTION_NAMES = [
  'custom', 'type', 'import', 'function', 'table', 'memory', 'global', 'export', 'start', 'element', 'code',
  'data', 'data count',
];

/** The order non-custom sections must appear in (data count, id 12, sits between element and code). */
export const SECTION_RANK = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 10];

export const ValType = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c } as const;
export const ExternKind = { func: 0, table: 1, memory: 2, global: 3 } as const;
const KIND_NAMES = ['function', 'table', 'memory', 'global'];

export const PAGE_BYTES = 65536;
/** Nothing bigger is even parsed (a shipped guest is at most 4 KiB; see validate.ts). */
export const PARSE_LIMIT_BYTES = 65536;
const MAX_LOCALS = 1024;
const MAX_NESTING = 256;
const MAX_ENTRIES = 4096;

/** Writes `n` (an integer, 0 ≤ n < 2^53) as unsigned LEB128, one byte at a time to `put`. */
export function putUleb(n: number, put: (byte: number) => void): void {
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    put(b);
  } while (n > 0);
}

/** Writes `n` (an integer in the safe range) as signed LEB128, one byte at a time to `put`. */
export function putSleb(n: number, put: (byte: number) => void): void {
  for (;;) {
    const b = ((n % 128) + 128) % 128;
    n = Math.floor(n / 128);
    const done = (n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0);
    put(done ? b : b | 0x80);
    if (done) return;
  }
}

/** A module that is malformed or uses something gridlet does not run. The message is the reason. */
export class WasmError extends Error {
  constructor(message: string) {
    super(message);
  }
}
// On a meter Error.prototype is frozen, so `this.name = …` in the constructor would throw there.
Object.defineProperty(WasmError.prototype, 'name', { value: 'WasmError' });

export function valTypeName(t: number): string {
  switch (t) {
    case 0x7f: return 'i32';
    case 0x7e: return 'i64';
    case 0x7d: return 'f32';
    case 0x7c: return 'f64';
    case 0x7b: return 'v128';
    case 0x70: return 'funcref';
    case 0x6f: return 'externref';
    default: return `0x${t.toString(16)}`;
  }
}

export function signatureText(t: FuncType): string {
  const p = t.params.map(valTypeName).join(', ');
  const r = t.results.map(valTypeName).join(', ');
  return `(${p}) -> (${r})`;
}

export function hex(n: number): string {
  return '0x' + n.toString(16);
}

// ---------------------------------------------------------------- reader

export class WasmReader {
  pos: number;
  end: number;
  constructor(readonly bytes: Uint8Array, start = 0, end = bytes.length) {
    this.pos = start;
    this.end = end;
  }
  fail(what: string): never {
    throw new WasmError(`${what} at byte ${this.pos}`);
  }
  u8(): number {
    if (this.pos >= this.end) this.fail('unexpected end of data');
    return this.bytes[this.pos++];
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.u8();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (result > 0xffffffff) this.fail('u32 out of range');
        return result;
      }
      shift += 7;
    }
    this.fail('u32 longer than 5 bytes');
  }
  /** A signed LEB128 of at most `bits` bits, as a number (exact up to 2^53). */
  sleb(bits: number): number {
    let result = 0;
    let shift = 0;
    const maxBytes = Math.ceil(bits / 7);
    for (let i = 0; i < maxBytes; i++) {
      const b = this.u8();
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) {
        if (b & 0x40 && shift < 64) result -= 2 ** shift;
        else if (b & 0x40) result -= 2 ** 64; // only reachable with 10-byte i64 encodings
        return result;
      }
    }
    this.fail(`signed integer longer than ${maxBytes} bytes`);
  }
  skip(n: number): void {
    if (n > this.end - this.pos) this.fail(`${n} bytes declared but only ${this.end - this.pos} remain`);
    this.pos += n;
  }
  name(): string {
    const n = this.u32();
    const start = this.pos;
    this.skip(n);
    let s = '';
    for (let i = start; i < start + n; i++) {
      const b = this.bytes[i];
      // Names gridlet cares about are ASCII; anything else is kept visible but harmless.
      s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '\\x' + (b < 16 ? '0' : '') + b.toString(16);
    }
    return s;
  }
  count(what: string): number {
    const n = this.u32();
    if (n > MAX_ENTRIES) this.fail(`${what}: ${n} entries is more than a guest may have (${MAX_ENTRIES})`);
    return n;
  }
}

// ---------------------------------------------------------------- module structure

export interface FuncType { params: number[]; results: number[] }
export interface Import { module: string; name: string; kind: number; /** type index for functions */ type: number }
export interface Export { name: string; kind: number; index: number }
export interface Limits { min: number; max: number | undefined; flags: number }
export interface Global { type: number; mutable: boolean; /** init expression bytes [start, end) incl. `end` */ start: number; end: number }
export interface ElementSegment { table: number; offset: number | undefined; funcs: number[]; start: number; end: number }
export interface DataSegment { memory: number; offset: number | undefined; size: number; start: number; end: number }
export interface FunctionBody {
  /** The entry's first byte (its size field) and the byte after it. */
  entryStart: number;
  end: number;
  /** First instruction byte (after the locals). */
  codeStart: number;
  /** Local declarations [count, type] as written; `localCount` includes the parameters. */
  localGroups: [number, number][];
  localCount: number;
}
export interface SectionSpan { id: number; start: number; end: number; /** content start (after id and size) */ content: number }

export interface WasmModule {
  bytes: Uint8Array;
  sections: SectionSpan[];
  types: FuncType[];
  imports: Import[];
  funcImportCount: number;
  /** Type index of each defined function (index space: after the function imports). */
  funcs: number[];
  tables: Limits[];
  memories: Limits[];
  globals: Global[];
  exports: Export[];
  start: number | undefined;
  elements: ElementSegment[];
  data: DataSegment[];
  bodies: FunctionBody[];
  customs: { name: string; start: number; end: number }[];
}

/** Type of function `index` in the whole index space (imports first). */
export function funcType(m: WasmModule, index: number): FuncType | undefined {
  if (index < m.funcImportCount) {
    let k = 0;
    for (const imp of m.imports) {
      if (imp.kind !== ExternKind.func) continue;
      if (k++ === index) return m.types[imp.type];
    }
    return undefined;
  }
  const t = m.funcs[index - m.funcImportCount];
  return t === undefined ? undefined : m.types[t];
}

/** Describes a function for a reason text: its export name when it has one. */
export function funcLabel(m: WasmModule, index: number): string {
  for (const e of m.exports) if (e.kind === ExternKind.func && e.index === index) return `function ${index} (export "${e.name}")`;
  return `function ${index}`;
}

function readValType(r: WasmReader, what: string): number {
  const t = r.u8();
  if (t === 0x7f || t === 0x7e || t === 0x7d || t === 0x7c) return t;
  if (t === 0x7b) throw new WasmError(`${what} uses v128 (SIMD), which wasm3 does not run`);
  if (t === 0x70 || t === 0x6f) throw new WasmError(`${what} uses ${valTypeName(t)} (reference types), which wasm3 does not run`);
  throw new WasmError(`${what} has unknown value type ${hex(t)} at byte ${r.pos - 1}`);
}

function readLimits(r: WasmReader, what: string): Limits {
  const flags = r.u8();
  if (flags & 0x02) throw new WasmError(`${what} is shared (threads), which wasm3 does not run`);
  if (flags & 0x04) throw new WasmError(`${what} is 64-bit (memory64), which wasm3 does not run`);
  if (flags > 1) throw new WasmError(`${what} has unknown limits flags ${hex(flags)}`);
  const min = r.u32();
  const max = flags & 1 ? r.u32() : undefined;
  if (max !== undefined && max < min) throw new WasmError(`${what} has maximum ${max} below its minimum ${min}`);
  return { min, max, flags };
}

/**
 * Reads a constant expression (`i32.const N end`, `global.get`, …). Returns the i32 value when it is
 * a plain `i32.const`, undefined otherwise.
 */
export function readConstExpr(r: WasmReader, what: string): number | undefined {
  const op = r.u8();
  let value: number | undefined;
  switch (op) {
    case 0x41: value = r.sleb(32); break;
    case 0x42: r.sleb(64); break;
    case 0x43: r.skip(4); break;
    case 0x44: r.skip(8); break;
    case 0x23: r.u32(); break;
    case 0xd0: case 0xd2:
      throw new WasmError(`${what} uses reference types, which wasm3 does not run`);
    case 0xfd:
      throw new WasmError(`${what} uses SIMD (0xfd prefix), which wasm3 does not run`);
    default:
      throw new WasmError(`${what}: ${hex(op)} is not a constant instruction at byte ${r.pos - 1}`);
  }
  if (r.u8() !== 0x0b) throw new WasmError(`${what}: constant expression is not a single instruction ending in \`end\``);
  return value;
}

/**
 * Parses a module's structure: magic, version, section order and bounds, every section's entries and
 * every function body's local declarations. Instructions are decoded separately (`decodeInstr`).
 * Throws WasmError with the reason.
 */
export function parseModule(bytes: Uint8Array, maxBytes = PARSE_LIMIT_BYTES): WasmModule {
  if (bytes.length > maxBytes) {
    throw new WasmError(`module is ${bytes.length} bytes; the limit is ${maxBytes}`);
  }
  if (bytes.length < 8) throw new WasmError(`not a WebAssembly module: ${bytes.length} bytes is shorter than the 8-byte header`);
  if (bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new WasmError('not a WebAssembly module: bad magic (expected 00 61 73 6d, "\\0asm")');
  }
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new WasmError(`unsupported WebAssembly version ${bytes[4] | (bytes[5] << 8)} (expected 1)`);
  }
  const m: WasmModule = {
    bytes, sections: [], types: [], imports: [], funcImportCount: 0, funcs: [], tables: [], memories: [],
    globals: [], exports: [], start: undefined, elements: [], data: [], bodies: [], customs: [],
  };
  const r = new WasmReader(bytes, 8);
  let lastRank = 0;
  let codeCount: number | undefined;
  while (r.pos < bytes.length) {
    const start = r.pos;
    const id = r.u8();
    if (id > 12) throw new WasmError(`unknown section id ${id} at byte ${start}`);
    const size = r.u32();
    const content = r.pos;
    if (size > bytes.length - content) {
      throw new WasmError(`truncated: ${SECTION_NAMES[id]} section at byte ${start} declares ${size} bytes but only ${bytes.length - content} remain`);
    }
    const end = content + size;
    if (id !== Section.custom) {
      const rank = SECTION_RANK[id];
      if (rank <= lastRank) {
        throw new WasmError(`${SECTION_NAMES[id]} section at byte ${start} is out of order or repeated`);
      }
      lastRank = rank;
    }
    m.sections.push({ id, start, end, content });
    const s = new WasmReader(bytes, content, end);
    const what = `${SECTION_NAMES[id]} section`;
    switch (id) {
      case Section.custom: {
        const name = s.name();
        m.customs.push({ name, start, end });
        s.pos = end;
        break;
      }
      case Section.type: {
        const n = s.count(what);
        for (let i = 0; i < n; i++) {
          const form = s.u8();
          if (form !== 0x60) throw new WasmError(`type ${i} is not a function type (form ${hex(form)}) at byte ${s.pos - 1}`);
          const params: number[] = [];
          const np = s.count(`type ${i} parameters`);
          for (let k = 0; k < np; k++) params.push(readValType(s, `type ${i}`));
          const results: number[] = [];
          const nr = s.count(`type ${i} results`);
          for (let k = 0; k < nr; k++) results.push(readValType(s, `type ${i}`));
          m.types.push({ params, results });
        }
        break;
      }
      case Section.import: {
        const n = s.count(what);
        for (let i = 0; i < n; i++) {
          const module = s.name();
          const name = s.name();
          const kind = s.u8();
          let type = -1;
          if (kind === ExternKind.func) {
            type = s.u32();
            if (type >= m.types.length) throw new WasmError(`import ${module}.${name} names type ${type}, which does not exist`);
            m.funcImportCount++;
          } else if (kind === ExternKind.table) {
            s.u8();
            readLimits(s, `imported table ${module}.${name}`);
          } else if (kind === ExternKind.memory) {
            readLimits(s, `imported memory ${module}.${name}`);
          } else if (kind === ExternKind.global) {
            readValType(s, `imported global ${module}.${name}`);
            s.u8();
          } else {
            throw new WasmError(`import ${module}.${name} has unknown kind ${kind}${kind === 4 ? ' (a tag: exceptions, which wasm3 does not run)' : ''}`);
          }
          m.imports.push({ module, name, kind, type });
        }
        break;
      }
      case Section.function: {
        const n = s.count(what);
        for (let i = 0; i < n; i++) {
          const t = s.u32();
          if (t >= m.types.length) throw new WasmError(`function ${m.funcImportCount + i} names type ${t}, which does not exist`);
          m.funcs.push(t);
        }
        break;
      }
      case Section.table: {
        const n = s.count(what);
        for (let i = 0; i < n; i++) {
          const et = s.u8();
          if (et !== 0x70) throw new WasmError(`table ${i} holds ${valTypeName(et)} (reference types), which wasm3 does not run`);
          m.tables.push(readLimits(s, `table ${i}`));
        }
        break;
      }
      case Section.memory: {
        const n = s.count(what);
        for (let i = 0; i < n; i++) m.memories.push(readLimits(s, `memory ${i}`));
        break;
      }
      case Section.global: {
        const n = s.count(what);
        for (let i = 0; i < n; i++) {
          const type = readValType(s, `global ${i}`);
          const mut = s.u8();
          if (mut > 1) throw new WasmError(`global ${i} has bad mutability ${mut}`);
          const gs = s.pos;
          readConstExpr(s, `global ${i} initializer`);
          m.globals.push({ type, mutable: mut === 1, start: gs, end: s.pos });
        }
        break;
      }
      case Section.export: {
        const n = s.count(what);
        for (let i = 0; i < n; i++) {
          const name = s.name();
          const kind = s.u8();
          if (kind > 3) throw new WasmError(`export "${name}" has unknown kind ${kind}`);
          const index = s.u32();
          for (const e of m.exports) if (e.name === name) throw new WasmError(`export "${name}" appears twice`);
          m.exports.push({ name, kind, index });
        }
        break;
      }
      case Section.start:
        m.start = s.u32();
        break;
      case Section.element: {
        const n = s.count(what);
        for (let i = 0; i < n; i++) {
          const es = s.pos;
          const flags = s.u32();
          if (flags !== 0) {
            throw new WasmError(`element segment ${i} uses form ${flags} (bulk memory / reference types), which wasm3 does not run`);
          }
          const offset = readConstExpr(s, `element segment ${i} offset`);
          const count = s.count(`element segment ${i}`);
          const funcs: number[] = [];
          for (let k = 0; k < count; k++) funcs.push(s.u32());
          m.elements.push({ table: 0, offset, funcs, start: es, end: s.pos });
        }
        break;
      }
      case Section.dataCount:
        throw new WasmError('module has a data count section (bulk memory), which wasm3 does not run');
      case Section.code: {
        const n = s.count(what);
        codeCount = n;
        for (let i = 0; i < n; i++) {
          const entryStart = s.pos;
          const bodySize = s.u32();
          const bodyStart = s.pos;
          if (bodySize > end - bodyStart) {
            throw new WasmError(`truncated: body of function ${m.funcImportCount + i} at byte ${entryStart} declares ${bodySize} bytes but only ${end - bodyStart} remain in the code section`);
          }
          const b = new WasmReader(bytes, bodyStart, bodyStart + bodySize);
          const groups = b.count(`function ${m.funcImportCount + i} locals`);
          const t = m.funcs[i];
          let localCount = t === undefined ? 0 : m.types[t].params.length;
          const localGroups: [number, number][] = [];
          for (let g = 0; g < groups; g++) {
            const c = b.u32();
            const vt = readValType(b, `function ${m.funcImportCount + i} locals`);
            localCount += c;
            if (localCount > MAX_LOCALS) throw new WasmError(`function ${m.funcImportCount + i} declares more than ${MAX_LOCALS} locals`);
            localGroups.push([c, vt]);
          }
          m.bodies.push({ entryStart, end: bodyStart + bodySize, codeStart: b.pos, localGroups, localCount });
          s.pos = bodyStart + bodySize;
        }
        break;
      }
      case Section.data: {
        const n = s.count(what);
        for (let i = 0; i < n; i++) {
          const ds = s.pos;
          const flags = s.u32();
          if (flags === 1 || flags === 2) throw new WasmError(`data segment ${i} is ${flags === 1 ? 'passive' : 'explicitly indexed'} (bulk memory), which wasm3 does not run`);
          if (flags !== 0) throw new WasmError(`data segment ${i} has unknown flags ${flags}`);
          const offset = readConstExpr(s, `data segment ${i} offset`);
          const size = s.u32();
          s.skip(size);
          m.data.push({ memory: 0, offset, size, start: ds, end: s.pos });
        }
        break;
      }
    }
    if (s.pos !== end) {
      throw new WasmError(`${what} at byte ${start}: declared size ${size} but its entries end at ${s.pos - content}`);
    }
    r.pos = end;
  }
  if (m.funcs.length !== (codeCount ?? 0)) {
    throw new WasmError(`truncated: ${m.funcs.length} functions declared but ${codeCount ?? 0} bodies present`);
  }
  const totalFuncs = m.funcImportCount + m.funcs.length;
  for (const e of m.exports) {
    const limit = [totalFuncs, m.tables.length, m.memories.length, m.globals.length][e.kind];
    if (e.index >= limit) throw new WasmError(`export "${e.name}" names ${KIND_NAMES[e.kind]} ${e.index}, which does not exist`);
  }
  if (m.start !== undefined && m.start >= totalFuncs) throw new WasmError(`start function ${m.start} does not exist`);
  for (let i = 0; i < m.elements.length; i++) {
    if (m.tables.length === 0) throw new WasmError(`element segment ${i} but the module has no table`);
    for (const f of m.elements[i].funcs) if (f >= totalFuncs) throw new WasmError(`element segment ${i} names function ${f}, which does not exist`);
  }
  if (m.data.length && m.memories.length === 0) throw new WasmError('data segments but the module has no memory');
  return m;
}

// ---------------------------------------------------------------- instructions

/** Combined opcode for prefixed instructions: 0xfc00 | sub-opcode. */
export const FC = 0xfc00;

/** One decoded instruction. Reused between calls: read what you need before decoding the next. */
export class Instr {
  op = 0;
  start = 0;
  end = 0;
  /** First immediate: index, block type (-0x40 style: value type byte, or a type index ≥ 0), const value, memarg align. */
  a = 0;
  /** Second immediate: memarg offset, call_indirect table. */
  b = 0;
}

/** Block type immediates are stored as a negative marker for the byte forms. */
export const BLOCK_EMPTY = -0x40;

function rejectFeature(op: number, at: number): never {
  let what: string;
  if (op === 0xfd) what = 'SIMD (0xfd prefix)';
  else if (op === 0xfe) what = 'threads/atomics (0xfe prefix)';
  else if (op >= FC + 8 && op <= FC + 11) what = `bulk memory (0xfc ${op - FC})`;
  else if (op >= FC + 12 && op <= FC + 17) what = `bulk memory / reference types table operations (0xfc ${op - FC})`;
  else if (op === 0x1c || op === 0x25 || op === 0x26 || (op >= 0xd0 && op <= 0xd6)) what = `reference types (opcode ${hex(op)})`;
  else if ((op >= 0x06 && op <= 0x0a) || op === 0x18 || op === 0x19 || op === 0x1f) what = `exceptions (opcode ${hex(op)})`;
  else if (op === 0x12 || op === 0x13 || op === 0x14 || op === 0x15) what = `tail calls / typed function references (opcode ${hex(op)})`;
  else if (op >= FC) throw new WasmError(`unknown instruction 0xfc ${op - FC} at byte ${at}`);
  else throw new WasmError(`unknown opcode ${hex(op)} at byte ${at}`);
  throw new WasmError(`uses ${what} at byte ${at}, which wasm3 does not run`);
}

function readBlockType(r: WasmReader): number {
  const b = r.bytes[r.pos];
  if (b === 0x40) { r.pos++; return BLOCK_EMPTY; }
  if (b === 0x7f || b === 0x7e || b === 0x7d || b === 0x7c) { r.pos++; return -b; }
  if (b === 0x7b) r.fail('block type v128 (SIMD), which wasm3 does not run,');
  if (b === 0x70 || b === 0x6f) r.fail('block type with reference types, which wasm3 does not run,');
  const t = r.sleb(33);
  if (t < 0) r.fail(`bad block type ${t}`);
  return t; // a type index (multi-value)
}

/**
 * Decodes the instruction at `r.pos` into `ins` and advances past it. Accepts exactly the MVP,
 * sign-extension (0xc0–0xc4) and non-trapping float-to-int (0xfc 0–7); multi-value block types.
 * Throws WasmError naming the feature otherwise.
 */
export function decodeInstr(r: WasmReader, ins: Instr): void {
  ins.start = r.pos;
  let op = r.u8();
  ins.a = 0;
  ins.b = 0;
  if (op <= 0x11) {
    switch (op) {
      case 0x00: case 0x01: case 0x05: case 0x0b: case 0x0f: break;
      case 0x02: case 0x03: case 0x04: ins.a = readBlockType(r); break;
      case 0x0c: case 0x0d: case 0x10: ins.a = r.u32(); break;
      case 0x0e: {
        const n = r.u32();
        if (n > MAX_ENTRIES) r.fail(`br_table with ${n} targets`);
        let max = 0;
        for (let i = 0; i <= n; i++) { const d = r.u32(); if (d > max) max = d; }
        ins.a = max; // deepest label, for the depth check
        break;
      }
      case 0x11: {
        ins.a = r.u32();
        ins.b = r.u8();
        if (ins.b !== 0) r.fail('call_indirect on a table other than 0 (reference types), which wasm3 does not run,');
        break;
      }
      default: rejectFeature(op, ins.start);
    }
  } else if (op === 0x1a || op === 0x1b) {
    // drop, select
  } else if (op >= 0x20 && op <= 0x24) {
    ins.a = r.u32();
  } else if (op >= 0x28 && op <= 0x3e) {
    ins.a = r.u32(); // align (log2)
    ins.b = r.u32(); // offset
  } else if (op === 0x3f || op === 0x40) {
    if (r.u8() !== 0) r.fail(`${op === 0x3f ? 'memory.size' : 'memory.grow'} on a memory other than 0`);
  } else if (op === 0x41) {
    ins.a = r.sleb(32);
  } else if (op === 0x42) {
    ins.a = r.sleb(64);
  } else if (op === 0x43) {
    r.skip(4);
  } else if (op === 0x44) {
    r.skip(8);
  } else if (op >= 0x45 && op <= 0xc4) {
    // numeric, conversions, reinterpretations, sign extension
  } else if (op === 0xfc) {
    op = FC + r.u32();
    if (op > FC + 7) rejectFeature(op, ins.start);
  } else {
    rejectFeature(op, ins.start);
  }
  ins.op = op;
  ins.end = r.pos;
}

/** Bytes touched by a load or store opcode (0x28–0x3e). */
export const ACCESS_BYTES = [4, 8, 4, 8, 1, 1, 2, 2, 1, 1, 2, 2, 4, 4, 4, 8, 4, 8, 1, 2, 1, 2, 4];
/** Value type loaded or stored by opcodes 0x28–0x3e. */
export const ACCESS_TYPE = [
  0x7f, 0x7e, 0x7d, 0x7c, 0x7f, 0x7f, 0x7f, 0x7f, 0x7e, 0x7e, 0x7e, 0x7e, 0x7e, 0x7e,
  0x7f, 0x7e, 0x7d, 0x7c, 0x7f, 0x7f, 0x7e, 0x7e, 0x7e,
];
export function isLoad(op: number): boolean { return op >= 0x28 && op <= 0x35; }
export function isStore(op: number): boolean { return op >= 0x36 && op <= 0x3e; }

// ---------------------------------------------------------------- metering cost model

/**
 * Fuel charged for one instruction. Every instruction costs 1: simple, identical on every engine, and
 * what `usegas` amounts are checked against. The leading `i64.const N; call $usegas` pair of a
 * metered region is not charged.
 */
export function instrCost(_op: number): number {
  return 1;
}

/**
 * The metered regions of one function: region 0 is the function body, then one per `loop`, in order of
 * appearance. An instruction belongs to its innermost enclosing loop (or the function). A region's
 * cost is the sum of its instructions, including every branch of every `if`: an upper bound of what one
 * pass through it executes, since only a branch back to a loop header (which charges again) can repeat
 * an instruction.
 */
export interface MeterPoint {
  /** Byte where the region's code starts (function code start, or just after the `loop` block type). */
  at: number;
  /** Its static cost. */
  cost: number;
  /** The amount its leading usegas pair charges, or -1 when it has none. */
  charged: number;
  /** Byte just past the leading pair (= `at` when there is none). */
  after: number;
}

// ---------------------------------------------------------------- body analysis

const CTRL_BLOCK = 0;
const CTRL_LOOP = 1;
const CTRL_IF = 2;

/**
 * Walks one function body: decodes every instruction (rejecting features wasm3 does not run), checks
 * indices and nesting, and returns the metered regions with their static cost.
 *
 * `usegas` is the function index of `metering.usegas` (-1 when not imported). With `stripPairs` every
 * `i64.const N; call $usegas` pair is treated as absent (the instrumenter re-meters from scratch);
 * otherwise only a region's leading pair is exempt from its cost, and any other call to usegas must
 * directly follow an `i64.const` with a non-negative amount (no refunds, no computed amounts).
 */
export function analyzeBody(m: WasmModule, index: number, usegas: number, stripPairs: boolean): MeterPoint[] {
  const b = m.bodies[index];
  const fi = m.funcImportCount + index;
  const label = (): string => funcLabel(m, fi);
  const totalFuncs = m.funcImportCount + m.funcs.length;
  const totalGlobals = m.globals.length + m.imports.filter((x) => x.kind === ExternKind.global).length;
  const r = new WasmReader(m.bytes, b.codeStart, b.end);
  const ins = new Instr();
  const peek = new Instr();
  const regions: MeterPoint[] = [];
  const ctrlKind: number[] = [];
  const ctrlRegion: number[] = [];
  let region = 0;
  let prevOp = -1;
  let prevA = 0;

  // Is there an `i64.const N; call $usegas` pair at r.pos? Leaves r.pos after it when there is.
  const pairAt = (): number => {
    if (usegas < 0 || r.pos >= r.end || m.bytes[r.pos] !== 0x42) return -1;
    const save = r.pos;
    decodeInstr(r, peek);
    const n = peek.a;
    if (r.pos < r.end && m.bytes[r.pos] === 0x10) {
      decodeInstr(r, peek);
      if (peek.a === usegas) return n;
    }
    r.pos = save;
    return -1;
  };
  const open = (): void => {
    const at = r.pos;
    let charged = pairAt();
    if (stripPairs) {
      while (charged !== -1) charged = pairAt();
    }
    regions.push({ at, cost: 0, charged, after: r.pos });
    region = regions.length - 1;
  };

  ctrlKind.push(CTRL_BLOCK);
  ctrlRegion.push(0);
  open();
  try {
    while (r.pos < r.end) {
      if (stripPairs && pairAt() !== -1) continue;
      decodeInstr(r, ins);
      const op = ins.op;
      regions[region].cost += instrCost(op);
      switch (op) {
        case 0x02: case 0x03: case 0x04:
          if (ins.a >= 0 && ins.a >= m.types.length) throw new WasmError(`block type ${ins.a} does not exist`);
          if (ctrlKind.length >= MAX_NESTING) throw new WasmError(`blocks nested deeper than ${MAX_NESTING}`);
          ctrlKind.push(op === 0x03 ? CTRL_LOOP : op === 0x04 ? CTRL_IF : CTRL_BLOCK);
          ctrlRegion.push(region);
          if (op === 0x03) open();
          break;
        case 0x05:
          if (ctrlKind[ctrlKind.length - 1] !== CTRL_IF) throw new WasmError('`else` outside an `if`');
          break;
        case 0x0b:
          if (ctrlKind.length === 1 && r.pos !== r.end) throw new WasmError('code after the function\'s final `end`');
          ctrlKind.pop();
          region = ctrlRegion.pop()!;
          break;
        case 0x0c: case 0x0d: case 0x0e:
          if (ins.a >= ctrlKind.length) throw new WasmError(`branch to label ${ins.a} outside the function`);
          break;
        case 0x10:
          if (ins.a >= totalFuncs) throw new WasmError(`call to function ${ins.a}, which does not exist`);
          if (ins.a === usegas && !stripPairs && (prevOp !== 0x42 || prevA < 0)) {
            throw new WasmError('calls metering.usegas with an amount that is not a non-negative `i64.const` (refunds and computed amounts are not allowed)');
          }
          if (ins.a === usegas && stripPairs) throw new WasmError('calls metering.usegas with a computed amount');
          break;
        case 0x11:
          if (ins.a >= m.types.length) throw new WasmError(`call_indirect with type ${ins.a}, which does not exist`);
          if (m.tables.length === 0) throw new WasmError('call_indirect but the module has no table');
          break;
        case 0x20: case 0x21: case 0x22:
          if (ins.a >= b.localCount) throw new WasmError(`local ${ins.a} does not exist`);
          break;
        case 0x23: case 0x24:
          if (ins.a >= totalGlobals) throw new WasmError(`global ${ins.a} does not exist`);
          break;
        default:
          if (op >= 0x28 && op <= 0x40 && m.memories.length === 0 && !m.imports.some((x) => x.kind === ExternKind.memory)) {
            throw new WasmError('memory instruction but the module has no memory');
          }
      }
      prevOp = op;
      prevA = ins.a;
    }
    if (ctrlKind.length !== 0) throw new WasmError('truncated: body ends inside a block (missing `end`)');
  } catch (e) {
    if (e instanceof WasmError) throw new WasmError(`${label()}: ${e.message}`);
    throw e;
  }
  return regions;
}
