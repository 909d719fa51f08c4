// Fake `embedded:io/serial`: bytes in through `receive`, out into `sent`, with the UART's
// writable count under the test's control.

interface SerialOptions {
  port: number; baud: number; receive?: number; transmit?: number; format?: string; data?: number; parity?: string;
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
  read(into?: Uint8Array): number | ArrayBuffer | undefined {
    if (!into) return undefined;
    const n = Math.min(into.length, this.#rx.length);
    for (let i = 0; i < n; i++) into[i] = this.#rx.shift()!;
    return n;
  }
  write(bytes: Uint8Array): void {
    for (const b of bytes) this.sent.push(b);
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
