// A host agent: the firmware core's device (firmware/core/device.ts) on Node ports. Used by
// `gridlet agent`, the demo and tests. What differs from the firmware image is only the ports.

import { join } from 'node:path';
import { AgentState, type Agent, type AgentOptions } from '../firmware/core/agent/agent.js';
import { loadIdentity } from '../firmware/core/agent/identity.js';
import { utf8Decode, utf8Encode } from '../firmware/core/bytes.js';
import { PAIRED_ONCE_KEY } from '../firmware/core/console/agent-bridge.js';
import type { Console } from '../firmware/core/console/console.js';
import type { Interlocks } from '../firmware/core/control/relays.js';
import { useRandom } from '../firmware/core/crypto.js';
import { createDevice } from '../firmware/core/device.js';
import type { GuestSupervisor } from '../firmware/core/guests/supervisor.js';
import { MemoryFlash } from '../firmware/core/log/memory-flash.js';
import { DEFAULT_PARTITION } from '../firmware/core/log/partition.js';
import type { RecordLog } from '../firmware/core/log/record-log.js';
import type { Flash, KeyValue, Logger, MeterSource } from '../firmware/core/ports.js';
import { FlashUpdater } from '../firmware/core/update/boot-control.js';
import { openPty, type Pty } from './console/pty.js';
import { bootHostImage } from './ota/host-image.js';
import { FileFlash } from './flash/file-flash.js';
import { guestEngine, type GuestEngineName } from './guests/engines.js';
import { preinstallGuests } from './guests/preinstall.js';
import { ReplayMeter } from './meter/replay-meter.js';
import { SimMeter } from './meter/sim-meter.js';
import { FileKeyValue, MemoryKeyValue } from './ports/file-kv.js';
import { parseSerialMeterSpec, SERIAL_METER_TYPES, SerialLineMeter, type SerialMeterType } from './meter/serial-meter.js';
import { HostRelay } from './ports/host-relay.js';
import { MqttTransport } from './ports/mqtt-transport.js';
import { NodeClock, NodeTimers, nodeRandom } from './ports/node-platform.js';
import { PtySerialPort } from './ports/pty-serial.js';

export const FIRMWARE_VERSION = '0.1.0';

export interface HostAgentOptions {
  /** Directory for the agent's persistent state; omitted = in memory (lost on exit). */
  dataDir?: string;
  brokers: string[];
  /** `sim`, `sim:SEED`, `replay:FILE`, `dsmr:`/`smarty:`/`dlms:`/`mbus:SERIALPATH`, or `none`. */
  meter?: string;
  /** Milliseconds between readings for sim/replay meters. */
  intervalMs?: number;
  model?: string;
  topicPrefix?: string;
  logger?: Logger;
  onEvent?: AgentOptions['onEvent'];
  /** The data partition to use instead of `<dataDir>/flash.bin` (tests: a flash that loses power). */
  flash?: Flash;
  /** The KeyValue store to use instead of `<dataDir>/kv` (tests). */
  kv?: KeyValue;
  /** Guests to install at start: built guests by name, or FILE.wasm[:MANIFEST.json]. */
  guests?: string[];
  /** The engine guests run on: v8 (default) or wasm3 (the meter's engine, compiled to WebAssembly). */
  guestEngine?: GuestEngineName;
  /** Runs the technician console (CONSOLE.md) on a pseudo-terminal: `true` opens one (closed by stop()); a Pty reuses one. */
  consolePty?: boolean | Pty;
  /**
   * What the console's `reboot` and a firmware update's restart do; without it the console answers that
   * this host cannot reboot, and updates stop at `verified`.
   */
  onReboot?: () => void;
  /** Public keys of the release keys this agent trusts; without any it refuses every firmware offer. */
  releaseKeys?: Uint8Array[];
  /** The app slots and boot control instead of `<dataDir>/ota.bin` (tests, the fleet simulator). */
  otaFlash?: Flash;
  /** How long a new firmware image has to reach its gateway before it gives itself up, ms. */
  trialMs?: number;
}

/** Blocks of a host's OTA flash: boot control and two 1 MiB slots. */
export const HOST_OTA_BLOCKS = 2 + 2 * 256;
/** Where an image that never reconnects points its links (the discard port; nothing listens). */
const NOWHERE = 'mqtt://127.0.0.1:9';

export interface HostAgent {
  agent: Agent;
  kv: KeyValue;
  log: RecordLog;
  meter?: MeterSource;
  guests: GuestSupervisor;
  interlocks: Interlocks;
  relays: HostRelay[];
  console?: Console;
  /** The console's pseudo-terminal; `consolePty.path` is what a technician opens. */
  consolePty?: Pty;
  /** The factory PIN "on the label" (on a host: kept in its KeyValue), until the meter's first pairing. */
  factoryPin?: string;
  /** The firmware this boot runs: its version, the slot it came from (-1 factory), and whether it is on trial. */
  firmware: { version: string; slot: number; trial: boolean; fault?: string };
  stop(): void;
}

