// Firmware entry: builds the Moddable ports and hands them to the core's Agent. Everything the
// meter does is in firmware/core; this file only chooses pins, partitions and brokers from the
// manifest's config (manifests/, docs/firmware.md) and wires them.

import config from 'mc/config';
import Instrumentation from 'instrumentation';
import SNTP from 'sntp';
import { Agent } from './core/agent/agent.js';
import { AgentBridge } from './core/console/agent-bridge.js';
import { Console } from './core/console/console.js';
import { LogRing } from './core/console/log-ring.js';
import { provisionFactoryPin } from './core/console/pin.js';
import { ReadingsRing } from './core/console/readings-ring.js';
import { FlashLog } from './core/log/flash-log.js';
import type { Transport } from './core/ports.js';
import { PartitionFlash } from './moddable/flash.js';
import { PreferenceStore } from './moddable/kv.js';
import { ConsoleLogger } from './moddable/logger.js';
import { ModdableMqttTransport } from './moddable/mqtt.js';
import { P1Meter } from './moddable/p1-meter.js';
import { HardwareRandom } from './moddable/random.js';
import { UartPort } from './moddable/serial.js';
import { ModdableClock, ModdableTimers } from './moddable/timers.js';
import { Wasm3Engine } from './moddable/wasm3/engine.js';
import { WifiStation } from './moddable/wifi.js';

export const FIRMWARE_VERSION = '0.1.0';

/** Config values arrive as strings when given on the mcconfig command line (`p1Rx=16`). */
function num(v: unknown, fallback: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : fallback;
}
function str(v: unknown, fallback: string): string {
  return typeof v === 'string' && v !== '' ? v : fallback;
}
function flag(v: unknown): boolean {
  return v === true || v === 1 || v === 'true' || v === '1';
}

/** `broker` is a comma-separated list in order of preference: `host[:port],host[:port]`. */
function brokers(list: string): { host: string; port: number }[] {
  return list
    .split(',')
    .map((s) => s.trim().replace(/^mqtts?:\/\//, ''))
    .filter((s) => s !== '')
    .map((s) => {
      const i = s.lastIndexOf(':');
      return i > 0 ? { host: s.slice(0, i), port: num(s.slice(i + 1), 1883) } : { host: s, port: 1883 };
    });
}

const random = new HardwareRandom();
const word = new Uint8Array(4);
function random01(): number {
  random.fill(word);
  return (((word[0] << 24) | (word[1] << 16) | (word[2] << 8) | word[3]) >>> 0) / 4294967296;
}

// The technician's console: its own UART, away from UART0 where xsbug and the boot log live.
const consolePort = config.consoleRx !== undefined || config.consoleTx !== undefined
  ? new UartPort({
    port: num(config.consolePort, 1),
    receive: config.consoleRx !== undefined ? num(config.consoleRx, -1) : undefined,
    transmit: config.consoleTx !== undefined ? num(config.consoleTx, -1) : undefined,
    baud: num(config.consoleBaud, 115200),
  })
  : undefined;
// Log lines go to xsbug's trace and into the ring the console's `log` command shows; the console
// UART itself belongs to the console session.
const logger = new ConsoleLogger(undefined);

// The meter's P1 port: receive only (the meter's data line, through its inverter).
const meter = config.p1Rx !== undefined
  ? new P1Meter(new UartPort({
    port: num(config.p1Port, 2),
    receive: num(config.p1Rx, -1),
    baud: num(config.p1Baud, 115200),
    sevenBit: flag(config.p1SevenBit),
  }))
  : undefined;

const clock = new ModdableClock();
const timers = new ModdableTimers();
const kv = new PreferenceStore();
const readings = new ReadingsRing();
const logRing = new LogRing(clock, logger);
const log = new FlashLog(new PartitionFlash(str(config.logPartition, 'gridlog'), num(config.logWriteAlign, 1)));
const dns = str(config.dns, '1.1.1.1,8.8.8.8').split(',').map((s) => s.trim());
const uplinks: ModdableMqttTransport[] = brokers(str(config.broker, '')).map(
  (b) => new ModdableMqttTransport({ ...b, dns, random01 }),
);
if (!uplinks.length) logger.log('error', 'no broker configured: set config "broker" (docs/firmware.md)');

const slotsUsed = Instrumentation.map('XS Slot Heap Used');
const chunksUsed = Instrumentation.map('XS Chunk Heap Used');

const agent = new Agent({
  kv,
  random,
  clock,
  timers,
  log,
  uplinks: uplinks as Transport[],
  meter,
  logger: logRing,
  onEvent: (name, detail) => readings.onAgentEvent(name, detail),
  model: str(config.model, 'gridlet-esp32'),
  firmware: FIRMWARE_VERSION,
  capabilities: meter ? ['p1', 'guests'] : ['guests'],
  topicPrefix: str(config.prefix, 'gl'),
  heapUsed: () => (Instrumentation.get(slotsUsed) ?? 0) + (Instrumentation.get(chunksUsed) ?? 0),
});
agent.start();
logRing.log('info', `gridlet ${FIRMWARE_VERSION} id ${agent.deviceId} pair code ${agent.identity.pairCode}`);

// At first boot the meter makes its factory PIN (CONSOLE.md): the factory reads it here, once, to
// print the label. It is never logged where the console could show it.
const factoryPin = provisionFactoryPin(kv);
if (factoryPin) trace(`factory PIN ${factoryPin}\n`);

// The technician's console on its own UART (CONSOLE.md).
if (consolePort) {
  const heapUsed = () => (Instrumentation.get(slotsUsed) ?? 0) + (Instrumentation.get(chunksUsed) ?? 0);
  const host = new AgentBridge({
    agent, kv, log, clock, timers, model: str(config.model, 'gridlet-esp32'), firmware: FIRMWARE_VERSION,
    heapUsed, readings, logRing,
  });
  new Console({ port: consolePort, host, kv, clock, timers }).start();
}

// The guest engine is ready for the supervisor; GUESTS.md limits are enforced inside it.
export const guestEngine = new Wasm3Engine();
// TODO(guests): once the Agent takes a guest supervisor (firmware/core/guests/supervisor.ts is not
// wired into agent.ts yet), construct `new GuestSupervisor({ engine: guestEngine, clock, timers, kv,
// interlocks })` here, with Interlocks over relays on embedded:io/digital, and pass it to the Agent
// and to the AgentBridge (`guests`, `relays`).

const wifi = new WifiStation({
  ssid: str(config.ssid, ''),
  password: str(config.password, ''),
  random01,
  onUp() {
    new SNTP({ host: str(config.ntp, 'pool.ntp.org') }, (message, value) => {
      if (message === SNTP.time && value) clock.set(value * 1000);
    });
    for (const u of uplinks) u.kick();
  },
  onDown(reason) {
    logger.log('warn', reason);
  },
});
wifi.start();
