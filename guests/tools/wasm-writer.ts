// Writing WebAssembly modules, for tools (the guest build, the gateway's metering instrumenter, the host
// engine's memory guard): a byte buffer with LEB128 encoders, instruction copying and a module rewriter
// that applies edits (added types, imports, functions, globals, exports; rewritten bodies). The meter
// never rewrites a module with these: firmware/core/guests/wasm.ts is the reader it carries, and the
// wasm3 memory.grow guard splices bytes without re-encoding anything (grow-guard.ts).

import {
  ExternKind, Instr, Section, WasmReader, decodeInstr, readConstExpr,
  putSleb, putUleb, type Export, type FuncType, type FunctionBody, type SectionSpan, type WasmModule,
} from '../../firmware/core/guests/wasm.js';

/** A growable byte buffer with the LEB128 encoders modules need. */
export class WasmWriter {
  buf: Uint8Array;
  pos = 0;
  constructor(size = 1024) {
    this.buf = new Uint8Array(size);
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }
  u8(b: number): this {
    this.ensure(1);
    this.buf[this.pos++] = b;
    return this;
  }
  /** Unsigned LEB128. */
  u32(n: number): this {
    putUleb(n, (b) => this.u8(b));
    return this;
  }
  /** Signed LEB128 of an integer in the safe range. */
  sleb(n: number): this {
    putSleb(n, (b) => this.u8(b));
    return this;
  }
  bytes(b: Uint8Array, start = 0, end = b.length): this {
    this.ensure(end - start);
    this.buf.set(b.subarray(start, end), this.pos);
    this.pos += end - start;
    return this;
  }
  name(s: string): this {
    this.u32(s.length);
    for (let i = 0; i < s.length; i++) this.u8(s.charCodeAt(i) & 0xff);
    return this;
  }
  /** Writes `w` as a section (or any size-prefixed vector). */
  section(id: number, w: WasmWriter): this {
    this.u8(id);
    this.u32(w.pos);
    return this.bytes(w.buf, 0, w.pos);
  }
  /** Writes `w` prefixed by its size (a function body). */
  sized(w: WasmWriter): this {
    this.u32(w.pos);
    return this.bytes(w.buf, 0, w.pos);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

// ---------------------------------------------------------------- module rewriting

export interface ModuleEdit {
  /** Appended to the type section; their indices follow the existing types. */
  addTypes?: FuncType[];
  /** Function imports appended after the existing imports; defined functions shift up by their number. */
  addFuncImports?: { module: string; name: string; type: number }[];
  /** Encoded global entries (type, mutability, init expression) appended to the global section. */
  addGlobals?: Uint8Array[];
  addExports?: Export[];
  /** Functions appended after the defined ones: a type index and the encoded body (locals + code, no size). */
  addFuncs?: { type: number; body: Uint8Array }[];
  /** Writes the new body (locals + code, no size) of defined function `i`; `remap` maps old function indices. */
  rewriteBody?: (i: number, body: FunctionBody, out: WasmWriter, remap: (f: number) => number) => void;
  /** Drop custom sections (their contents may name function indices that moved). */
  dropCustom?: boolean;
  /** Drop the start section (a host that runs the start function itself, as an export). */
  dropStart?: boolean;
}

/** Copies an instruction, renumbering `call` targets. */
export function copyInstr(m: WasmModule, ins: Instr, out: WasmWriter, remap: (f: number) => number): void {
  if (ins.op === 0x10) out.u8(0x10).u32(remap(ins.a));
  else out.bytes(m.bytes, ins.start, ins.end);
}

/** Re-emits a parsed module with the edits applied; untouched sections are copied byte for byte. */
export function rewriteModule(m: WasmModule, edit: ModuleEdit): Uint8Array {
  const shift = edit.addFuncImports?.length ?? 0;
  const remap = (f: number): number => (f < m.funcImportCount ? f : f + shift);
  const out = new WasmWriter(m.bytes.length + 1024);
  out.bytes(m.bytes, 0, 8);
  const has = (id: number) => m.sections.some((s) => s.id === id);
  const emitted = new Set<number>();

  const writeSection = (id: number, span: SectionSpan | undefined): void => {
    emitted.add(id);
    const w = new WasmWriter(span ? span.end - span.content + 64 : 64);
    const src = span ? new WasmReader(m.bytes, span.content, span.end) : undefined;
    switch (id) {
      case Section.type: {
        const add = edit.addTypes ?? [];
        if (!src && !add.length) return;
        w.u32(m.types.length + add.length);
        if (src) { src.u32(); w.bytes(m.bytes, src.pos, span!.end); }
        for (const t of add) {
          w.u8(0x60).u32(t.params.length);
          for (const p of t.params) w.u8(p);
          w.u32(t.results.length);
          for (const p of t.results) w.u8(p);
        }
        break;
      }
      case Section.import: {
        const add = edit.addFuncImports ?? [];
        if (!src && !add.length) return;
        w.u32(m.imports.length + add.length);
        if (src) { src.u32(); w.bytes(m.bytes, src.pos, span!.end); }
        for (const imp of add) w.name(imp.module).name(imp.name).u8(ExternKind.func).u32(imp.type);
        break;
      }
      case Section.function: {
        const add = edit.addFuncs ?? [];
        if (!src && !add.length) return;
        w.u32(m.funcs.length + add.length);
        for (const t of m.funcs) w.u32(t);
        for (const f of add) w.u32(f.type);
        break;
      }
      case Section.global: {
        const add = edit.addGlobals ?? [];
        if (!src && !add.length) return;
        w.u32(m.globals.length + add.length);
        if (src) { src.u32(); w.bytes(m.bytes, src.pos, span!.end); }
        for (const g of add) w.bytes(g);
        break;
      }
      case Section.export: {
        const add = edit.addExports ?? [];
        if (!src && !add.length) return;
        w.u32(m.exports.length + add.length);
        for (const e of m.exports.concat(add)) {
          w.name(e.name).u8(e.kind).u32(e.kind === ExternKind.func && !add.includes(e) ? remap(e.index) : e.index);
        }
        break;
      }
      case Section.start:
        if (m.start === undefined || edit.dropStart) return;
        w.u32(remap(m.start));
        break;
      case Section.element: {
        if (!src) return;
        w.u32(m.elements.length);
        for (const el of m.elements) {
          const r = new WasmReader(m.bytes, el.start, el.end);
          r.u32();
          const exprStart = r.pos;
          readConstExpr(r, 'element offset');
          w.u32(0).bytes(m.bytes, exprStart, r.pos).u32(el.funcs.length);
          for (const f of el.funcs) w.u32(remap(f));
        }
        break;
      }
      case Section.code: {
        const add = edit.addFuncs ?? [];
        if (!src && !add.length) return;
        w.u32(m.bodies.length + add.length);
        const body = new WasmWriter(256);
        for (let i = 0; i < m.bodies.length; i++) {
          const b = m.bodies[i];
          if (edit.rewriteBody) {
            body.pos = 0;
            edit.rewriteBody(i, b, body, remap);
            w.sized(body);
          } else if (shift) {
            body.pos = 0;
            copyBody(m, b, body, remap);
            w.sized(body);
          } else {
            w.bytes(m.bytes, b.entryStart, b.end);
          }
        }
        for (const f of add) w.u32(f.body.length).bytes(f.body);
        break;
      }
      default:
        if (!span) return;
        w.bytes(m.bytes, span.content, span.end);
    }
    out.section(id, w);
  };

  // Non-custom sections in their canonical order, creating the ones an edit needs.
  const order = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 10, 11];
  for (const s of m.sections) {
    if (s.id === Section.custom) {
      if (!edit.dropCustom) out.bytes(m.bytes, s.start, s.end);
      continue;
    }
    // Emit any missing section that must come before this one.
    for (const id of order) {
      if (id === s.id) break;
      if (!emitted.has(id) && !has(id)) writeSection(id, undefined);
    }
    writeSection(s.id, s);
  }
  for (const id of order) if (!emitted.has(id) && !has(id)) writeSection(id, undefined);
  return out.result();
}

/** Copies a body's locals and instructions, renumbering calls. */
export function copyBody(m: WasmModule, b: FunctionBody, out: WasmWriter, remap: (f: number) => number): void {
  writeLocals(b, out);
  const r = new WasmReader(m.bytes, b.codeStart, b.end);
  const ins = new Instr();
  while (r.pos < r.end) {
    decodeInstr(r, ins);
    copyInstr(m, ins, out, remap);
  }
}

export function writeLocals(b: FunctionBody, out: WasmWriter): void {
  out.u32(b.localGroups.length);
  for (const [c, t] of b.localGroups) out.u32(c).u8(t);
}

