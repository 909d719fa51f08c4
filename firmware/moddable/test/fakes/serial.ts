// Fake `embedded:io/serial`: bytes in through `receive`, out into `sent`, with the UART's
// writable count under the test's control. Like the simulator's real module (modules/io/serial/lin),
// `read` takes a count and returns an ArrayBuffer, and `write` takes only an ArrayBuffer.

interface SerialOptions {
  port: number; baud: number; device?: string; receive?: number; transmit?: number; format?: string; data?: number; parity?: string;
  onReadable?: (this: FakeSerial, count: number) => void;
  onWritable?: (this: FakeSerial, count: number) => void;
}

export const ports: FakeSerial[] = [];

export default class FakeSerial {
  options: SerialOptions;
  sent: number[] = [];
  #rx: number[] = [];

  constructor(options: SerialOptions) {
    this.options = options;
    ports.push(this);
  }
  read(count?: number): ArrayBuffer | undefined {
    if (count !== undefined && typeof count !== 'number') return new ArrayBuffer(0); // what lin does with a buffer
    const n = Math.min(count ?? this.#rx.length, this.#rx.length);
    if (n === 0) return undefined;
    return Uint8Array.from(this.#rx.splice(0, n)).buffer;
  }
  write(data: ArrayBuffer): void {
    if (!(data instanceof ArrayBuffer)) throw new TypeError('serial write takes an ArrayBuffer on the simulator');
    for (const b of new Uint8Array(data)) this.sent.push(b);
  }
  close(): void {}

  receive(bytes: number[]): void {
    this.#rx.push(...bytes);
    this.options.onReadable?.call(this, bytes.length);
  }
  offerWritable(n: number): void {
    this.options.onWritable?.call(this, n);
  }
}
