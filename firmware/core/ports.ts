// The ports: everything the firmware core needs from the world, in one file.
// The Moddable layer (firmware/moddable) and the host layer (host/) each implement them.
// The core never imports a platform module; it receives these objects from its entry point.

/** A flash partition, in the shape of ECMA-419 `embedded:storage/flash`. */
export interface Flash {
  /** Bytes in one erase block. */
  readonly blockSize: number;
  /** Number of erase blocks in the partition. */
  readonly blocks: number;
  /** Writes must start at a multiple of this and be a multiple of it long (1 = byte writable). */
  readonly writeAlign: number;
  /** Value of an erased byte (0xff on NOR flash). */
  readonly erasedValue: number;
  /** Reads `length` bytes at absolute `offset` into a fresh buffer. */
  read(offset: number, length: number): Uint8Array;
  /** Programs bytes at absolute `offset`. Like NOR flash it may only clear bits; erase to set them again. */
  write(offset: number, bytes: Uint8Array): void;
  /** Erases one block (all bytes become `erasedValue`). */
  eraseBlock(block: number): void;
}

/** Wall clock and monotonic time. */
export interface Clock {
  /** Unix time in milliseconds, or NaN while the device has no valid clock. */
  now(): number;
  /** Milliseconds since boot; never goes backwards. */
  monotonic(): number;
  /** Sets the wall clock (from SNTP, a telegram or a `time` body). */
  set?(unixMs: number): void;
}

/** Timers, so the core can schedule work without a platform's setTimeout. */
export interface Timers {
  set(callback: () => void, ms: number): number;
  repeat(callback: () => void, ms: number): number;
  clear(id: number): void;
}

/** Link states, numbers rather than strings (STYLE.md). */
export const LinkState = { down: 0, connecting: 1, up: 2 } as const;
export type LinkStateValue = (typeof LinkState)[keyof typeof LinkState];

export interface TransportHandlers {
  onConnect(): void;
  onDisconnect(reason: string): void;
  onMessage(topic: string, payload: Uint8Array): void;
}

export interface TransportOptions {
  clientId: string;
  username?: string;
  password?: string;
  will?: { topic: string; payload: Uint8Array; qos: 0 | 1 };
  subscriptions: string[];
}

/** One MQTT uplink. Implementations reconnect and resubscribe by themselves. */
export interface Transport {
  readonly name: string;
  readonly state: LinkStateValue;
  /** Last error text, or "" */
  readonly lastError: string;
  start(options: TransportOptions, handlers: TransportHandlers): void;
  /** Changes the credentials and reconnects (after pairing or unpairing). */
  restart(options: TransportOptions): void;
  /** QoS 1 publish. Returns false when the link is down (nothing queued). */
  publish(topic: string, payload: Uint8Array): boolean;
  stop(): void;
}

/** Bytes in and out of a serial line (the technician's console, the P1 port). */
export interface SerialPort {
  onReadable(callback: (bytes: Uint8Array) => void): void;
  write(bytes: Uint8Array): void;
}

/** A load switch the agent controls. */
export interface Relay {
  readonly id: number;
  get(): boolean;
  set(on: boolean): void;
}

/** A meter: something that hands the core channel values (WIRE.md channels, integer units). */
export interface MeterSource {
  /** Starts delivering readings; `onReading` receives [channel, value] pairs taken at unix ms `t` (NaN = no clock). */
  start(onReading: (t: number, values: ReadonlyArray<readonly [number, number]>) => void): void;
  stop(): void;
}

/** Cryptographically secure random bytes. */
export interface Random {
  fill(bytes: Uint8Array): void;
  /**
   * Runs `f` with the platform's strongest entropy source on: the core draws a meter's long-lived
   * secrets (identity key, pair secret, factory PIN) and its boot nonce inside it. An ESP32's hardware
   * RNG is only pseudo-random until Wi-Fi or Bluetooth runs, and those secrets are made at boot before
   * Wi-Fi starts: its adapter switches the bootloader's entropy source on around `f`. Absent: `fill`
   * is as strong at every moment (Node, Linux getrandom).
   */
  strong?(f: () => void): void;
}

/**
 * SHA-256 and HMAC-SHA256 from the platform (node:crypto on a gateway) instead of the core's own
 * (sha256.ts): the same bytes in and out. Absent: the core's.
 */
export interface HashPort {
  sha256(parts: readonly Uint8Array[]): Uint8Array;
  hmac(key: Uint8Array, parts: readonly Uint8Array[]): Uint8Array;
}

/**
 * A faster implementation of NaCl's secretbox (XSalsa20-Poly1305) than the core's own (tweetnacl),
 * e.g. libsodium's on a gateway: the same bytes in and out. Absent: the core's.
 */