export function parseMeterSpec(spec: string, kv: KeyValue, log: RecordLog, intervalMs?: number, seed = 1, logger?: Logger): MeterSource | undefined {
  if (spec === 'none') return undefined;
  if (spec === 'sim') return new SimMeter({ seed, intervalMs });
  if (spec.startsWith('sim:')) return new SimMeter({ seed: Number(spec.slice(4)) || seed, intervalMs });
  if (spec.startsWith('replay:')) return new ReplayMeter(spec.slice(7), kv, () => log.stats().newestSeq, intervalMs);
  const colon = spec.indexOf(':');
  const type = spec.slice(0, colon) as SerialMeterType;
  if (colon > 0 && SERIAL_METER_TYPES.includes(type)) return new SerialLineMeter(parseSerialMeterSpec(type, spec.slice(colon + 1)), kv, logger);
  throw new Error(`unknown meter "${spec}"; use sim, replay:FILE, or a serial port: dsmr:, smarty:, dlms: or mbus:SERIALPATH`);
}

export function createHostAgent(o: HostAgentOptions): HostAgent {
  const kv = o.kv ?? (o.dataDir ? new FileKeyValue(join(o.dataDir, 'kv')) : new MemoryKeyValue());
  const timers = new NodeTimers();
  // The data partition, as on a meter (the device lays out the record log and the counters in it).
  const flash = o.flash ?? (o.dataDir
    ? new FileFlash(join(o.dataDir, 'flash.bin'), { blocks: DEFAULT_PARTITION.blocks, blockSize: DEFAULT_PARTITION.blockSize })
    : new MemoryFlash({ blocks: DEFAULT_PARTITION.blocks, blockSize: DEFAULT_PARTITION.blockSize }));
  useRandom(nodeRandom);
  loadIdentity(kv); // made now so that the simulated meter's seed can come from it
  const seed = seedFrom(kv);
  const consolePty = o.consolePty === true ? openPty() : o.consolePty || undefined;
  const relays = [1, 2, 3].map((id) => new HostRelay(id, o.logger));
  // The bootloader runs first, as on a meter: it picks the slot, and the slot names the firmware.
  const ota = o.otaFlash ?? (o.dataDir
    ? new FileFlash(join(o.dataDir, 'ota.bin'), { blocks: HOST_OTA_BLOCKS, blockSize: 4096 })
    : new MemoryFlash({ blocks: HOST_OTA_BLOCKS, blockSize: 4096 }));
  const image = bootHostImage(ota, FIRMWARE_VERSION);
  const brokers = image.fault === 'no-reconnect' ? o.brokers.map(() => NOWHERE) : o.brokers;
  const device = createDevice({
    kv, random: nodeRandom, clock: new NodeClock(), timers, flash, uplinks: brokers.map(
      (url, i) => new MqttTransport(url, brokers.length > 1 ? `link${i + 1}` : 'primary')),
    meter: (log) => parseMeterSpec(o.meter ?? 'sim', kv, log, o.intervalMs, seed, o.logger),
    relays, guestEngine: guestEngine(o.guestEngine), console: consolePty ? new PtySerialPort(consolePty) : undefined,
    logger: o.logger, model: o.model ?? 'gridlet-host', firmware: image.version,
    topicPrefix: o.topicPrefix, heapUsed: () => process.memoryUsage().heapUsed, onEvent: o.onEvent, reboot: o.onReboot,
    updater: new FlashUpdater(ota), releaseKeys: o.releaseKeys, trialMs: o.trialMs,
  });
  const guests = device.guests!;
  if (o.guests?.length) for (const line of preinstallGuests(guests, o.guests)) device.logRing.log('info', line);
  // A host has no label: it keeps its factory PIN in its KeyValue store and shows it until the first pairing.
  if (device.factoryPin) kv.set(LABEL_PIN_KEY, utf8Encode(device.factoryPin));
  const label = kv.get(LABEL_PIN_KEY);
  const pairedOnce = device.agent.state === AgentState.paired || !!kv.get(PAIRED_ONCE_KEY);
  return {
    agent: device.agent, kv, log: device.log, meter: device.meter, guests, interlocks: device.interlocks, relays,
    console: device.console, consolePty,
    factoryPin: consolePty && label && !pairedOnce ? utf8Decode(label) : undefined,
    firmware: { version: image.version, slot: image.slot, trial: image.trial, ...(image.fault ? { fault: image.fault } : {}) },
    stop() {
      device.stop();
      timers.clearAll();
      if (o.consolePty === true) consolePty?.close();
    },
  };
}

/** KeyValue key where a host keeps its factory PIN in clear: the host's stand-in for a label. */
const LABEL_PIN_KEY = 'host.label.factory_pin';

/** A per-device seed for the simulated meter, so two meters differ but one meter is stable. */
function seedFrom(kv: KeyValue): number {
  const sk = kv.get('id.sk');
  if (!sk) return Math.floor(Math.random() * 2 ** 31);
  return ((sk[0] << 24) | (sk[1] << 16) | (sk[2] << 8) | sk[3]) >>> 0;
}
