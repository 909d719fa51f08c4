// The gateway's own MQTT client (mqtt.js), to the embedded broker or an external one. It subscribes
// to hello/+, d/+/up and d/+/lwt at QoS 1 and acknowledges (PUBACK) a message only after its handling
// has committed, so a gateway killed mid-message leaves it unacknowledged and an external broker
// delivers it again (ARCHITECTURE.md "Growing past one machine").
//
// Throughput: messages of different devices are handled concurrently (the store coalesces their
// commits into one transaction), messages of one device strictly in arrival order. mqtt.js calls
// `handleMessage(packet, callback)` and reads the next packet only once the callback has run, and the
// callback is what writes the PUBACK; so the callback is called as soon as a message is admitted, and
// the PUBACK it writes is held back here until the message's handling has finished — PUBACKs leave in
// the order their PUBLISHes arrived (MQTT 4.6). When `maxInFlight` messages are being handled the
// callback waits: mqtt.js stops reading the socket and the broker queues (backpressure, bounded memory).
//
// On an external broker the gateway joins one MQTT 5 shared subscription (`$share/<group>/<filter>`):
// the broker spreads devices' messages over the replicas of the gateway. A replica may open several
// connections, each with its own client id; the broker then spreads one device's messages over them
// too, and they arrive out of order (gateway.ts opens one by default).
//
// With the embedded broker the device's PUBACK comes from aedes before delivery; there the device's
// own resend-until-acked (the `ack` body) is what carries a record across a gateway crash.
// A handler must never wait for the PUBACK of something it publishes.

import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { encodePacket, type WritablePacket } from './mqtt-write.js';

/** mqtt.js's logger when DEBUG is not set: no rest parameters, nothing allocated. */
function noLog(): void {}

export type MessageHandler = (topic: string, payload: Uint8Array, receivedAt: number) => Promise<void>;

/** Session expiry of a shared-subscription connection (a replica's), seconds. */
export const SHARED_SESSION_EXPIRY_S = 10;

/** Default bound on messages being handled at once, over all connections of one ingress. */
export const DEFAULT_MAX_IN_FLIGHT = 2000;

export interface IngressOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  /** 4 (MQTT 3.1.1) for the embedded broker, 5 for external ones (session expiry). */
  protocolVersion: 4 | 5;
  /** Topic filters subscribed at QoS 1. */
  subscriptions: string[];
  /**
   * Subscribe as a member of this MQTT 5 shared-subscription group (`$share/<group>/<filter>`).
   * Falls back to plain subscriptions on a broker that only speaks 3.1.1.
   */
  shareGroup?: string;
  /** Connections to open (each `<clientId>-<n>` when more than one); default 1. */
  connections?: number;
  /** Messages handled at once before the ingress stops reading from the broker (default 2000). */
  maxInFlight?: number;
  log: Logger;
  now(): number;
  onMessage: MessageHandler;
}

/** The device id in `…/hello/<id>` and `…/d/<id>/<kind>`: messages of one device are handled in order. */
export function orderKey(topic: string): string {
  // What `/\/(?:hello\/([^/]+)|d\/([^/]+)\/[^/]+)$/` would capture, without a match array per message.
  const a = topic.lastIndexOf('/');
  if (a <= 0 || a === topic.length - 1) return topic;
  const b = topic.lastIndexOf('/', a - 1);
  if (b < 0) return topic;
  // `/d/<id>/<kind>` starts further left than `/hello/<id>` would, so it is the match when both are.
  const c = b > 0 && a - b >= 2 ? topic.lastIndexOf('/', b - 1) : -1;
  if (c >= 0 && b - c === 2 && topic.charCodeAt(c + 1) === 0x64 /* d */) return topic.slice(b + 1, a);
  return a - b === 6 && topic.startsWith('hello', b + 1) ? topic.slice(a + 1) : topic;
}

interface HeldAck {
  done: boolean;
  /** The PUBACK mqtt.js wanted to write (captured when the admission callback ran). */
  puback?: object;
  generation: number;
}

interface Connection {
  client: MqttClient;
  /** Bumped at every close: PUBACKs for a previous network connection are never written. */
  generation: number;
  /** Messages in arrival order whose PUBACK has not been written yet. */
  order: HeldAck[];
  /** The entry whose PUBACK the next `_sendPacket(puback)` belongs to. */
  capturing?: HeldAck;
  send: (packet: { cmd: string }, cb?: () => void) => void;
  /** Writes are held until the next turn (#cork). */
  corked?: boolean;
}

