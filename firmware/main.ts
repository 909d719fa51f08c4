// Firmware entry: builds the Moddable ports and hands them to the core's device composition
// (firmware/core/device.ts), the same one the host agent uses. This file only reads the settings
// (pins, partitions, brokers: manifests/, docs/firmware.md) and makes the ports.
//
// mcconfig preloads this module: its top level runs when the image is built, and everything it
// creates then is frozen into flash. So nothing happens at the top level; the runtime calls the
// default export at boot.

import SNTP from 'sntp';
import settings from 'gridlet/settings';
import { stats as heapStats } from 'gridlet/xs-heap';
import Timer from 'timer';
import { createDevice } from './core/device.js';
import { configuredMeterType } from './core/meter/keys.js';
import { isMeterType } from './core/meter/meter.js';
import { fromHex } from './core/bytes.js';
import type { Relay, Transport, Updater } from './core/ports.js';
import { FlashUpdater } from './core/update/boot-control.js';
import { isVersion } from './core/update/release.js';
import { PartitionFlash } from './moddable/flash.js';
import { PreferenceStore } from './moddable/kv.js';
import { ConsoleLogger } from './moddable/logger.js';
import { ModdableMqttTransport } from './moddable/mqtt.js';
import { EspOtaUpdater, restart } from './moddable/ota.js';
import { meterLine, P1Meter } from './moddable/p1-meter.js';
import { HardwareRandom } from './moddable/random.js';
import { DigitalRelay } from './moddable/relay.js';
import { UartPort } from './moddable/serial.js';
import { brokerList, flag, num, relayPins, str } from './moddable/settings.js';
import { ModdableClock, ModdableTimers } from './moddable/timers.js';
import { Wasm3Engine } from './moddable/wasm3/engine.js';
import { WifiStation } from './moddable/wifi.js';

/** The version an image reports unless its config sets `firmwareVersion` (a release build does). */
export const FIRMWARE_VERSION = '0.1.0';

export default function main(): void {
  try {
    boot();
  } catch (e) {
    // Without a debugger attached, the runtime reports only "unhandled exception": say which.
    trace(`gridlet: boot failed: ${(e as Error)?.name}: ${(e as Error)?.message}\n${(e as Error)?.stack ?? ''}\n`);
    throw e;
  }
}

