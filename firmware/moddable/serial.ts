// The SerialPort port over ECMA-419 `embedded:io/serial`: the technician's console on one UART, the
// meter's P1 port on another. Writes that the UART cannot take yet wait in a bounded queue (console
// output is dropped, and counted, beyond it).
// Only what every Moddable implementation of the class does is used: `read(count)` returning an
// ArrayBuffer and `write(ArrayBuffer)`. The ESP32's also takes a buffer to read into and a view to
// write, the simulator's (lin, a serial device such as a pseudo-terminal) does not.

import Serial from 'embedded:io/serial';
import type { SerialPort } from '../core/ports.js';

export interface SerialOptions {
  /** UART number (the ESP32 has 0–2; 0 carries the xsbug debugger and the boot log). */
  port: number;
  /** The simulator's serial device (`/dev/pts/N`); on a meter, the pins below. */
  device?: string;
  receive?: number;
  transmit?: number;
  baud: number;
  /** Bytes held for the UART when it is busy. */
  queueBytes?: number;
  /** Clears bit 7 of every byte received: DSMR 2.2/3 meters send 7E1, read here as 8N1. */
  sevenBit?: boolean;
  /**
   * Line settings beyond 8N1, for HAN ports (2400 8E1). Passed to `embedded:io/serial` as Moddable's
   * `data` and `parity` options; a platform whose serial module ignores them reads 8N1 (see
   * docs/firmware.md "Meter types").
   */
  dataBits?: 7 | 8;
  parity?: 'none' | 'even' | 'odd';
}

export class UartPort implements SerialPort {
  /** Bytes dropped because the transmit queue was full. */
  dropped = 0;
  #io: Serial;
  #onBytes: ((bytes: Uint8Array) => void) | undefined;
  #queue: Uint8Array;
  #head = 0;
  #len = 0;
  #writable = 0;
  #sevenBit: boolean;

  constructor(o: SerialOptions) {
    this.#queue = new Uint8Array(o.queueBytes ?? 2048);
    this.#sevenBit = o.sevenBit ?? false;
    const self = this;
    const common = {
      port: o.port,
      baud: o.baud,
      ...(o.parity && o.parity !== 'none' ? { data: o.dataBits ?? 8, parity: o.parity } : {}),
      format: 'buffer' as const,
      onReadable(this: Serial, count: number) {
        self.#readable(count);
      },
      onWritable(this: Serial, count: number) {
        self.#writable = count;
        self.#drain();
      },
    };
    if (o.device !== undefined) this.#io = new Serial({ ...common, device: o.device } as unknown as ConstructorParameters<typeof Serial>[0]);
    else if (o.receive !== undefined) this.#io = new Serial({ ...common, receive: o.receive, transmit: o.transmit });
    else if (o.transmit !== undefined) this.#io = new Serial({ ...common, transmit: o.transmit });
    else throw new RangeError(`serial port ${o.port} needs a receive or a transmit pin (or a device on the simulator)`);
  }

  onReadable(callback: (bytes: Uint8Array) => void): void {
    this.#onBytes = callback;
  }

  write(bytes: Uint8Array): void {
    if (this.#len === 0 && bytes.length <= this.#writable) {
      this.#io.write(own(bytes));
      this.#writable -= bytes.length;
      return;
    }
    const q = this.#queue;
    for (let i = 0; i < bytes.length; i++) {
      if (this.#len === q.length) {
        this.dropped += bytes.length - i;
        break;
      }
      q[(this.#head + this.#len) % q.length] = bytes[i];
      this.#len++;
    }
    this.#drain();
  }

  close(): void {
    this.#io.close();
  }

  #readable(count: number): void {
    if (count <= 0) return;
    const chunk = this.#io.read(count);
    if (!(chunk instanceof ArrayBuffer) || chunk.byteLength === 0) return;
    const rx = new Uint8Array(chunk);
    if (this.#sevenBit) for (let i = 0; i < rx.length; i++) rx[i] &= 0x7f;
    this.#onBytes?.(rx);
  }

  #drain(): void {
    const q = this.#queue;
    while (this.#len > 0 && this.#writable > 0) {
      const contiguous = Math.min(this.#len, q.length - this.#head, this.#writable);
      this.#io.write(q.slice(this.#head, this.#head + contiguous).buffer);
      this.#head = (this.#head + contiguous) % q.length;
      this.#len -= contiguous;
      this.#writable -= contiguous;
    }
  }
}

/** The bytes as an ArrayBuffer of their own (what every implementation's write takes). */
function own(bytes: Uint8Array): ArrayBuffer {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes.buffer as ArrayBuffer
    : bytes.slice().buffer;
}
