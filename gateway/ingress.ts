// The gateway's own MQTT client (mqtt.js), to the embedded broker or an external one. It subscribes
// to hello/+, d/+/up and d/+/lwt at QoS 1 and acknowledges (PUBACK) a message only after its handling
// has committed, so a gateway killed mid-message leaves it unacknowledged and an external broker
// delivers it again (ARCHITECTURE.md "Growing past one machine").
//
// The hook is mqtt.js's documented `handleMessage(packet, callback)`: the PUBACK is written only
// when the callback is called. (`customHandleAcks` would also do, but mqtt.js honours it only on
// MQTT 5 connections, and aedes speaks 3.1.1.) mqtt.js hands packets over one at a time and waits for
// that callback before the next, so a handler must never wait for the PUBACK of something it
// publishes: that PUBACK queues behind it.
//
// With the embedded broker the device's PUBACK comes from aedes before delivery; there the device's
// own resend-until-acked (the `ack` body) is what carries a record across a gateway crash.

import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';

export type MessageHandler = (topic: string, payload: Uint8Array, receivedAt: number) => Promise<void>;

export interface IngressOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  /** 4 (MQTT 3.1.1) for the embedded broker, 5 for external ones (session expiry). */
  protocolVersion: 4 | 5;
  /** Topic filters subscribed at QoS 1. */
  subscriptions: string[];
  log: Logger;
  now(): number;
  onMessage: MessageHandler;
}

export class Ingress {
  #client?: MqttClient;
  readonly #opts: IngressOptions;
  /** Messages are handled strictly one after the other. */
  #queue: Promise<void> = Promise.resolve();

  constructor(opts: IngressOptions) {
    this.#opts = opts;
  }

  #create(protocolVersion: 4 | 5): MqttClient {
    const o = this.#opts;
    const options: IClientOptions = {
      clientId: o.clientId,
      username: o.username,
      password: o.password,
      protocolVersion,
      // A persistent session: messages published while the gateway is away wait for it.
      clean: false,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      manualConnect: true,
    };
    if (protocolVersion === 5) options.properties = { sessionExpiryInterval: 24 * 3600 };
    const client = mqtt.connect(o.url, options);
    // Small QoS 1 packets: without this, Nagle holds a packet back for the broker's delayed ACK (40 ms).
    client.on('connect', () => (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true));
    client.handleMessage = (packet: IPublishPacket, callback: (error?: Error) => void) => {
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      this.#enqueue(packet.topic, payload).then(() => callback());
    };
    return client;
  }

  #enqueue(topic: string, message: Buffer): Promise<void> {
    const receivedAt = this.#opts.now();
    const payload = new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
    const run = this.#queue.then(() => this.#opts.onMessage(topic, payload, receivedAt)).catch((e: Error) => {
      // A bug or a store failure must not wedge the queue. The message is acknowledged anyway: a
      // device resends what no ack covered, and a poison message must not come back forever.
      this.#opts.log.error({ err: e.message, stack: e.stack, topic }, 'message handling failed');
    });
    this.#queue = run;
    return run;
  }

  /**
   * Connects and subscribes; rejects when the broker refuses or cannot be reached in time.
   * A broker that does not speak MQTT 5 is spoken to in 3.1.1.
   */
  async start(): Promise<void> {
    let version = this.#opts.protocolVersion;
    for (;;) {
      const client = this.#create(version);
      try {
        await this.#connect(client);
      } catch (e) {
        if (version === 5 && /protocol version/i.test((e as Error).message)) {
          this.#opts.log.info({ url: this.#opts.url }, 'broker does not speak MQTT 5; using 3.1.1');
          version = 4;
          continue;
        }
        throw e;
      }
      this.#client = client;
      break;
    }
    const c = this.#client;
    c.on('error', (e) => this.#opts.log.warn({ err: e.message }, 'MQTT client error'));
    c.on('offline', () => this.#opts.log.warn({ url: this.#opts.url }, 'MQTT broker unreachable; retrying'));
    const granted = await c.subscribeAsync(Object.fromEntries(this.#opts.subscriptions.map((topic) => [topic, { qos: 1 as const }])));
    const refused = granted.filter((g) => g.qos !== 1 && g.qos !== 0);
    if (refused.length) throw new Error(`MQTT broker ${this.#opts.url} refused subscriptions ${refused.map((g) => g.topic).join(', ')}`);
  }

  #connect(c: MqttClient): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`cannot reach MQTT broker ${this.#opts.url} within 10 s`)), 10_000);
      const fail = (e: Error) => {
        clearTimeout(timer);
        c.removeListener('connect', ok);
        c.removeListener('error', onError);
        c.end(true);
        reject(e);
      };
      const ok = () => {
        clearTimeout(timer);
        c.removeListener('error', onError);
        resolve();
      };
      const onError = (e: Error & { code?: unknown }) => {
        // Refusals (bad credentials, not authorized) are final; network errors are retried until the timeout.
        if (typeof e.code === 'number') fail(new Error(`MQTT broker ${this.#opts.url} refused the gateway: ${e.message}`));
      };
      c.once('connect', ok);
      c.on('error', onError);
      c.connect();
    });
  }

  publish(topic: string, payload: Uint8Array): void {
    const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    this.#client?.publish(topic, buf, { qos: 1 }, (e) => {
      if (e) this.#opts.log.warn({ err: e.message, topic }, 'publish failed');
    });
  }

  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  /** Lets the message being handled finish, then disconnects. */
  async close(): Promise<void> {
    const c = this.#client;
    if (!c) return;
    const drained = this.#queue;
    await Promise.race([drained, new Promise((r) => setTimeout(r, 5000))]);
    const ended = new Promise<void>((resolve) => c.end(false, {}, () => resolve()));
    const late = setTimeout(() => c.end(true), 3000);
    await ended;
    clearTimeout(late);
  }
}
