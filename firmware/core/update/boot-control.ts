// A/B slots and boot control on a plain Flash: the core's Updater for every platform whose bootloader
// is played in software (the host agent, the lin simulator's launcher, the simulations), with the
// semantics of ESP-IDF's OTA data and app rollback, which the ESP32 adapter uses for real
// (firmware/moddable/ota.ts):
//
//   block 0, block 1   boot control: two entries, the newer (higher seq, valid CRC) rules; a new entry is
//                      written to the other block, so a power cut in the middle leaves the older one
//   then               slot 0 and slot 1, each (blocks - 2) / 2 erase blocks
//
// Entry (32 bytes): "GLO1" | seq u32 | slot i8 | state u8 | prev i8 | 0 | size u32 | prevSize u32 |
// crc32 of bytes 0-23 | zero padding. Slot -1 is the factory image (the one flashed by cable, outside
// the slots). States follow ESP-IDF's: new (pending, not booted yet) → pending-verify (booted once on
// trial) → valid (confirmed) or aborted (the trial failed: the bootloader boots `prev`).

import { crc32 } from '../log/crc32.js';
import { BootState, type Flash, type Updater } from '../ports.js';

export const OtaState = { new: 0, pendingVerify: 1, valid: 2, aborted: 3 } as const;
export const FACTORY_SLOT = -1;
const ENTRY_BYTES = 32;
const MAGIC = [0x47, 0x4c, 0x4f, 0x31]; // "GLO1"

export interface OtaEntry {
  seq: number;
  /** The slot this entry is about: the pending/trial/confirmed image, or the one given up. */
  slot: number;
  state: number;
  /** The slot that ran before `slot` (booted when the trial is given up). */
  prev: number;
  size: number;
  prevSize: number;
}

/** What the bootloader chose: the slot (FACTORY_SLOT for the built-in image), its size, and whether it runs on trial. */
export interface BootChoice {
  slot: number;
  size: number;
  trial: boolean;
}

function encodeEntry(e: OtaEntry): Uint8Array {
  const b = new Uint8Array(ENTRY_BYTES);
  b.set(MAGIC, 0);
  const v = new DataView(b.buffer);
  v.setUint32(4, e.seq);
  v.setInt8(8, e.slot);
  v.setUint8(9, e.state);
  v.setInt8(10, e.prev);
  v.setUint32(12, e.size);
  v.setUint32(16, e.prevSize);
  v.setUint32(20, crc32(b, 0, 20));
  return b;
}

function decodeEntry(b: Uint8Array): OtaEntry | undefined {
  for (let i = 0; i < 4; i++) if (b[i] !== MAGIC[i]) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v.getUint32(20) !== crc32(b, 0, 20)) return undefined;
  const e = { seq: v.getUint32(4), slot: v.getInt8(8), state: v.getUint8(9), prev: v.getInt8(10), size: v.getUint32(12), prevSize: v.getUint32(16) };
  if (e.slot < -1 || e.slot > 1 || e.prev < -1 || e.prev > 1 || e.state > 3) return undefined;
  return e;
}

/** The boot-control area and slot geometry of one Flash. */
export class OtaFlash {
  readonly slotBlocks: number;
  readonly slotSize: number;
  constructor(readonly flash: Flash) {
    if (flash.blocks < 4) throw new RangeError(`an OTA flash needs at least 4 blocks (2 of boot control, 1 per slot); it has ${flash.blocks}`);
    this.slotBlocks = Math.floor((flash.blocks - 2) / 2);
    this.slotSize = this.slotBlocks * flash.blockSize;
  }

  /** The ruling entry and the block it is in (undefined: no valid entry, the factory image boots). */
  current(): { entry: OtaEntry; block: number } | undefined {
    let best: { entry: OtaEntry; block: number } | undefined;
    for (let block = 0; block < 2; block++) {
      const e = decodeEntry(this.flash.read(block * this.flash.blockSize, ENTRY_BYTES));
      if (e && (!best || e.seq > best.entry.seq)) best = { entry: e, block };
    }
    return best;
  }

  /** Writes the next entry into the block the ruling one is not in. */
  put(e: Omit<OtaEntry, 'seq'>): OtaEntry {
    const cur = this.current();
    const block = cur ? 1 - cur.block : 0;
    const entry = { ...e, seq: cur ? cur.entry.seq + 1 : 1 };
    this.flash.eraseBlock(block);
    this.flash.write(block * this.flash.blockSize, encodeEntry(entry));
    return entry;
  }

  slotOffset(slot: number): number {
    return (2 + slot * this.slotBlocks) * this.flash.blockSize;
  }

  /** The first `size` bytes of a slot. */
  readSlot(slot: number, offset: number, length: number): Uint8Array {
    if (offset < 0 || length < 0 || offset + length > this.slotSize) throw new RangeError(`${length} bytes at ${offset} are outside the ${this.slotSize}-byte slot`);
    return this.flash.read(this.slotOffset(slot) + offset, length);
  }
}