function boot(): void {
  const config = settings();
  const random = new HardwareRandom();
  const word = new Uint8Array(4);
  const random01 = (): number => {
    random.fill(word);
    return (((word[0] << 24) | (word[1] << 16) | (word[2] << 8) | word[3]) >>> 0) / 4294967296;
  };
  // Log lines go to the trace (xsbug, or the simulator's stdout) and into the console's `log` ring.
  const logger = new ConsoleLogger(undefined);

  // The technician's console: its own UART, away from UART0 where xsbug and the boot log live (on
  // the simulator: a serial device such as a pseudo-terminal).
  const consoleDevice = str(config.consoleDevice, '');
  const consolePort = consoleDevice || config.consoleRx !== undefined || config.consoleTx !== undefined
    ? new UartPort({
      port: num(config.consolePort, 1),
      device: consoleDevice || undefined,
      receive: config.consoleRx !== undefined ? num(config.consoleRx, -1) : undefined,
      transmit: config.consoleTx !== undefined ? num(config.consoleTx, -1) : undefined,
      baud: num(config.consoleBaud, 115200),
    })
    : undefined;
  const kv = new PreferenceStore();
  // The meter's port, receive only (the meter's data line, through its inverter): its type (meterType,
  // or what the technician set with `config set meter.type`) gives the line settings (docs/firmware.md).
  const configured = str(config.meterType, 'dsmr');
  const meterType = configuredMeterType(kv, isMeterType(configured) ? configured : 'dsmr');
  const line = meterLine(meterType);
  const p1Device = str(config.p1Device, '');
  const meter = p1Device || config.p1Rx !== undefined
    ? new P1Meter(new UartPort({
      port: num(config.p1Port, 2),
      device: p1Device || undefined,
      receive: num(config.p1Rx, -1),
      baud: num(config.p1Baud, line.baud),
      dataBits: line.dataBits,
      parity: line.parity,
      sevenBit: flag(config.p1SevenBit),
    }), { type: meterType, kv })
    : undefined;

  const heapUsed = () => {
    const h = heapStats();
    return h[0] * h[1] + h[4];
  };
  const clock = new ModdableClock();
  const dns = str(config.dns, '1.1.1.1,8.8.8.8').split(',').map((s) => s.trim());
  const uplinks = brokerList(str(config.broker, '')).map((b) => new ModdableMqttTransport({ ...b, dns, random01 }));
  if (!uplinks.length) logger.log('error', 'no broker configured: set config "broker" (docs/firmware.md)');
  const relays: Relay[] = relayPins(str(config.relays, '')).map(
    (r) => new DigitalRelay(r.id, r.pin, flag(config.relayActiveLow)));

  // Firmware over the air (docs/firmware.md): the release keys built in, the version this image is, its
  // trial period, and its slots: ESP-IDF's OTA partitions, or on the simulator a file partition
  // (otaPartition) whose boot control the simulator's launcher plays the bootloader on.
  const firmware = str(config.firmwareVersion, FIRMWARE_VERSION);
  if (!isVersion(firmware)) throw new Error(`config firmwareVersion "${firmware}" must be X.Y.Z`);
  const releaseKeys = str(config.releaseKeys, '').split(',').map((k) => k.trim()).filter((k) => k).map((k) => {
    if (!/^[0-9a-fA-F]{64}$/.test(k)) throw new Error(`config releaseKeys: "${k.slice(0, 70)}" is not a release public key (64 hex digits, gridlet firmware keygen)`);
    return fromHex(k);
  });
  const otaPartition = str(config.otaPartition, '');
  let updater: Updater | undefined;
  if (releaseKeys.length) {
    try {
      updater = otaPartition ? new FlashUpdater(new PartitionFlash(otaPartition)) : new EspOtaUpdater();
    } catch (e) {
      logger.log('error', `no firmware updates: ${(e as Error).message}`);
    }
  }

  const device = createDevice({
    kv,
    random,
    clock,
    timers: new ModdableTimers(),
    flash: new PartitionFlash(str(config.logPartition, 'gridlog'), num(config.logWriteAlign, 1)),
    uplinks: uplinks as Transport[],
    meter,
    relays,
    relayConfig: relays.map((r) => ({ id: r.id, minDwellS: num(config.relayMinDwellS, 60), maxTogglesPerHour: num(config.relayMaxTogglesPerHour, 6) })),
    guestEngine: new Wasm3Engine(),
    console: consolePort,
    logger,
    model: str(config.model, 'gridlet-esp32'),
    firmware,
    updater,
    releaseKeys,
    trialMs: num(config.trialS, 600) * 1000,
    reboot: restart,
    capabilities: [...relays.map((r) => `relay:${r.id}`), 'guests', ...(meter ? ['p1', `meter:${meterType}`] : [])],
    topicPrefix: str(config.prefix, 'gl'),
    heapUsed,
  });
  device.agent.start();
  // The pair code and the factory PIN go to the trace (xsbug, the factory's fixture) only, never to the
  // log ring: `log` on the console needs no PIN (docs/firmware.md "Hardening").
  device.logRing.log('info', `gridlet ${firmware} id ${device.agent.deviceId}${updater ? ` firmware ${device.updates?.state}` : ''}`);
  trace(`gridlet ${firmware} id ${device.agent.deviceId} pair code ${device.agent.identity.pairCode}\n`);
  // The factory reads the PIN here, once, at first boot, to print the label.
  if (device.factoryPin) trace(`factory PIN ${device.factoryPin}\n`);

  const ntp = str(config.ntp, '');
  const wifi = new WifiStation({
    ssid: str(config.wifiSsid, ''),
    password: str(config.wifiPassword, ''),
    random01,
    onUp() {
      if (ntp) {
        new SNTP({ host: ntp }, (message, value) => {
          if (message === SNTP.time && value) clock.set(value * 1000);
        });
      }
      for (const u of uplinks) u.kick();
    },
    onDown(reason) {
      logger.log('warn', reason);
    },
  });
  // The meter's keys, pair secret, factory PIN and boot nonce are made by now (createDevice, under
  // the bootloader's entropy source); from here on the radio is the RNG's entropy.
  random.radioStarting();
  wifi.start();

  // `traceHeapS=N`: every N seconds a line with the XS heaps and stack (docs/firmware.md, "Heap budget").
  const every = num(config.traceHeapS, 0);
  if (every > 0) {
    Timer.repeat(() => {
      const [slot, slots, slotsPeak, slotsAllocated, chunks, chunksPeak, chunksAllocated, stackPeak, stack] = heapStats();
      trace(`heap slot=${slot} slots=${slots} slotsPeak=${slotsPeak} slotsAllocated=${slotsAllocated} chunks=${chunks} chunksPeak=${chunksPeak} chunksAllocated=${chunksAllocated} stackPeak=${stackPeak} stack=${stack}\n`);
    }, every * 1000);
  }
}