export interface SecretboxPort {
  seal(message: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array;
  /** undefined when the box does not authenticate. */
  open(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | undefined;
  /** NaCl's `box.before` (X25519 then HSalsa20), when offered: the pairing's shared key. */
  before?(theirPublicKey: Uint8Array, mySecretKey: Uint8Array): Uint8Array;
  /** The X25519 public key of a secret key (NaCl's `box.keyPair.fromSecretKey`), when offered. */
  publicKey?(secretKey: Uint8Array): Uint8Array;
}

/** Small persistent values (identity, pairing, counters). Writes are durable when `set` returns. */
export interface KeyValue {
  get(key: string): Uint8Array | undefined;
  set(key: string, value: Uint8Array): void;
  delete(key: string): void;
}

export type GuestImport = (...args: number[]) => number | void;

/**
 * Imports from modules other than `gridlet`, by module and name: the WASI subset
 * (`wasi_snapshot_preview1`, guests/wasi.ts) and, in a world, the functions other members export
 * (module = the member's name). Each is linked with the signature the guest's import declares.
 */
export type GuestLinks = { readonly [module: string]: Record<string, GuestImport> };

/** What stopped a guest call (GuestTrap.kind); the supervisor reports each differently. */
export const TrapKind = { none: 0, trap: 1, fuel: 2, memory: 3 } as const;

/** Thrown by GuestInstance.call and GuestEngine.instantiate: a trap, fuel exhaustion or a memory-cap breach. */
export class GuestTrap extends Error {
  readonly kind: number;
  constructor(kind: number, message: string) {
    super(message);
    this.kind = kind;
  }
}
// On a meter Error.prototype is frozen, so `this.name = …` in the constructor would throw there.
Object.defineProperty(GuestTrap.prototype, 'name', { value: 'GuestTrap' });

export interface GuestInstance {
  /** Calls an export with a fuel budget; throws a GuestTrap on trap, fuel exhaustion or memory breach. */
  call(name: string, args: number[], fuel: number): number | undefined;
  hasExport(name: string): boolean;
  /** Fuel used by the last call (also when it trapped). */
  readonly fuelUsed: number;
  /** Guest memory [ptr, ptr+len); throws a GuestTrap (memory) when that is not within the memory cap. */
  readMemory(ptr: number, len: number): Uint8Array;
  /** Writes `bytes` at `ptr`; throws a GuestTrap (memory) when that is not within the memory cap. */
  writeMemory(ptr: number, bytes: Uint8Array): void;
  /** From an import during a call: the fuel the call's budget has left. */
  fuelLeft(): number;
  /**
   * From an import during a call: charges `fuel` to the call (work done for it elsewhere: a world
   * member it called). Throws the fuel GuestTrap, naming `what`, when that spends its budget.
   */
  charge(fuel: number, what: string): void;
  dispose(): void;
}

/** The budget of a start function when `instantiate` is given no `fuel` (every engine uses it). */
export const DEFAULT_START_FUEL = 1_000_000;

/** A WebAssembly engine (wasm3 on the meter, Node's WebAssembly on a host). */
export interface GuestEngine {
  /**
   * Loads a module that validate.ts accepted, linking `imports` as module `gridlet`, `links` as their
   * modules, and metering as `metering.usegas`. `memoryBytes` caps the memory the guest may touch,
   * exactly; `fuel` bounds a start function, if the module has one (DEFAULT_START_FUEL when it is
   * absent). Throws a GuestTrap when the module cannot be loaded or its start function traps.
   */
  instantiate(
    wasm: Uint8Array,
    imports: Record<string, GuestImport>,
    limits: { memoryBytes: number; fuel?: number },
    links?: GuestLinks,
  ): GuestInstance;
}

/** Where the core writes human-readable log lines (console `log`, host stdout). */
export interface Logger {
  log(level: 'debug' | 'info' | 'warn' | 'error', message: string): void;
}

/** How the running image was booted (Updater.bootState). */
export const BootState = { normal: 0, trial: 1 } as const;

/**
 * The meter's two app slots and its boot control (what the bootloader reads to choose a slot), in the
 * shape of ESP-IDF's OTA with app rollback: an image is written to the slot that is not running, marked
 * pending, booted once on trial, and kept only when the running trial image confirms itself; a trial
 * image that restarts without confirming is given up by the bootloader, which boots the previous one.
 */
export interface Updater {
  /** Bytes the inactive slot holds at most. */
  readonly slotSize: number;
  /** Erase unit of the slot: a download resumed after a restart starts again at a multiple of it. */
  readonly eraseSize: number;
  /** BootState.trial while the running image is a new one that has not confirmed itself. */
  readonly bootState: number;
  /** True when the bootloader gave up the inactive slot's image at its trial boot (a rollback) and no image was marked pending since. */
  readonly rejected: boolean;
  /**
   * Programs image bytes at `offset` of the inactive slot, erasing ahead as it goes. Writes come in
   * order; the first write after a restart starts at a multiple of `eraseSize`.
   */
  write(offset: number, bytes: Uint8Array): void;
  /** Reads bytes of the inactive slot (the whole-image hash is taken from what flash holds). */
  read(offset: number, length: number): Uint8Array;
  /** Boots the inactive slot's first `size` bytes once, on trial, at the next restart. Throws when the platform refuses the image. */
  setPending(size: number): void;
  /** Keeps the running trial image from now on. */
  confirm(): void;
  /** Gives the running trial image up: the next boot returns to the image that ran before it. */
  rollback(): void;
}
