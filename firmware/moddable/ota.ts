// The Updater port on an ESP32, over ESP-IDF's OTA (native/ota.c, module `gridlet/ota`): the slot a
// download goes to is ESP-IDF's next update partition (ota_0 / ota_1 of manifests/partitions-*.csv),
// boot control is its otadata, and a new image boots on trial (ESP_OTA_IMG_PENDING_VERIFY) because the
// bootloader is built with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE (manifests/*/sdkconfig). The core's
// update state machine (core/update/updates.ts) decides; this only moves bytes and marks.
//
// On the lin simulator the slots are a file partition driven by the core's FlashUpdater instead
// (main.ts, config otaPartition); `restart` ends the simulator there, for its launcher to boot a slot.

import { confirm, erase, info, read, restart, rollback, setPending, write } from 'gridlet/ota';
import { BootState, type Updater } from '../core/ports.js';

export { restart };

export class EspOtaUpdater implements Updater {
  readonly slotSize: number;
  readonly eraseSize: number;
  readonly #trial: boolean;
  /** Bytes of the update slot known erased (from its start); -1 until the first write of this boot. */
  #erasedTo = -1;

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

  write(offset: number, bytes: Uint8Array): void {
    const end = offset + bytes.length;
    if (offset < 0 || end > this.slotSize) throw new RangeError(`${bytes.length} bytes at ${offset} are outside the ${this.slotSize}-byte slot`);
    const e = this.eraseSize;
    // Erase ahead of the writes, a sector at a time (a resumed download starts at a sector boundary).
    if (this.#erasedTo < 0 || offset < this.#erasedTo - e) this.#erasedTo = Math.floor(offset / e) * e;
    if (this.#erasedTo < end) {
      const to = Math.min(this.slotSize, Math.ceil(end / e) * e);
      erase(this.#erasedTo, to - this.#erasedTo);
      this.#erasedTo = to;
    }
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
