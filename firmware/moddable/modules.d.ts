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
  /**
   * One wasm3 runtime with one module (firmware/moddable/wasm3/guest-engine.c over guest-core.c):
   * `new Wasm3Module(wasm, memoryBytes, stackBytes)` copies, parses and loads the module (memoryBytes
   * 1…65536 is wasm3's memory limit; stackBytes its value stack) or throws with wasm3's reason. The
   * instance is the Wasm3Binding that firmware/moddable/wasm3/wasm3-guests.ts describes and drives.
   */
  const Wasm3Module: new (wasm: ArrayBuffer | ArrayBufferView, memoryBytes: number, stackBytes: number) => object;
  export default Wasm3Module;
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

declare module 'gridlet/ota' {
  /** [slotSize, eraseSize, trial, rejected] (native/ota.c); throws on the simulator. */
  export function info(): [number, number, boolean, boolean];
  export function write(offset: number, bytes: Uint8Array): void;
  export function read(offset: number, length: number): ArrayBuffer;
  /** Checks the written image (esp_ota_end) and boots it next, on trial; throws with ESP-IDF's reason. */
  export function setPending(): void;
  export function confirm(): void;
  /** Gives the running trial image up and restarts into the previous one; does not return. */
  export function rollback(): void;
  /** Restarts the meter (the simulator: ends it, for its launcher to boot a slot); does not return. */
  export function restart(): void;
}
