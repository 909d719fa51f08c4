// Fake `gridlet/wasm3` (the native binding): records links, and runs "exports" the test defines,
// charging fuel through the linked usegas like an instrumented guest would.

export interface FakeModule {
  links: [string, string, string][];
  metering: string | undefined;
  closed: boolean;
  memoryBytes: number;
}
export const modules: FakeModule[] = [];
/** What the next module's exports do: receive (args, charge, imports) and return a result. */
export let exportsForNext: { [name: string]: (args: number[], charge: (gas: number) => void, imports: ((...a: number[]) => number | void)[]) => number | undefined } = {};
export function defineExports(e: typeof exportsForNext): void {
  exportsForNext = e;
}

export default class Wasm3Module implements FakeModule {
  links: [string, string, string][] = [];
  metering: string | undefined;
  closed = false;
  memoryBytes: number;
  fuelUsed = 0;
  trapKind = 0;
  #imports: ((...a: number[]) => number | void)[] = [];
  #exports = exportsForNext;

  constructor(wasm: Uint8Array, memoryBytes: number, stackBytes: number) {
    if (wasm.length < 8) throw new Error('wasm3: underrun while parsing Wasm binary');
    void stackBytes;
    this.memoryBytes = memoryBytes;
    modules.push(this);
  }
  link(module: string, name: string, signature: string, fn: (...a: number[]) => number | void): boolean {
    this.links.push([module, name, signature]);
    this.#imports.push(fn);
    return true;
  }
  linkMetering(module: string, name: string): boolean {
    this.metering = `${module}.${name}`;
    return true;
  }
  call(name: string, args: number[], fuel: number): number | undefined {
    const f = this.#exports[name];
    if (!f) throw new Error(`wasm3: export ${name}: function lookup failed`);
    this.fuelUsed = 0;
    this.trapKind = 0;
    const charge = (gas: number) => {
      this.fuelUsed += gas;
      if (this.fuelUsed > fuel) {
        this.trapKind = 2;
        throw new Error('[trap] out of fuel');
      }
    };
    try {
      return f(args, charge, this.#imports);
    } catch (e) {
      if (!this.trapKind) this.trapKind = 1;
      throw e;
    }
  }
  hasExport(name: string): boolean {
    return name in this.#exports;
  }
  readMemory(ptr: number, len: number): ArrayBuffer {
    return new Uint8Array(len).fill(ptr & 0xff).buffer;
  }
  close(): void {
    this.closed = true;
  }
}
