// One meter, composed: the record log and its counters on the data partition, the relays behind
// their interlocks, the guest supervisor on the platform's engine, the agent, and the technician's
// console. The firmware image (firmware/main.ts) and the host agent (host/agent-host.ts) both build
// their meter here; they differ only in the ports they pass in.

import { Agent, type AgentOptions } from './agent/agent.js';
import { loadIdentity } from './agent/identity.js';
import type { CborValue } from './cbor.js';
import { consoleGuests, consoleRelays } from './console/adapters.js';
import { AgentBridge } from './console/agent-bridge.js';
import { Console } from './console/console.js';
import { LogRing } from './console/log-ring.js';
import { provisionFactoryPin } from './console/pin.js';
import { ReadingsRing } from './console/readings-ring.js';
import { Interlocks, type RelayConfig } from './control/relays.js';
import { useRandom } from './crypto.js';
import { GuestSupervisor } from './guests/supervisor.js';
import { FlashCounters } from './log/counters.js';
import { FlashLog } from './log/flash-log.js';
import { splitPartition } from './log/partition.js';
import type {
  Clock, Flash, GuestEngine, KeyValue, Logger, MeterSource, Random, Relay, SerialPort, Timers, Transport, Updater,
} from './ports.js';
import { Updates } from './update/updates.js';

export interface DeviceOptions {
  kv: KeyValue;
  random: Random;
  clock: Clock;
  timers: Timers;
  /** The data partition: the record log, then the persistent counters (log/partition.ts). */
  flash: Flash;
  /** Uplinks in order of preference. */
  uplinks: Transport[];
  /** The meter, or a function that makes it once the log exists (a replayed recording resumes from it). */
  meter?: MeterSource | ((log: FlashLog) => MeterSource | undefined);
  /** Load switches; each is offered to guests and the console only through the interlocks. */
  relays?: Relay[];
  relayConfig?: RelayConfig[];
  /** The WebAssembly engine for guests; without one the meter runs no guests. */
  guestEngine?: GuestEngine;
  /** The technician's console port (CONSOLE.md); without one there is no console. */
  console?: SerialPort;
  /** Where log lines go besides the console's ring (xsbug's trace, stderr). */
  logger?: Logger;
  model: string;
  firmware: string;
  /** Hello's capabilities; by default `relay:N` per relay and `guests` with an engine. */
  capabilities?: string[];
  topicPrefix?: string;
  /** Heap bytes in use, for `status`. */
  heapUsed?: () => number;
  /** Called on what a host UI shows (AgentOptions.onEvent), after the console's readings ring. */
  onEvent?: AgentOptions['onEvent'];
  /** Restarts the device; absent when the platform cannot. */
  reboot?: () => void;
  /** Guest kv slots reach flash at most this often, ms (GuestSupervisorOptions.kvFlushMs). */
  guestKvFlushMs?: number;
  /** Upper bound of the random relay restore delay after power-up, s (InterlocksOptions.restoreWindowS). */
  restoreWindowS?: number;
  /** The app slots and boot control; without them the meter takes no firmware over the air. */
  updater?: Updater;
  /** Public Ed25519 keys of the release keys this image trusts (update/release.ts). */
  releaseKeys?: Uint8Array[];
  /** How long a new image has to reach its gateway before it gives itself up, ms (default FW_TRIAL_MS). */
  trialMs?: number;
}

export interface Device {
  readonly agent: Agent;
  readonly log: FlashLog;
  readonly counters: FlashCounters;
  readonly interlocks: Interlocks;
  /** Undefined without a guest engine. */
  readonly guests: GuestSupervisor | undefined;
  readonly meter: MeterSource | undefined;
  readonly console: Console | undefined;
  readonly logRing: LogRing;
  readonly readings: ReadingsRing;
  /** Undefined without an Updater. */
  readonly updates: Updates | undefined;
  /** The factory PIN made at this boot (the first with a console): the label's, shown once; else undefined. */
  readonly factoryPin: string | undefined;
  /** Stops the agent, the guests and the interlocks' timers. */
  stop(): void;
}

