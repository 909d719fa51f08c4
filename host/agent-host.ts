// A host agent: the firmware core's Agent on Node ports. Used by `gridlet agent`, the demo and tests.

import { join } from 'node:path';
import { Agent, AgentState, type AgentOptions } from '../firmware/core/agent/agent.js';
import type { RecordLog } from '../firmware/core/log/record-log.js';
import { FlashLog } from '../firmware/core/log/flash-log.js';
import { FlashCounters } from '../firmware/core/log/counters.js';
import { DEFAULT_PARTITION, splitPartition } from '../firmware/core/log/partition.js';
import { MemoryFlash } from '../firmware/core/log/memory-flash.js';
import { FileFlash } from './flash/file-flash.js';
import { loadIdentity } from '../firmware/core/agent/identity.js';
import { useRandom } from '../firmware/core/crypto.js';
import type { Flash, KeyValue, Logger, MeterSource } from '../firmware/core/ports.js';
import { FileKeyValue, MemoryKeyValue } from './ports/file-kv.js';
import { MqttTransport } from './ports/mqtt-transport.js';
import { NodeClock, NodeTimers, nodeRandom } from './ports/node-platform.js';
import { ReplayMeter } from './meter/replay-meter.js';
import { SimMeter } from './meter/sim-meter.js';
import { parseSerialMeterSpec, SERIAL_METER_TYPES, SerialLineMeter, type SerialMeterType } from './meter/serial-meter.js';
// --- technician console (issue 7) ---
import { AgentBridge, PAIRED_ONCE_KEY } from '../firmware/core/console/agent-bridge.js';
import { Console } from '../firmware/core/console/console.js';
import { LogRing } from '../firmware/core/console/log-ring.js';
import { ReadingsRing } from '../firmware/core/console/readings-ring.js';
import { provisionFactoryPin } from '../firmware/core/console/pin.js';
import { utf8Decode, utf8Encode } from '../firmware/core/bytes.js';
import { openPty, type Pty } from './console/pty.js';
import { PtySerialPort } from './ports/pty-serial.js';

import type { CborValue } from '../firmware/core/cbor.js';
import { Interlocks } from '../firmware/core/control/relays.js';
import { GuestSupervisor } from '../firmware/core/guests/supervisor.js';
import { consoleGuests, consoleRelays } from '../firmware/core/console/adapters.js';
import { NodeGuestEngine } from './guests/wasm-engine.js';
import { HostRelay } from './ports/host-relay.js';
import { preinstallGuests } from './guests/preinstall.js';

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
  // --- technician console (issue 7) ---
  /** Runs the technician console (CONSOLE.md) on a pseudo-terminal: `true` opens one (closed by stop()); a Pty reuses one. */
  consolePty?: boolean | Pty;
  /** What the console's `reboot` does; without it the console answers that this host cannot reboot. */
  onReboot?: () => void;
}

