// Node's WebAssembly API, typed locally: the project compiles without the DOM library, where
// TypeScript declares it, and this keeps the declaration to what the host engine uses.

export interface WasmModule { readonly __brand?: 'WebAssembly.Module' }
export interface WasmMemory { readonly buffer: ArrayBuffer }
export interface WasmGlobal { value: unknown }
export interface WasmInstance { readonly exports: Record<string, unknown> }
export type WasmImports = Record<string, Record<string, unknown>>;

interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: WasmImports) => WasmInstance;
  Memory: abstract new (...args: never[]) => WasmMemory;
  Global: abstract new (...args: never[]) => WasmGlobal;
  RuntimeError: abstract new (...args: never[]) => Error;
  LinkError: abstract new (...args: never[]) => Error;
  CompileError: abstract new (...args: never[]) => Error;
}

export const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
