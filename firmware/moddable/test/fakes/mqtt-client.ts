// Fake `embedded:network/mqtt/client` with the Moddable SDK client's contract: callbacks are
// called with the client as `this`; `write` throws "overflow" when the packet does not fit in
// what onWritable last offered; no reconnect, no queue. Tests drive it through `clients`.
// Like the real client (examples/io/tcp/mqttclient), it calls onControl, onReadable and onError
// from inside its parser and uses its socket again when they return: a callback that closed the
// client makes that throw, as it aborts the runtime on a meter.

export interface FakeOptions {
  host: string; port: number; id: string; user?: string; password?: string; keepalive: number;
  will?: { topic: string; message: ArrayBuffer; QoS: number };
  onControl(msg: { operation: number; id?: number }): void;
  onReadable(count: number, info: { more: boolean; topic?: string; byteLength?: number; QoS?: number }): void;
  onWritable(count: number): void;
  onError(): void;
}

export const clients: FakeMQTTClient[] = [];

export default class FakeMQTTClient {
  static CONNECT = 1; static CONNACK = 2; static PUBLISH = 3; static PUBACK = 4; static SUBSCRIBE = 8;
  static SUBACK = 9; static PINGREQ = 12; static DISCONNECT = 14;
  options: FakeOptions;
  closed = false;
  connected = false;
  writable = 0;
  published: { topic: string; payload: Uint8Array; QoS: number }[] = [];
  subscribed: string[][] = [];
  disconnects = 0;
  #incoming: Uint8Array | undefined;

  constructor(options: FakeOptions) {
    this.options = options;
    clients.push(this);
  }

  // --- what the adapter calls
  write(data: Uint8Array | null, o: { operation?: number; topic?: string; QoS?: number; items?: { topic: string }[] }): number {
    if (!this.connected) throw new Error('not connected');
    const op = o.operation ?? FakeMQTTClient.PUBLISH;
    if (op === FakeMQTTClient.SUBSCRIBE) this.subscribed.push(o.items!.map((i) => i.topic));
    else if (op === FakeMQTTClient.DISCONNECT) this.disconnects++;
    else if (op === FakeMQTTClient.PUBLISH) {
      const size = 1 + 2 + 2 + o.topic!.length + 2 + data!.length;
      if (size > this.writable) throw new Error('overflow');
      this.writable -= size;
      this.published.push({ topic: o.topic!, payload: data!.slice(), QoS: o.QoS ?? 0 });
    }
    return this.writable;
  }
  read(count: number): ArrayBuffer | undefined {
    const b = this.#incoming;
    if (!b) return undefined;
    const out = b.slice(0, count);
    this.#incoming = b.length > count ? b.slice(count) : undefined;
    return out.buffer;
  }
  close(): void {
    this.closed = true;
    this.connected = false;
  }
  /** What the real parser does after each callback (`socket.format = …`). */
  #parserGoesOn(callback: string): void {
    if (this.closed) throw new Error(`mqtt client closed inside ${callback}: its parser then uses a closed socket (XS abort on a meter)`);
  }

  // --- what the test calls
  connack(writable = 4096): void {
    this.connected = true;
    this.writable = writable;
    this.options.onControl.call(this, { operation: FakeMQTTClient.CONNACK });
    this.#parserGoesOn('onControl');
    this.options.onWritable.call(this, writable);
  }
  offerWritable(n: number): void {
    this.writable = n;
    this.options.onWritable.call(this, n);
  }
  deliver(topic: string, payload: Uint8Array, fragment = payload.length): void {
    for (let at = 0; at < payload.length || at === 0; at += fragment) {
      const part = payload.subarray(at, Math.min(payload.length, at + fragment));
      this.#incoming = part.slice();
      const info = at === 0 ? { topic, byteLength: payload.length, QoS: 1, more: at + part.length < payload.length } : { more: at + part.length < payload.length };
      this.options.onReadable.call(this, part.length, info);
      this.#parserGoesOn('onReadable');
      if (payload.length === 0) break;
    }
  }
  fail(): void {
    this.connected = false;
    this.options.onError.call(this);
    this.#parserGoesOn('onError');
    this.close();
  }
}
