// Declarations for modules the firmware uses that @moddable/typings (5.6) does not describe:
// ECMA-419 `embedded:storage/flash` as the Moddable SDK implements it on ESP32
// (modules/io/flash/esp32), and gridlet's own native modules (firmware/moddable/native, wasm3/).

declare module 'embedded:storage/flash' {
  export interface FlashPartitionStatus {
    /** Bytes in the partition. */
    size: number;
    /** Bytes in one erase block (sector). */
    blockLength: number;
    blocks: number;
  }
  export interface FlashPartition {
    /** Reads `count` bytes at byte `offset` into a new ArrayBuffer. */
    read(count: number, offset: number): ArrayBuffer;
    /** Programs `data` at byte `offset` (NOR flash: bits can only be cleared). */
    write(data: ArrayBuffer | ArrayBufferView, offset: number): void;
    /** Erases block `from`, or blocks `from` up to (not including) `to`. */
    eraseBlock(from: number, to?: number): void;
    status(): FlashPartitionStatus;
    close(): void;
    format: 'buffer';
  }
  const flash: {
    /** `path` is the partition's label in the partition table; mode "r" or "r+" (default). */
    open(options: { path: string; mode?: 'r' | 'r+'; format?: 'buffer' }): FlashPartition;
  };
  export default flash;
}

declare module 'gridlet/random' {
  /** Fills the buffer from the platform's hardware random number generator (esp_fill_random). */
  export function fill(buffer: ArrayBuffer | ArrayBufferView): void;
  /**
   * ESP32: switches the bootloader's entropy source on (true) or off (false) — only before Wi-Fi
   * starts — and answers true; elsewhere does nothing and answers false (fill is always strong there).
   */
  export function entropy(on: boolean): boolean;
}

declare module 'gridlet/wasm3' {
  /** One wasm3 runtime with one module (firmware/moddable/wasm3/guest-engine.c). */
  export default class Wasm3Module {
    /**
     * Parses and loads `wasm` (copied into native memory). `memoryBytes` caps linear memory (wasm3's
     * memory limit); `stackBytes` is the wasm3 value stack. Throws with wasm3's message on failure.
     */
    constructor(wasm: ArrayBuffer | ArrayBufferView, memoryBytes: number, stackBytes: number);
    /** Links an import of module `module` with a wasm3 signature such as "F(i)" to a JS function. */
    link(module: string, name: string, signature: string, fn: (...args: number[]) => number | void): boolean;
    /** Links `metering.usegas(i64)`: every call charges fuel and traps when the call's budget is spent. */
    linkMetering(module: string, name: string): boolean;
    /** Calls an export with number arguments and a fuel budget; returns its first result. Throws on a trap. */
    call(name: string, args: number[], fuel: number): number | undefined;
    hasExport(name: string): boolean;
    /** Fuel charged during the last call. */
    readonly fuelUsed: number;
    /** Why the last call trapped: 0 none, 1 trap, 2 out of fuel, 3 memory limit. */
    readonly trapKind: number;
    readMemory(ptr: number, len: number): ArrayBuffer;
    close(): void;
  }
}

declare module 'gridlet/settings' {
  /** The image's settings: the manifest's config (on the simulator, with ./gridlet-sim.json over it). */
  export default function settings(): Record<string, unknown>;
}

declare module 'gridlet/xs-heap' {
  /**
   * [slotSize, slots, slotsPeak, slotsAllocated, chunks, chunksPeak, chunksAllocated, stackPeakBytes, stackBytes]
   * of the running XS machine (firmware/moddable/native/xs-heap.c); stackPeakBytes is -1 where not kept.
   */
  export function stats(): number[];
}
