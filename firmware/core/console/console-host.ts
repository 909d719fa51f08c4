// What the technician's console (CONSOLE.md) needs from the agent, in one interface. The console
// never reaches into the Agent itself: agent-bridge.ts implements this over the Agent's public API and
// the objects the platform passes in, and tests implement it with a fake.

import type { CborValue } from '../cbor.js';
import type { LinkStatus } from '../agent/links.js';
import type { LogStats } from '../log/record-log.js';

export interface ConsoleIdentity {
  deviceId: string;
  /** `XXXXX-XXXXX`, as on the label. */
  pairCode: string;
  model: string;
  firmware: string;
}

export interface ConsoleStatus {
  firmware: string;
  model: string;
  uptimeS: number;
  paired: boolean;
  /** The paired gateway's id, or "" while unpaired. */
  gatewayId: string;
  /** The link carrying frames now, or "" when none is up. */
  activeLink: string;
  buffered: number;
  dropped: number;
  heapUsed: number;
  relays: RelayInfo[];
}

/** One channel value the meter delivered (WIRE.md channels). */
export interface ConsoleReading {
  seq: number;
  /** Unix seconds; 0 before the device has a valid clock. */
  t: number;
  channel: number;
  value: number;
}

export interface ConsoleLogLine {
  /** Milliseconds since boot. */
  ms: number;
  level: string;
  message: string;
}

export interface GuestInfo {
  name: string;
  /** CIDv1 text (`b…`). */
  cid: string;
  /** `running`, `stopped`, `backoff`, `quarantined`, … as the supervisor names it. */
  state: string;
  faults: number;
  /** Fuel used by the last call (GUESTS.md metering). */
  fuelUsed: number;
  fuelPerCall: number;
}

/** Outcome of `guest stop|start`. */
export const GuestOutcome = { done: 0, notFound: 1, refused: 2 } as const;
export type GuestOutcomeValue = (typeof GuestOutcome)[keyof typeof GuestOutcome];

export interface GuestResult {
  outcome: GuestOutcomeValue;
  /** Why the supervisor refused (a relay another guest holds, `init` failed, …). */
  reason?: string;
}

export interface RelayInfo {
  id: number;
  on: boolean;
  /** Technician lock: "on", "off" or "" when none. */
  lock: string;
}

/**
 * Outcome of a relay command, mirroring the interlocks of GUESTS.md ("Supervision"): the first
 * three numbers are the guest `relay` import's codes; the refusals are told apart for the technician.
 */
export const RelayOutcome = {
  done: 0,
  noRelay: -1,
  /** Minimum dwell not yet over. */
  dwell: -2,
  /** At most 6 toggles an hour. */
  toggles: -3,
  /** A circuit marked critical is never switched. */
  critical: -4,
  /** A technician lock holds the relay (only for `relay <id> on|off`). */
  techLock: -5,
  /** A guest holds the relay; the technician lock is what overrides it (only for `relay <id> on|off`). */
  heldByGuest: -6,
} as const;
export type RelayOutcomeValue = (typeof RelayOutcome)[keyof typeof RelayOutcome];

export const RelayLockMode = { off: 0, on: 1, release: 2 } as const;
export type RelayLockModeValue = (typeof RelayLockMode)[keyof typeof RelayLockMode];

export interface RelayResult {
  outcome: RelayOutcomeValue;
  /** Seconds until the refusing interlock would allow it (dwell, toggles), when known. */
  retryS?: number;
  /** The guest holding the relay (heldByGuest). */
  holder?: string;
}

export const UnpairOutcome = { done: 0, notPaired: 1, unavailable: 2 } as const;
export type UnpairOutcomeValue = (typeof UnpairOutcome)[keyof typeof UnpairOutcome];

/** Where an `ask` answer goes as it arrives (WIRE.md job-result bodies, in chunk order). */
export interface AskSink {
  /** Text of one chunk, the model's output unaltered (the console strips control characters). */
  chunk(text: string): void;
  /** The answer is complete (`error` undefined) or failed with the gateway's reason. */
  end(error?: string): void;
}

/** `ask` could not be submitted. */
export const AskRefusal = { offline: -1, unavailable: -2, busy: -3 } as const;

/** The stored PIN hash the console checks `auth` against (console/pin.ts gives the format). */
export interface PinRecord {
  hash: string;
  /** True when this is the factory PIN (unpaired meter, never paired). */
  factory: boolean;
}

export interface ConsoleHost {
  identity(): ConsoleIdentity;
  status(): ConsoleStatus;
  /** The last `n` readings, oldest first. */
  readings(n: number): ConsoleReading[];
  buffer(): LogStats;
  links(): LinkStatus[];

  guests(): GuestInfo[];
  guestStop(name: string): GuestResult;
  guestStart(name: string): GuestResult;

  /** `relay <id> on|off`: through the interlocks, never past a technician lock. */
  relaySet(id: number, on: boolean): RelayResult;
  /** `relay lock <id> on|off|release`: the technician lock that overrides every guest. */
  relayLock(id: number, mode: RelayLockModeValue): RelayResult;

  /** The gateway id pinned for pairing, or "" when none. */
  pinnedGateway(): string;
  /** Pins a gateway id ("" removes the pin); takes effect at the next pairing. */
  pinGateway(gatewayId: string): void;
  unpair(): UnpairOutcomeValue;

  /** Config values are text (WIRE.md config bodies carry scalars; they are stored as text). */
  configGet(key: string): string | undefined;
  configSet(key: string, value: string): void;
  pinRecord(): PinRecord | undefined;

  /** The last `n` log lines, oldest first. */
  logLines(n: number): ConsoleLogLine[];

  /**
   * Submits an `llm.generate` job (WIRE.md body 4) and streams its job-result chunks to `sink`.
   * Returns the job id, or an AskRefusal number; after a refusal the sink is never called.
   */
  ask(prompt: string, sink: AskSink): number;
  /** Sends `job.cancel` for a running ask; the sink is not called afterwards. */
  cancelAsk(job: number): void;

  /** Appends an event record (WIRE.md event kinds), e.g. `console-lockout`. */
  recordEvent(kind: string, data?: { [key: string]: CborValue }): void;
  /** Restarts the device; false when this platform cannot. Called after the reply has been written. */
  reboot(): boolean;
}
