// The Transport port over ECMA-419 `embedded:network/mqtt/client` (the Moddable SDK's client).
// That client does one connection and nothing more: no reconnect, no subscriptions kept, no
// outbound queue, and `write` throws when the socket cannot take a whole packet. This adapter adds
// them: reconnect with the core's jittered backoff, resubscribe on every CONNACK, and a bounded
// queue drained as the socket becomes writable. Like the host transport it publishes QoS 1 and
// leaves retransmission to the agent, which resends every record no ack has covered.
//
// The client calls onControl, onReadable and onError from inside its own parser, and goes on using
// its socket when the callback returns: closing the client there (a pairing reconnects with new
// credentials; a lost connection is closed) makes its parser touch a closed socket, which aborts the
// runtime. So this adapter only takes note inside those callbacks, and tells the agent (and closes
// clients) from a timer, after the client has returned.

import MQTTClient from 'embedded:network/mqtt/client';
import TCP from 'embedded:io/socket/tcp';
import UDP from 'embedded:io/socket/udp';
import Resolver from 'embedded:network/dns/resolver/udp';
import Timer from 'timer';
import { reconnectDelay } from '../core/agent/links.js';
import { LinkState, type LinkStateValue, type Transport, type TransportHandlers, type TransportOptions } from '../core/ports.js';

export interface BrokerOptions {
  host: string;
  port?: number;
  /** Name shown in status and on the console (default host:port). */
  name?: string;
  /** DNS servers for a broker given by name. */
  dns?: string[];
  keepaliveMs?: number;
  /** Frames held while the socket is busy; publish returns false beyond either bound. */
  queueFrames?: number;
  queueBytes?: number;
  /** Largest inbound message accepted (a downlink frame is at most 2048 bytes). */
  maxMessageBytes?: number;
  /** Uniform [0, 1) for the reconnect jitter (the hardware RNG, so a feeder's meters spread out). */
  random01: () => number;
}

/** The client as the Moddable SDK implements it (its typings miss `write(null, …)` and `onControl(msg)`). */
interface Client {
  write(data: Uint8Array | null, options?: { operation?: number; topic?: string; QoS?: number; items?: { topic: string; QoS?: number }[] }): number;
  read(count: number): ArrayBuffer | undefined;
  close(): void;
}
interface ControlMessage { operation: number; id?: number; returnCode?: number }
interface ReadableInfo { more: boolean; topic?: string; byteLength?: number; QoS?: number }

const CONNACK_TIMEOUT_MS = 15_000;
/** Complete inbound messages held for delivery; more than this between two timer turns are dropped (the gateway sends again). */
const INBOX_MESSAGES = 8;

/** For brokers given as an IPv4 address: the client always asks a resolver first. */
class LiteralResolver {
  resolve(o: { host: string; onResolved: (host: string, address: string) => void }): void {
    Timer.set(() => o.onResolved(o.host, o.host), 0);
  }
  close(): void {}
}