/** What the gateway needs of a way in from a broker. */
export interface MessageIngress {
  start(): Promise<void>;
  publish(topic: string, payload: Uint8Array): void;
  readonly connected: boolean;
  close(): Promise<void>;
}

/**
 * Runs message handlers: different devices concurrently, one device's messages in arrival order, at
 * most `max` at once (`whenRoom` holds a caller back until there is room: backpressure).
 */
class Dispatcher {
  /** Tail of each device's chain of handling, while it has messages in flight. */
  readonly #chains = new Map<string, Promise<void>>();
  inFlight = 0;
  /** Callers held back while `max` messages are in flight. */
  readonly #waiting: (() => void)[] = [];
  #idle: (() => void)[] = [];

  constructor(readonly max: number, readonly log: Logger, readonly now: () => number, readonly onMessage: MessageHandler) {}

  whenRoom(go: () => void): void {
    if (this.inFlight >= this.max) this.#waiting.push(go);
    else go();
  }

  admit(topic: string, message: Buffer): Promise<void> {
    const receivedAt = this.now();
    const payload = new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
    const key = orderKey(topic);
    this.inFlight++;
    const prev = this.#chains.get(key);
    // A device with nothing in flight (the usual case) has its message handled at once; else after the last one.
    const handled = prev ? prev.then(() => this.onMessage(topic, payload, receivedAt)) : this.#handle(topic, payload, receivedAt);
    const run: Promise<void> = handled.then(() => this.#finish(key, run), (e: Error) => {
      // A bug or a store failure must not wedge the queue. The message is acknowledged anyway: a
      // device resends what no ack covered, and a poison message must not come back forever.
      this.log.error({ err: e.message, stack: e.stack, topic }, 'message handling failed');
      this.#finish(key, run);
    });
    this.#chains.set(key, run);
    return run;
  }

  #handle(topic: string, payload: Uint8Array, receivedAt: number): Promise<void> {
    try {
      return this.onMessage(topic, payload, receivedAt);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #finish(key: string, run: Promise<void>): void {
    if (this.#chains.get(key) === run) this.#chains.delete(key);
    this.inFlight--;
    const next = this.#waiting.shift();
    if (next) next();
    if (this.inFlight === 0) for (const f of this.#idle.splice(0)) f();
  }

  /** Resolves when nothing is in flight, or after `ms`. */
  async idle(ms: number): Promise<void> {
    if (this.inFlight === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((r) => this.#idle.push(r)),
      new Promise<void>((r) => (timer = setTimeout(r, ms))),
    ]);
    clearTimeout(timer);
  }
}

/** An in-process broker the gateway takes messages from directly (the embedded aedes). */
export interface DirectBroker {
  /** Delivers messages on `filter` to `deliver`; the broker holds its delivery until `done` is called. */
  subscribe(filter: string, deliver: (topic: string, payload: Buffer, done: () => void) => void): Promise<void>;
  /** Publishes at QoS 1 from the gateway itself. */
  publish(topic: string, payload: Uint8Array): void;
}

/**
 * The ingress on the embedded broker: no MQTT client in between, messages come straight from aedes's
 * router and downlinks go straight into it. A delivery is released once its message is admitted, so
 * at `maxInFlight` the broker stops handing messages over (backpressure).
 */
export class DirectIngress implements MessageIngress {
  readonly #d: Dispatcher;
  #started = false;

  constructor(readonly opts: { broker: DirectBroker; subscriptions: string[]; maxInFlight?: number; log: Logger; now(): number; onMessage: MessageHandler }) {
    this.#d = new Dispatcher(Math.max(1, opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT), opts.log, opts.now, opts.onMessage);
  }

  get inFlight(): number {
    return this.#d.inFlight;
  }

  async start(): Promise<void> {
    for (const filter of this.opts.subscriptions) {
      await this.opts.broker.subscribe(filter, (topic, payload, done) => {
        // `done` never runs inside the delivery: aedes's emitter delivers its queued messages from the
        // previous one's `done`, so thousands of deliveries released at once would nest that deep.
        // (Closures on this path are passed, not named: tsx keeps names with Object.defineProperty, which
        // costs a property dictionary per closure made.)
        if (!this.#started) return queueMicrotask(done);
        void this.#d.admit(topic, payload);
        this.#d.whenRoom(() => queueMicrotask(done));
      });
    }
    this.#started = true;
  }

  publish(topic: string, payload: Uint8Array): void {
    this.opts.broker.publish(topic, payload);
  }

  get connected(): boolean {
    return this.#started;
  }

  /** Lets the messages being handled finish (at most 5 s); later deliveries are ignored. */
  async close(): Promise<void> {
    await this.#d.idle(5000);
    this.#started = false;
  }
}

export class Ingress implements MessageIngress {
  readonly #opts: IngressOptions;
  readonly #conns: Connection[] = [];
  readonly #d: Dispatcher;
  #shared = false;

  constructor(opts: IngressOptions) {
    this.#opts = opts;
    this.#d = new Dispatcher(Math.max(1, opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT), opts.log, opts.now, opts.onMessage);
  }

  /** Messages being handled now (for tests and metrics). */
  get inFlight(): number {
    return this.#d.inFlight;
  }

  #clientId(n: number): string {
    const count = this.#opts.connections ?? 1;
    return count > 1 ? `${this.#opts.clientId}-${n}` : this.#opts.clientId;
  }

  #create(n: number, protocolVersion: 4 | 5): Connection {
    const o = this.#opts;
    const options: IClientOptions = {
      clientId: this.#clientId(n),
      username: o.username,
      password: o.password,
      protocolVersion,
      // A persistent session: messages published while the gateway is away wait for it.
      clean: false,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      manualConnect: true,
      // mqtt.js logs through `debug` a dozen times per message; even off, each call allocates its
      // arguments (a tenth of the gateway's allocations in a profile). DEBUG=mqttjs* still shows them.
      ...(process.env.DEBUG ? {} : { log: noLog }),
    };
    // A member of a shared subscription keeps its session only briefly: brokers (Mosquitto) go on
    // routing the group's messages to a disconnected member's session until it expires, so a killed
    // replica's share would otherwise wait a day. What it held unacknowledged the devices resend.
    const expiry = o.shareGroup ? SHARED_SESSION_EXPIRY_S : 24 * 3600;
    if (protocolVersion === 5) options.properties = { sessionExpiryInterval: expiry, receiveMaximum: 65535 };
    const client = mqtt.connect(o.url, options);
    const internals = client as unknown as {
      _sendPacket: (packet: { cmd: string }, cb?: () => void, ...rest: unknown[]) => void;
      _writePacket: (packet: WritablePacket, cb?: () => void) => void;
      noop: () => void;
    };
    const original = internals._sendPacket.bind(client);
    // A frame's ack (PUBLISH) and its PUBACK leave as one buffer each, not in mqtt-packet's pieces (mqtt-write.ts).
    const writePacket = internals._writePacket.bind(client);
    internals._writePacket = (packet, cb) => {
      const bytes = encodePacket(packet, protocolVersion);
      if (!bytes) return writePacket(packet, cb);
      const stream = client.stream;
      if (!stream.write(bytes) && cb && cb !== internals.noop) stream.once('drain', cb);
      else cb?.();
    };
    const conn: Connection = { client, generation: 0, order: [], send: original };
    internals._sendPacket = (packet, cb, ...rest) => {
      const entry = conn.capturing;
      if (packet.cmd === 'puback' && entry) {
        conn.capturing = undefined;
        entry.puback = packet;
        cb?.(); // mqtt.js reads on; the PUBACK itself waits for the commit
        this.#flush(conn);
        return;
      }
      original(packet, cb, ...rest);
    };
    // Small QoS 1 packets: without this, Nagle holds a packet back for the broker's delayed ACK (40 ms).
    client.on('connect', () => (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true));
    client.on('connect', () => this.#opts.log.info({ url: this.#opts.url, client: client.options.clientId }, 'connected to MQTT broker'));
    client.on('close', () => {
      // The broker redelivers what this connection did not acknowledge; those PUBACKs are void now.
      conn.generation++;
      conn.order = conn.order.filter((e) => !e.done || !e.puback);
    });
    client.handleMessage = (packet: IPublishPacket, callback: (error?: Error) => void) => {
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
      const entry: HeldAck = { done: false, generation: conn.generation };
      if (packet.qos === 1) conn.order.push(entry);
      this.#d.admit(packet.topic, payload).then(() => {
        entry.done = true;
        this.#flush(conn);
      });
      this.#d.whenRoom(() => {
        if (packet.qos !== 1) return callback();
        conn.capturing = entry;
        callback();
        // A PUBACK mqtt.js did not write through _sendPacket (error path): nothing to hold.
        if (conn.capturing === entry) {
          conn.capturing = undefined;
          entry.puback = entry.puback ?? {};
          this.#flush(conn);
        }
      });
    };
    return conn;
  }

  /** Writes the PUBACKs at the head of the arrival order whose handling has finished. */
  #flush(conn: Connection): void {
    while (conn.order.length && conn.order[0].done && conn.order[0].puback) {
      const e = conn.order.shift()!;
      const p = e.puback as { cmd: string };
      if (p.cmd === 'puback' && e.generation === conn.generation && conn.client.connected) {
        this.#cork(conn);
        conn.send(p);
      }
    }
  }

  /**
   * Holds the connection's writes until the event loop's next turn: the acks and PUBACKs of a group
   * commit leave in one write (mqtt.js would write each packet on its own).
   */
  #cork(conn: Connection): void {
    if (conn.corked) return;
    const stream = conn.client.stream as { cork?: () => void; uncork?: () => void } | undefined;
    if (!stream?.cork || !stream.uncork) return;
    stream.cork();
    conn.corked = true;
    setImmediate(() => {
      conn.corked = false;
      stream.uncork!();
    });
  }

  /**
   * Connects and subscribes; rejects when the broker refuses or cannot be reached in time.
   * A broker that does not speak MQTT 5 is spoken to in 3.1.1.
   */
  async start(): Promise<void> {
    const count = Math.max(1, this.#opts.connections ?? 1);
    let version = this.#opts.protocolVersion;
    for (let n = 0; n < count; n++) {
      for (;;) {
        const conn = this.#create(n, version);
        try {
          await this.#connect(conn.client);
        } catch (e) {
          if (version === 5 && /protocol version/i.test((e as Error).message)) {
            this.#opts.log.info({ url: this.#opts.url }, 'broker does not speak MQTT 5; using 3.1.1');
            version = 4;
            continue;
          }
          for (const c of this.#conns) c.client.end(true);
          throw e;
        }
        this.#conns.push(conn);
        break;
      }
      // Shared subscriptions are MQTT 5; on 3.1.1 one plain connection is all that works.
      if (version === 4 && this.#opts.shareGroup) break;
    }
    this.#shared = !!this.#opts.shareGroup && version === 5;
    const filters = this.#opts.subscriptions.map((t) => (this.#shared ? `$share/${this.#opts.shareGroup}/${t}` : t));
    for (const { client: c } of this.#conns) {
      c.on('error', (e) => this.#opts.log.warn({ err: e.message }, 'MQTT client error'));
      c.on('offline', () => this.#opts.log.warn({ url: this.#opts.url }, 'MQTT broker unreachable; retrying'));
      const granted = await c.subscribeAsync(Object.fromEntries(filters.map((topic) => [topic, { qos: 1 as const }])));
      const refused = granted.filter((g) => g.qos !== 1 && g.qos !== 0);
      if (refused.length) throw new Error(`MQTT broker ${this.#opts.url} refused subscriptions ${refused.map((g) => g.topic).join(', ')}`);
    }
  }

  /** The filters actually subscribed (with `$share/…` when a shared subscription is in use). */
  get shared(): boolean {
    return this.#shared;
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

  #next = 0;

  publish(topic: string, payload: Uint8Array): void {
    const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    const conns = this.#conns;
    if (!conns.length) return;
    // Spread over the connections, preferring one that is up.
    let conn = conns[this.#next++ % conns.length];
    if (!conn.client.connected) conn = conns.find((c) => c.client.connected) ?? conn;
    if (conn.client.connected) this.#cork(conn);
    conn.client.publish(topic, buf, { qos: 1 }, (e) => {
      if (e) this.#opts.log.warn({ err: e.message, topic }, 'publish failed');
    });
  }

  get connected(): boolean {
    return this.#conns.some((c) => c.client.connected);
  }

  /** Lets the messages being handled finish (at most 5 s), then disconnects. */
  async close(): Promise<void> {
    if (!this.#conns.length) return;
    await this.#d.idle(5000);
    await Promise.all(this.#conns.map(async ({ client: c }) => {
      const ended = new Promise<void>((resolve) => c.end(false, {}, () => resolve()));
      const late = setTimeout(() => c.end(true), 3000);
      await ended;
      clearTimeout(late);
    }));
  }
}
