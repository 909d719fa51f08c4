// One meter with A/B slots in a simulated world (virtual time, an in-memory bus, the MiniGateway serving
// firmware): the device is composed as on a meter (firmware/core/device.ts), and a restart runs the
// bootloader (update/boot-control.ts) and boots what the chosen slot holds. A test image is text:
// "gridlet-test-image <version> [no-reconnect]\n" and padding; the factory image is 0.1.0.

import { utf8Decode, utf8Encode } from '../../../firmware/core/bytes.js';
import { createDevice, type Device } from '../../../firmware/core/device.js';
import { MemoryFlash } from '../../../firmware/core/log/memory-flash.js';
import type { Updater } from '../../../firmware/core/ports.js';
import { bootloader, FACTORY_SLOT, FlashUpdater, OtaFlash } from '../../../firmware/core/update/boot-control.js';
import {
  encodeManifest, imageCid, keyIdOf, releaseKeyPair, signManifest, type SignedRelease,
} from '../../../firmware/core/update/release.js';
import { Body } from '../../../firmware/core/wire/bodies.js';
import { hex, MiniGateway } from './mini-gateway.js';
import { BusTransport, MemoryBus, MemoryKV, SeededRandom, SimTime, simTimers } from './sim-world.js';

export const RELEASE_KEY = releaseKeyPair(new Uint8Array(32).fill(7));
export const OTHER_KEY = releaseKeyPair(new Uint8Array(32).fill(9));

export function testImage(version: string, size = 40_000, fault = ''): Uint8Array {
  const head = utf8Encode(`gridlet-test-image ${version}${fault ? ' ' + fault : ''}\n`);
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + version.length) & 0xff;
  b.set(head, 0);
  return b;
}

export function release(image: Uint8Array, o: { version: string; models?: string[]; minVersion?: string; key?: { publicKey: Uint8Array; secretKey: Uint8Array }; size?: number }): SignedRelease {
  const key = o.key ?? RELEASE_KEY;
  const manifest = encodeManifest({
    cid: imageCid(image), size: o.size ?? image.length, version: o.version, models: o.models ?? ['test-meter'],
    minVersion: o.minVersion ?? '0.0.0', keyId: keyIdOf(key.publicKey), created: 1_700_000_000,
  });
  return { manifest, signature: signManifest(manifest, key.secretKey) };
}

export class OtaWorld {
  time = new SimTime();
  bus = new MemoryBus();
  /** Where an image that never reconnects sends its frames: nobody listens. */
  nowhere = new MemoryBus();
  kv = new MemoryKV();
  random = new SeededRandom(5);
  data = new MemoryFlash({ blocks: 16, blockSize: 4096 });
  ota = new MemoryFlash({ blocks: 2 + 2 * 16, blockSize: 4096 });
  gw = new MiniGateway(this.bus);
  device!: Device;
  version = '0.1.0';
  boots: { slot: number; version: string; trial: boolean }[] = [];
  /** Values of channel 3 taken (each must reach the gateway). */
  taken: number[] = [];
  /** A platform that refuses a write (ESP-IDF: not an app image, a flash error): the error it throws, or undefined. */
  refuseWrite?: (offset: number) => Error | undefined;
  #next = 1;

  constructor(readonly trialMs = 60_000) {
    this.boot();
  }

  boot(): void {
    const choice = bootloader(this.ota);
    let version = '0.1.0', fault = '';
    if (choice.slot !== FACTORY_SLOT) {
      const head = new OtaFlash(this.ota).readSlot(choice.slot, 0, 64);
      const line = utf8Decode(head.slice(0, head.indexOf(10))) ?? '';
      const parts = line.split(' ');
      if (parts[0] !== 'gridlet-test-image') throw new Error(`slot ${choice.slot} does not hold a bootable image: ${line}`);
      version = parts[1];
      fault = parts[2] ?? '';
    }
    this.version = version;
    this.boots.push({ slot: choice.slot, version, trial: choice.trial });
    const timers = simTimers(this.time);
    this.device = createDevice({
      kv: this.kv, random: this.random, clock: this.time, timers, flash: this.data,
      uplinks: [new BusTransport(fault === 'no-reconnect' ? this.nowhere : this.bus, 'primary')],
      model: 'test-meter', firmware: version, updater: this.#updater(), releaseKeys: [RELEASE_KEY.publicKey],
      reboot: () => this.restart(), trialMs: this.trialMs,
    });
    this.device.agent.start();
  }

  /** The slots' FlashUpdater, with its writes passed through refuseWrite. */
  #updater(): Updater {
    const u = new FlashUpdater(this.ota);
    const world = this;
    return {
      get slotSize() { return u.slotSize; },
      get eraseSize() { return u.eraseSize; },
      get bootState() { return u.bootState; },
      get rejected() { return u.rejected; },
      write(offset, bytes) {
        const e = world.refuseWrite?.(offset);
        if (e) throw e;
        u.write(offset, bytes);
      },
      read: (offset, length) => u.read(offset, length),
      setPending: (size) => u.setPending(size),
      confirm: () => u.confirm(),
      rollback: () => u.rollback(),
    };
  }

  /** A restart: the running device stops where it is; the bootloader chooses; the new image boots. */
  restart(): void {
    this.device.stop();
    this.boot();
  }

  run(ms: number): void {
    this.time.advance(ms, () => { while (this.bus.deliver() || this.nowhere.deliver()); });
  }

  pair(): void {
    this.run(10);
    this.gw.pair(this.device.agent.deviceId, this.device.agent.identity.pairCode);
    this.run(10);
  }

  take(): void {
    const v = this.#next++;
    this.device.agent.recordReadings(NaN, [[3, v]]);
    this.taken.push(v);
  }

  offer(image: Uint8Array, r: SignedRelease): void {
    this.gw.images.set(hex(imageCid(image)), image);
    this.gw.send(this.device.agent.deviceId, { type: Body.fwOffer, manifest: r.manifest, signature: r.signature });
  }

  states(): string[] {
    return this.gw.fwStatus.map((s) => s.state);
  }

  firmwareEvents(): { [k: string]: unknown }[] {
    return this.gw.stored(this.device.agent.deviceId).filter((r) => r.kind === 2 && r.a === 'firmware').map((r) => r.b as { [k: string]: unknown });
  }

  storedValues(): number[] {
    return this.gw.stored(this.device.agent.deviceId).filter((r) => r.kind === 1 && r.a === 3).map((r) => r.b as number);
  }
}