// A function, not a module constant: a RegExp preloaded into the image's flash crashes exec() on XS.
const isIPv4 = (host: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(host);

export class ModdableMqttTransport implements Transport {
  readonly name: string;
  state: LinkStateValue = LinkState.down;
  lastError = '';
  /** Frames refused because the queue was full (the agent sends them again). */
  refused = 0;
  #b: BrokerOptions;
  #client: Client | undefined;
  #handlers: TransportHandlers | undefined;
  #options: TransportOptions | undefined;
  #attempt = 0;
  #retry: Timer | undefined;
  #connackTimer: Timer | undefined;
  #queue: { topic: string; payload: Uint8Array }[] = [];
  #queued = 0;
  #writable = 0;
  #inTopic = '';
  #inBuf: Uint8Array;
  #inLen = 0;
  #inDrop = false;
  /** What the client's callbacks noted, handled from #deliverTimer outside them. */
  #inbox: { topic: string; payload: Uint8Array }[] = [];
  #connacked: Client | undefined;
  #failed: Client | undefined;
  #deliverTimer: Timer | undefined;
  /** Inbound messages dropped because the inbox was full. */
  dropped = 0;

  constructor(broker: BrokerOptions) {
    this.#b = broker;
    this.name = broker.name ?? `${broker.host}:${broker.port ?? 1883}`;
    this.#inBuf = new Uint8Array(broker.maxMessageBytes ?? 4096);
  }

  start(options: TransportOptions, handlers: TransportHandlers): void {
    this.#handlers = handlers;
    this.#options = options;
    this.#attempt = 0;
    this.#connect();
  }

  restart(options: TransportOptions): void {
    this.#options = options;
    this.#drop('restarting with new credentials', false);
    this.#attempt = 0;
    this.#connect();
  }

  /** Try now instead of waiting out the backoff (Wi-Fi just came up). */
  kick(): void {
    if (this.#retry === undefined || !this.#options) return;
    Timer.clear(this.#retry);
    this.#retry = undefined;
    this.#attempt = 0;
    this.#connect();
  }

  publish(topic: string, payload: Uint8Array): boolean {
    if (this.state !== LinkState.up || !this.#client) return false;
    if (this.#queue.length >= (this.#b.queueFrames ?? 8) || this.#queued + payload.length > (this.#b.queueBytes ?? 8192)) {
      this.refused++;
      return false;
    }
    this.#queue.push({ topic, payload });
    this.#queued += payload.length;
    this.#drain();
    return true;
  }

  stop(): void {
    this.#options = undefined;
    this.#drop('stopped', false);
  }

  // ------------------------------------------------------------------ connection

  #connect(): void {
    const o = this.#options;
    if (!o) return;
    this.#retry = undefined;
    this.state = LinkState.connecting;
    const self = this;
    const host = this.#b.host;
    const options = {
      host,
      port: this.#b.port ?? 1883,
      id: o.clientId,
      user: o.username,
      password: o.password,
      clean: true,
      keepalive: this.#b.keepaliveMs ?? 30_000,
      will: o.will ? { topic: o.will.topic, message: o.will.payload.slice().buffer, QoS: o.will.qos, retain: false } : undefined,
      dns: isIPv4(host) ? { io: LiteralResolver } : { io: Resolver, servers: this.#b.dns ?? ['1.1.1.1', '8.8.8.8'], socket: { io: UDP } },
      socket: { io: TCP },
      onControl(this: Client, msg: ControlMessage) {
        if (this === self.#client && msg.operation === MQTTClient.CONNACK) self.#note(() => (self.#connacked = this));
      },
      onReadable(this: Client, count: number, info: ReadableInfo) {
        if (this === self.#client) self.#onReadable(count, info);
        else this.read(count);
      },
      onWritable(this: Client, count: number) {
        if (this !== self.#client) return;
        self.#writable = count;
        self.#drain();
      },
      onError(this: Client) {
        if (this === self.#client) self.#note(() => (self.#failed = this));
      },
    };
    try {
      this.#client = new MQTTClient(options as unknown as ConstructorParameters<typeof MQTTClient>[0]) as unknown as Client;
    } catch (e) {
      this.#client = undefined;
      this.#lost(`cannot connect: ${(e as Error).message}`);
      return;
    }
    this.#connackTimer = Timer.set(() => {
      this.#connackTimer = undefined;
      if (this.state === LinkState.connecting) this.#lost('no CONNACK from the broker');
    }, CONNACK_TIMEOUT_MS);
  }

  /** Records what a client callback saw; #deliver acts on it once the client has returned. */
  #note(record: () => void): void {
    record();
    if (this.#deliverTimer === undefined) this.#deliverTimer = Timer.set(() => this.#deliver(), 0);
  }

  #deliver(): void {
    this.#deliverTimer = undefined;
    if (this.#failed !== undefined) {
      const failed = this.#failed === this.#client;
      this.#failed = this.#connacked = undefined;
      this.#inbox.length = 0;
      if (failed) this.#lost('connection lost');
      return;
    }
    if (this.#connacked !== undefined) {
      const current = this.#connacked === this.#client;
      this.#connacked = undefined;
      if (current) this.#onConnack();
    }
    // A message may make the agent restart the link (pairing): what is still in the inbox then
    // belongs to the old connection and is dropped with it (#drop empties the inbox).
    while (this.#inbox.length && this.state === LinkState.up) {
      const m = this.#inbox.shift()!;
      this.#handlers?.onMessage(m.topic, m.payload);
    }
  }

  #onConnack(): void {
    if (this.#connackTimer !== undefined) Timer.clear(this.#connackTimer);
    this.#connackTimer = undefined;
    const subs = this.#options?.subscriptions ?? [];
    try {
      if (subs.length) this.#client!.write(null, { operation: MQTTClient.SUBSCRIBE, items: subs.map((topic) => ({ topic, QoS: 1 })) });
    } catch (e) {
      this.#lost(`subscribing failed: ${(e as Error).message}`);
      return;
    }
    this.state = LinkState.up;
    this.lastError = '';
    this.#attempt = 0;
    this.#handlers?.onConnect();
  }

  /** The connection is gone: tell the agent, forget what was queued, and try again later. */
  #lost(reason: string): void {
    const wasUp = this.state === LinkState.up;
    this.lastError = reason;
    this.#drop(reason, true);
    if (wasUp) this.#handlers?.onDisconnect(reason);
    if (!this.#options) return;
    this.state = LinkState.connecting;
    this.#retry = Timer.set(() => this.#connect(), reconnectDelay(this.#attempt++, this.#b.random01()));
  }

  #drop(reason: string, failed: boolean): void {
    const c = this.#client;
    this.#client = undefined;
    if (this.#retry !== undefined) Timer.clear(this.#retry);
    if (this.#connackTimer !== undefined) Timer.clear(this.#connackTimer);
    this.#retry = this.#connackTimer = undefined;
    this.#inbox.length = 0;
    this.#connacked = this.#failed = undefined;
    this.#queue.length = 0;
    this.#queued = 0;
    this.#writable = 0;
    this.#inLen = 0;
    this.#inDrop = false;
    if (c) {
      if (!failed) {
        try {
          c.write(null, { operation: MQTTClient.DISCONNECT });
        } catch {
          // not connected yet: nothing to say goodbye on
        }
      }
      c.close();
    }
    const wasUp = this.state === LinkState.up;
    this.state = LinkState.down;
    if (!failed && wasUp) this.#handlers?.onDisconnect(reason);
  }

  // ------------------------------------------------------------------ data

  #onReadable(count: number, info: ReadableInfo): void {
    if (info.topic !== undefined) {
      this.#inTopic = info.topic;
      this.#inLen = 0;
      this.#inDrop = (info.byteLength ?? 0) > this.#inBuf.length;
    }
    const chunk = this.#client!.read(count);
    if (chunk && !this.#inDrop) {
      const bytes = new Uint8Array(chunk);
      if (this.#inLen + bytes.length > this.#inBuf.length) this.#inDrop = true;
      else {
        this.#inBuf.set(bytes, this.#inLen);
        this.#inLen += bytes.length;
      }
    }
    if (info.more) return;
    if (!this.#inDrop) {
      if (this.#inbox.length < INBOX_MESSAGES) {
        const message = { topic: this.#inTopic, payload: this.#inBuf.slice(0, this.#inLen) };
        this.#note(() => this.#inbox.push(message));
      } else this.dropped++;
    }
    this.#inLen = 0;
    this.#inDrop = false;
  }

  #drain(): void {
    const c = this.#client;
    while (c && this.state === LinkState.up && this.#queue.length) {
      const m = this.#queue[0];
      // PUBLISH: fixed header (1 + up to 4), topic (2 + n), packet id (2), payload.
      const size = 1 + 4 + 2 + m.topic.length + 2 + m.payload.length;
      if (size > this.#writable) return; // onWritable calls again
      try {
        this.#writable = c.write(m.payload, { topic: m.topic, QoS: 1 });
      } catch {
        return; // the socket had less room than it said: wait for onWritable
      }
      this.#queue.shift();
      this.#queued -= m.payload.length;
    }
  }
}