/**
 * The bootloader's choice, with its side effects on boot control (ESP-IDF's): a pending image is booted
 * on trial and marked so; a trial image found still unconfirmed at the next boot is given up (aborted)
 * and the one before it boots.
 */
export function bootloader(flash: Flash): BootChoice {
  const ota = new OtaFlash(flash);
  const cur = ota.current();
  if (!cur) return { slot: FACTORY_SLOT, size: 0, trial: false };
  const e = cur.entry;
  switch (e.state) {
    case OtaState.new:
      ota.put({ slot: e.slot, state: OtaState.pendingVerify, prev: e.prev, size: e.size, prevSize: e.prevSize });
      return { slot: e.slot, size: e.size, trial: true };
    case OtaState.pendingVerify:
      ota.put({ slot: e.slot, state: OtaState.aborted, prev: e.prev, size: e.size, prevSize: e.prevSize });
      return { slot: e.prev, size: e.prevSize, trial: false };
    case OtaState.aborted:
      return { slot: e.prev, size: e.prevSize, trial: false };
    default:
      return { slot: e.slot, size: e.size, trial: false };
  }
}

/** What runs now, read from boot control after the bootloader has run (no side effects). */
export function runningImage(flash: Flash): BootChoice {
  const cur = new OtaFlash(flash).current();
  if (!cur) return { slot: FACTORY_SLOT, size: 0, trial: false };
  const e = cur.entry;
  if (e.state === OtaState.pendingVerify) return { slot: e.slot, size: e.size, trial: true };
  if (e.state === OtaState.valid) return { slot: e.slot, size: e.size, trial: false };
  // aborted, or new before the restart that boots it: what ran before it runs.
  return { slot: e.prev, size: e.prevSize, trial: false };
}

/** The Updater over a Flash laid out as above. */
export class FlashUpdater implements Updater {
  readonly slotSize: number;
  readonly eraseSize: number;
  readonly #ota: OtaFlash;
  readonly #running: BootChoice;
  /** Bytes of the inactive slot known erased (from its start); -1 until the first write of this boot. */
  #erasedTo = -1;

  constructor(readonly flash: Flash) {
    this.#ota = new OtaFlash(flash);
    this.slotSize = this.#ota.slotSize;
    this.eraseSize = flash.blockSize;
    this.#running = runningImage(flash);
  }

  get bootState(): number {
    return this.#running.trial ? BootState.trial : BootState.normal;
  }

  get runningSlot(): number {
    return this.#running.slot;
  }

  /** The slot a download goes to: never the running one, nor (during a trial) the one to return to. */
  get inactiveSlot(): number {
    return this.#running.slot === 0 ? 1 : 0;
  }

  get rejected(): boolean {
    const cur = this.#ota.current();
    return !!cur && cur.entry.state === OtaState.aborted && cur.entry.slot === this.inactiveSlot;
  }

  write(offset: number, bytes: Uint8Array): void {
    const end = offset + bytes.length;
    if (offset < 0 || end > this.slotSize) throw new RangeError(`${bytes.length} bytes at ${offset} are outside the ${this.slotSize}-byte slot`);
    const bs = this.flash.blockSize;
    if (this.#erasedTo < 0 || offset < this.#erasedTo - bs) this.#erasedTo = Math.floor(offset / bs) * bs;
    const first = this.#ota.slotOffset(this.inactiveSlot) / bs;
    while (this.#erasedTo < end) {
      this.flash.eraseBlock(first + this.#erasedTo / bs);
      this.#erasedTo += bs;
    }
    // Whole write-align units only (flash encryption writes 16 bytes at a time): pad with the erased value.
    const a = this.flash.writeAlign;
    if (a > 1 && (offset % a !== 0 || bytes.length % a !== 0)) throw new RangeError(`slot writes must be multiples of ${a} bytes at multiples of ${a}`);
    this.flash.write(this.#ota.slotOffset(this.inactiveSlot) + offset, bytes);
  }

  read(offset: number, length: number): Uint8Array {
    return this.#ota.readSlot(this.inactiveSlot, offset, length);
  }

  setPending(size: number): void {
    if (this.#running.trial) throw new Error('a new image is on trial: confirm it before another one is marked pending');
    if (!(size > 0 && size <= this.slotSize)) throw new RangeError(`an image of ${size} bytes does not fit the ${this.slotSize}-byte slot`);
    this.#ota.put({ slot: this.inactiveSlot, state: OtaState.new, prev: this.#running.slot, size, prevSize: this.#running.size });
  }

  confirm(): void {
    const cur = this.#ota.current();
    if (!this.#running.trial || !cur) return;
    this.#ota.put({ slot: this.#running.slot, state: OtaState.valid, prev: cur.entry.prev, size: cur.entry.size, prevSize: cur.entry.prevSize });
    this.#running.trial = false;
  }

  rollback(): void {
    const cur = this.#ota.current();
    if (!this.#running.trial || !cur) return;
    this.#ota.put({ slot: this.#running.slot, state: OtaState.aborted, prev: cur.entry.prev, size: cur.entry.size, prevSize: cur.entry.prevSize });
  }
}
