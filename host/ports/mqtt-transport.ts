// The Transport port over MQTT.js: QoS 1, reconnect with jittered exponential backoff, resubscribe on
// every connect.

import mqtt, { type MqttClient } from 'mqtt';
import { reconnectDelay } from '../../firmware/core/agent/links.js';
import { LinkState, type LinkStateValue, type Transport, type TransportHandlers, type TransportOptions } from '../../firmware/core/ports.js';

export class MqttTransport implements Transport {
  state: LinkStateValue = LinkState.down;
  lastError = '';
  #client: MqttClient | undefined;
  #handlers: TransportHandlers | undefined;
  #options: TransportOptions | undefined;
  #attempt = 0;

  /** `reconnectScale` shrinks the backoff (simulations reconnect in milliseconds, not seconds). */
  constructor(readonly url: string, readonly name = url, readonly reconnectScale = 1) {}

  /** Drops the connection as a failing network would; the client reconnects by itself. */
  sever(): void {
    const c = this.#client as unknown as { stream?: { destroy(): void } } | undefined;
    c?.stream?.destroy();
  }

  start(options: TransportOptions, handlers: TransportHandlers): void {
    this.#handlers = handlers;
    this.#connect(options);
  }

  /**
   * Reconnects with new credentials. The old connection ends on the next turn of the event loop: the
   * agent restarts its link from inside a message handler (a PairAccept), and MQTT.js acknowledges that
   * QoS 1 message only after the handler returns; ended at once, the PUBACK went to a closed stream
   * (an error per packet piece) and the broker never had it.
   */
  restart(options: TransportOptions): void {
    const old = this.#client;
    this.#client = undefined;
    old?.removeAllListeners();
    old?.on('error', () => {});
    if (old) setImmediate(() => old.end(true));
    this.state = LinkState.down;
    this.#connect(options);
  }

  #connect(options: TransportOptions): void {
    this.#options = options;
    this.state = LinkState.connecting;
    const client = mqtt.connect(this.url, {
      clientId: options.clientId,
      username: options.username,
      password: options.password,
      clean: true,
      reconnectPeriod: Math.max(1, Math.round(reconnectDelay(0, Math.random()) * this.reconnectScale)),
      connectTimeout: 10_000,
      keepalive: 30,
      queueQoSZero: false,
      resubscribe: false,
      will: options.will ? { topic: options.will.topic, payload: Buffer.from(options.will.payload), qos: options.will.qos, retain: false } : undefined,
    });
    this.#client = client;
    client.on('connect', () => {
      if (this.#client !== client) return;
      this.state = LinkState.up;
      this.lastError = '';
      this.#attempt = 0;
      // Small QoS 1 frames: without this Nagle holds each one back for the broker's delayed ACK (~40 ms).
      (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
      if (options.subscriptions.length) client.subscribe(options.subscriptions, { qos: 1 });
      this.#handlers?.onConnect();
    });
    client.on('close', () => {
      if (this.#client !== client) return;
      // mqtt.js has already scheduled the next attempt; this sets the delay of the one after.
      client.options.reconnectPeriod = Math.max(1, Math.round(reconnectDelay(++this.#attempt, Math.random()) * this.reconnectScale));
      const was = this.state;
      this.state = LinkState.connecting;
      if (was === LinkState.up) this.#handlers?.onDisconnect(this.lastError || 'connection closed');
    });
    client.on('error', (e) => {
      this.lastError = e.message;
    });
    client.on('message', (topic, payload) => {
      if (this.#client !== client) return;
      this.#handlers?.onMessage(topic, new Uint8Array(payload.buffer, payload.byteOffset, payload.length));
    });
  }

  publish(topic: string, payload: Uint8Array): boolean {
    const c = this.#client;
    if (!c || !c.connected || this.state !== LinkState.up) return false;
    c.publish(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.length), { qos: 1 });
    return true;
  }

  stop(): void {
    const c = this.#client;
    this.#client = undefined;
    this.state = LinkState.down;
    c?.removeAllListeners();
    c?.on('error', () => {});
    c?.end(true);
  }

  get options(): TransportOptions | undefined {
    return this.#options;
  }
}