export interface HostAgent {
  agent: Agent;
  kv: KeyValue;
  log: RecordLog;
  meter?: MeterSource;
  guests: GuestSupervisor;
  interlocks: Interlocks;
  relays: HostRelay[];
  // --- technician console (issue 7) ---
  console?: Console;
  /** The console's pseudo-terminal; `consolePty.path` is what a technician opens. */
  consolePty?: Pty;
  /** The factory PIN "on the label" (on a host: kept in its KeyValue), until the meter's first pairing. */
  factoryPin?: string;
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
  // The data partition, as on a meter: the record log, then the persistent frame counters.
  const flash = o.flash ?? (o.dataDir
    ? new FileFlash(join(o.dataDir, 'flash.bin'), { blocks: DEFAULT_PARTITION.blocks, blockSize: DEFAULT_PARTITION.blockSize })
    : new MemoryFlash({ blocks: DEFAULT_PARTITION.blocks, blockSize: DEFAULT_PARTITION.blockSize }));
  const parts = splitPartition(flash);
  const log = new FlashLog(parts.log);
  const counters = new FlashCounters(parts.counters);
  useRandom(nodeRandom);
  loadIdentity(kv); // created now so the simulated meter's seed can come from it
  const seed = seedFrom(kv);
  const meter = parseMeterSpec(o.meter ?? 'sim', kv, log, o.intervalMs, seed, o.logger);
  const c = o.consolePty ? consoleParts(kv, o) : undefined;
  const logger = c?.logRing ?? o.logger;
  // Relays behind their interlocks, and the guest supervisor on Node's WebAssembly (GUESTS.md).
  const clock = new NodeClock();
  let agentRef: Agent | undefined;
  const early: [string, { [key: string]: CborValue }][] = [];
  const record = (kind: string, data: { [key: string]: CborValue }) => {
    if (agentRef) agentRef.recordEvent(kind, data);
    else early.push([kind, data]);
  };
  const relays = [1, 2, 3].map((id) => new HostRelay(id, logger));
  const interlocks = new Interlocks({ relays, clock, timers, kv, random: nodeRandom, onEvent: record });
  interlocks.powerUp();
  const guests = new GuestSupervisor({
    engine: new NodeGuestEngine(), clock, timers, kv, interlocks, onEvent: record, logger,
    onAck: (ack) => agentRef?.sendGuestAck(ack),
  });
  const uplinks = o.brokers.map((url, i) => new MqttTransport(url, o.brokers.length > 1 ? `link${i + 1}` : 'primary'));
  const agent = new Agent({
    kv, random: nodeRandom, clock, timers, log, counters, uplinks, meter,
    logger, model: o.model ?? 'gridlet-host', firmware: FIRMWARE_VERSION,
    capabilities: ['relay:1', 'guests'], topicPrefix: o.topicPrefix, onEvent: c?.onEvent ?? o.onEvent,
    heapUsed: () => process.memoryUsage().heapUsed,
  });
  agentRef = agent;
  agent.attachGuests(guests);
  guests.restore();
  if (o.guests?.length) for (const line of preinstallGuests(guests, o.guests)) logger?.log('info', line);
  for (const [kind, data] of early) agent.recordEvent(kind, data);
  const con = c ? startConsole(c, agent, kv, log, timers, o, guests, interlocks) : undefined;
  return {
    agent, kv, log, meter, guests, interlocks, relays, ...con,
    stop() {
      agent.stop();
      guests.dispose();
      interlocks.dispose();
      timers.clearAll();
      if (o.consolePty === true) con?.consolePty.close();
    },
  };
}

// --- technician console (issue 7) ---
/** KeyValue key where a host keeps its factory PIN in clear: the host's stand-in for a label. */
const LABEL_PIN_KEY = 'host.label.factory_pin';

function consoleParts(kv: KeyValue, o: HostAgentOptions) {
  const clock = new NodeClock();
  const readings = new ReadingsRing();
  const logRing = new LogRing(clock, o.logger);
  const onEvent: AgentOptions['onEvent'] = (name, detail) => {
    readings.onAgentEvent(name, detail);
    o.onEvent?.(name, detail);
  };
  // At first boot a host makes its factory PIN, as a factory would print one on the label.
  const fresh = provisionFactoryPin(kv);
  if (fresh) kv.set(LABEL_PIN_KEY, utf8Encode(fresh));
  const label = kv.get(LABEL_PIN_KEY);
  return { clock, readings, logRing, onEvent, factoryPin: label ? utf8Decode(label) : undefined };
}

function startConsole(c: NonNullable<ReturnType<typeof consoleParts>>, agent: Agent, kv: KeyValue, log: RecordLog,
  timers: NodeTimers, o: HostAgentOptions, guests: GuestSupervisor, interlocks: Interlocks) {
  const consolePty = o.consolePty === true ? openPty() : (o.consolePty as Pty);
  const bridge = new AgentBridge({
    agent, kv, log, clock: c.clock, timers, model: o.model ?? 'gridlet-host', firmware: FIRMWARE_VERSION,
    heapUsed: () => process.memoryUsage().heapUsed, readings: c.readings, logRing: c.logRing, reboot: o.onReboot,
    guests: consoleGuests(guests), relays: consoleRelays(interlocks),
  });
  const technicianConsole = new Console({ port: new PtySerialPort(consolePty), host: bridge, kv, clock: c.clock, timers });
  technicianConsole.start();
  const pairedOnce = agent.state === AgentState.paired || !!kv.get(PAIRED_ONCE_KEY);
  return { console: technicianConsole, consolePty, factoryPin: pairedOnce ? undefined : c.factoryPin };
}

/** A per-device seed for the simulated meter, so two meters differ but one meter is stable. */
function seedFrom(kv: KeyValue): number {
  const sk = kv.get('id.sk');
  if (!sk) return Math.floor(Math.random() * 2 ** 31);
  return ((sk[0] << 24) | (sk[1] << 16) | (sk[2] << 8) | sk[3]) >>> 0;
}