export function createDevice(o: DeviceOptions): Device {
  useRandom(o.random);
  const parts = splitPartition(o.flash);
  const log = new FlashLog(parts.log);
  const counters = new FlashCounters(parts.counters);
  loadIdentity(o.kv);
  // At first boot a meter with a console makes its factory PIN (CONSOLE.md): the factory prints it on the label.
  const factoryPin = o.console ? provisionFactoryPin(o.kv) : undefined;
  const meter = typeof o.meter === 'function' ? o.meter(log) : o.meter;
  const readings = new ReadingsRing();
  const logRing = new LogRing(o.clock, o.logger);

  // Events of the interlocks and guests go into the record log once the agent exists; the restore
  // after power-up and restored guests may speak first.
  let agent: Agent | undefined;
  const early: [string, { [key: string]: CborValue }][] = [];
  const record = (kind: string, data: { [key: string]: CborValue }) => {
    if (agent) agent.recordEvent(kind, data);
    else early.push([kind, data]);
  };
  const relays = o.relays ?? [];
  const interlocks = new Interlocks({
    relays, config: o.relayConfig, clock: o.clock, timers: o.timers, kv: o.kv, random: o.random, onEvent: record,
    restoreWindowS: o.restoreWindowS,
  });
  interlocks.powerUp();
  const guests = o.guestEngine
    ? new GuestSupervisor({
      engine: o.guestEngine, clock: o.clock, timers: o.timers, kv: o.kv, interlocks, random: o.random, onEvent: record, logger: logRing,
      onAck: (ack) => agent?.sendGuestAck(ack), kvFlushMs: o.guestKvFlushMs,
    })
    : undefined;
  const capabilities = [
    ...(o.capabilities ?? [...relays.map((r) => `relay:${r.id}`), ...(guests ? ['guests'] : [])]),
    ...(o.updater ? ['ota'] : []),
  ];
  const onEvent = (name: string, detail?: unknown) => {
    readings.onAgentEvent(name, detail);
    o.onEvent?.(name, detail);
  };
  agent = new Agent({
    kv: o.kv, random: o.random, clock: o.clock, timers: o.timers, log, counters, uplinks: o.uplinks, meter,
    logger: logRing, model: o.model, firmware: o.firmware, capabilities, topicPrefix: o.topicPrefix, onEvent,
    heapUsed: o.heapUsed,
  });
  if (guests) {
    agent.attachGuests(guests);
    guests.restore();
  }
  const a = agent;
  const updates = o.updater
    ? new Updates({
      updater: o.updater, kv: o.kv, timers: o.timers, clock: o.clock, logger: logRing, releaseKeys: o.releaseKeys ?? [],
      model: o.model, firmware: o.firmware, send: (b) => a.sendFirmwareStatus(b), recordEvent: (k, d) => a.recordEvent(k, d),
      reboot: o.reboot, trialMs: o.trialMs,
    })
    : undefined;
  if (updates) agent.attachUpdates(updates);
  for (const [kind, data] of early) agent.recordEvent(kind, data);
  early.length = 0;

  let technicianConsole: Console | undefined;
  if (o.console) {
    const bridge = new AgentBridge({
      agent, kv: o.kv, log, clock: o.clock, timers: o.timers, model: o.model, firmware: o.firmware,
      heapUsed: o.heapUsed, readings, logRing, reboot: o.reboot,
      guests: guests ? consoleGuests(guests) : undefined, relays: consoleRelays(interlocks),
    });
    technicianConsole = new Console({ port: o.console, host: bridge, kv: o.kv, clock: o.clock, timers: o.timers });
    technicianConsole.start();
  }

  const device: Device = {
    agent, log, counters, interlocks, guests, meter, console: technicianConsole, logRing, readings, factoryPin, updates,
    stop() {
      device.agent.stop();
      guests?.dispose();
      interlocks.dispose();
    },
  };
  return device;
}
