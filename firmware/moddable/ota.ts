// The Updater port on an ESP32, over ESP-IDF's OTA (native/ota.c, module `gridlet/ota`): the slot a
// download goes to is ESP-IDF's next update partition (ota_0 / ota_1 of manifests/partitions-*.csv),
// boot control is its otadata, and a new image boots on trial (ESP_OTA_IMG_PENDING_VERIFY) because the
// bootloader is built with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE (manifests/*/sdkconfig). The core's
// update state machine (core/update/updates.ts) decides; this only moves bytes and marks.
//
// On the lin simulator the slots are a file partition driven by the core's FlashUpdater instead
// (main.ts, config otaPartition); `restart` ends the simulator there, for its launcher to boot a slot.
// How the bytes reach the slot (an OTA handle, or the partition for a resumed download): native/ota.c.

import { confirm, info, read, restart, rollback, setPending, write } from 'gridlet/ota';
import { BootState, type Updater } from '../core/ports.js';

export { restart };

export class EspOtaUpdater implements Updater {
  readonly slotSize: number;
  readonly eraseSize: number;
  readonly #trial: boolean;

  constructor() {
    const [slotSize, eraseSize, trial] = info();
    this.slotSize = slotSize as number;
    this.eraseSize = eraseSize as number;
    this.#trial = trial as boolean;
  }

  get bootState(): number {
    return this.#trial ? BootState.trial : BootState.normal;
  }

  get rejected(): boolean {
    return info()[3] as boolean;
  }

  /** Erasing is ESP-IDF's (esp_ota_write) or, for a download resumed after a restart, the module's (native/ota.c). */
  write(offset: number, bytes: Uint8Array): void {
    write(offset, bytes);
  }

  read(offset: number, length: number): Uint8Array {
    return new Uint8Array(read(offset, length));
  }

  setPending(size: number): void {
    if (this.#trial) throw new Error('a new image is on trial: confirm it before another one is marked pending');
    if (!(size > 0 && size <= this.slotSize)) throw new RangeError(`an image of ${size} bytes does not fit the ${this.slotSize}-byte slot`);
    setPending();
  }

  confirm(): void {
    if (this.#trial) confirm();
  }

  rollback(): void {
    if (this.#trial) rollback();
  }
}
