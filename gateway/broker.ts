// The embedded MQTT broker (aedes) with WIRE.md "Topics" rules:
// - a client is admitted only under a well-formed device id, or as the gateway's own client
//   (authenticated by a secret chosen afresh by each gateway process);
// - a device publishes only its own hello/up topics, subscribes only to its own pair/down topics,
//   and may set a will only on its own lwt topic;
// - once paired (or while a pairing with a known session key is pending) its client id requires
//   user name = id and password = b32(hmac(Ks, "mqtt")); revoked and unpaired devices connect without
//   credentials and may only Hello;
// - Hellos are rate-limited per client (excess dropped and counted); MQTT packets are bounded in size;
// - clients without a session (those that may only Hello) are bounded in number, in all and per source
//   address, so that a stream of fresh ids cannot take every connection (refused with "server unavailable").

import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes, type Client } from 'aedes';
import type { Logger } from 'pino';
import { constantTimeEqual, utf8Encode } from '../firmware/core/bytes.js';
import { mqttPassword } from '../firmware/core/wire/pairing.js';
import { isDeviceId, topics } from '../firmware/core/wire/topics.js';
import type { Tuning } from './context.js';
import type { GatewayMetrics } from './metrics.js';
import { TokenBuckets } from './rate.js';

/** Largest MQTT packet accepted: a frame is at most 2048 bytes, a Hello 1024, plus topic and header. */
export const MAX_PACKET_BYTES = 4096;

/** Where a published Hello over the rate limit goes: a topic nobody can subscribe to. */
const DROPPED_TOPIC = '$gridlet/dropped';

export type BrokerSession =
  | { state: 'paired' | 'pending'; ks: Uint8Array }
  | { state: 'revoked' | 'none' };

export interface BrokerOptions {
  host: string;
  port: number;
  prefix: string;
  /** The gateway's own client: its id, user name and per-process secret. */
  internal: { clientId: string; username: string; password: string };
  session(id: string): Promise<BrokerSession>;
  metrics: GatewayMetrics;
  log: Logger;
  tuning: Tuning;
  now(): number;
}

/** MQTT 3.1.1 CONNACK return codes. */
const Refuse = { identifier: 2, unavailable: 3, credentials: 4, notAuthorized: 5 } as const;

/** A client's source address (IPv4-mapped IPv6 as IPv4). */
function sourceOf(client: Client): string {
  const a = (client as unknown as { conn?: Socket }).conn?.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

function refusal(returnCode: number, message: string): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode });
}

/** What flattenRouter touches of aedes's message router (mqemitter 7). */
interface Router {
  _do(message: unknown, callback: unknown): unknown;
}

/**
 * aedes's router (mqemitter) holds at most `concurrency` messages in delivery and queues the rest; each
 * delivery's release starts the next queued message on the same stack. A message nobody subscribes to
 * (a `$SYS` notice of a connect, a downlink to a meter that is away) is released at once, so a backlog
 * of them nests one level per message, and a few thousand overflow the stack: the gateway dies with
 * `RangeError: Maximum call stack size exceeded` (seen when meters reconnect faster than the gateway
 * commits). Here a delivery started while another is being started waits on a loop instead, in the
 * order they were started: the same order and bound, a flat stack.
 */
export function flattenRouter(broker: Aedes): void {
  const router = (broker as unknown as { mq: Router }).mq;
  const start = router._do;
  if (typeof start !== 'function') throw new Error('aedes router without _do: flattenRouter needs review for this aedes version');
  const waiting: [unknown, unknown][] = [];
  let starting = false;
  router._do = function (message: unknown, callback: unknown) {
    waiting.push([message, callback]);
    if (starting) return this;
    starting = true;
    try {
      for (let next = waiting.shift(); next; next = waiting.shift()) start.call(this, next[0], next[1]);
    } finally {
      starting = false;
    }
    return this;
  };
}

/** What the MQTT parser reads of the CONNECT packet it keeps as its settings (mqtt-packet 9). */
const parserSettings = new Map<string, { protocolVersion: number; bridgeMode: boolean }>();

/**
 * A client's parser keeps the CONNECT packet it parsed, for the protocol version of the packets after
 * it, and with it the password and the will for as long as the connection lasts (a few hundred bytes
 * per meter). It gets a settings object shared by every client of the same version instead; the
 * connect handler still has the packet it needs.
 */
function forgetConnect(client: Client, packet: { protocolVersion?: number; bridgeMode?: boolean }): void {
  const parser = (client as unknown as { _parser?: { settings?: unknown } })._parser;
  if (!parser || parser.settings !== packet) return;
  const protocolVersion = packet.protocolVersion ?? 4;
  const bridgeMode = packet.bridgeMode === true;
  const key = `${protocolVersion}/${bridgeMode}`;
  let settings = parserSettings.get(key);
  if (!settings) parserSettings.set(key, (settings = Object.freeze({ protocolVersion, bridgeMode })));
  parser.settings = settings;
}

type Listener = (...a: unknown[]) => unknown;
interface Matcher {
  add(topic: string, val: Listener): unknown;
  remove(topic: string, val?: Listener): unknown;
  match(topic: string, ctx?: unknown): Listener[];
}

/**
 * aedes's router matches each published topic against a trie of the subscriptions (qlobber), which
 * keeps three Maps for a meter's two topics (about 1.1 KB a meter). A filter without wildcards matches
 * only the topic equal to it: those filters are kept in one Map by topic instead, and the trie keeps
 * the others. The router asks its matcher only to add, remove and match (mqemitter 7).
 */
export function exactTopics(broker: Aedes): void {
  const mq = (broker as unknown as { mq: { _matcher: Matcher } }).mq;
  const trie = mq._matcher;
  if (!trie || typeof trie.add !== 'function' || typeof trie.remove !== 'function' || typeof trie.match !== 'function') {
    throw new Error('aedes router without a matcher: exactTopics needs review for this aedes version');
  }
  // A topic's one listener, or its listeners in the order they came.
  const exact = new Map<string, Listener | Listener[]>();
  const wild = (t: string) => t.includes('+') || t.includes('#');
  mq._matcher = {
    add(topic, val) {
      if (wild(topic)) return trie.add(topic, val);
      const had = exact.get(topic);
      if (had === undefined) exact.set(topic, val);
      else if (typeof had === 'function') exact.set(topic, [had, val]);
      else had.push(val);
    },
    remove(topic, val) {
      if (wild(topic)) return trie.remove(topic, val);
      const had = exact.get(topic);
      // As the trie does: without `val` every listener of the topic goes, with it its last entry.
      if (had === undefined) return;
      if (val === undefined || had === val) return void exact.delete(topic);
      if (typeof had === 'function') return;
      const i = had.lastIndexOf(val);
      if (i >= 0) had.splice(i, 1);
      if (had.length === 1) exact.set(topic, had[0]);
    },
    match(topic, ctx) {
      const found = trie.match(topic, ctx);
      const had = exact.get(topic);
      if (had === undefined) return found;
      if (typeof had === 'function') found.push(had);
      else for (const l of had) found.push(l);
      return found;
    },
  };
}

/** Small will payloads, shared by every client that gives the same bytes (meters give none). */
const willPayloads = new Map<string, Buffer>();
const WILL_SHARED_MAX_BYTES = 64;
const WILL_SHARED_MAX = 256;

/** A will's payload, copied out of the socket's bytes (which hold the password too): shared when small. */
function willPayload(p: Buffer): Buffer {
  if (p.length > WILL_SHARED_MAX_BYTES) return Buffer.from(p);
  const k = p.toString('latin1');
  let b = willPayloads.get(k);
  if (!b) {
    b = Buffer.from(p);
    if (willPayloads.size < WILL_SHARED_MAX) willPayloads.set(k, b);
  }
  return b;
}

/**
 * aedes watches each client's socket with `stream.finished` (seven listeners and their closures) to
 * close the client when the socket ends, errs or closes. A connected meter's socket always emits
 * 'close' in the end (the stream destroys itself), so one listener on it does: aedes calls `_eos` on
 * close to stop watching, which removes it. Both are shared by every client (aedes keeps the client on
 * its socket as `client`): nothing per meter.
 */
function lighterWatch(client: Client): void {
  const c = client as unknown as { _eos?: () => void; conn?: Socket & { client?: unknown } };
  const conn = c.conn;
  if (typeof c._eos !== 'function' || !conn || conn.client !== client) return;
  c._eos();
  conn.on('close', closeClient);
  c._eos = unwatch;
  // Those listeners gone, the socket's lists for 'end' and 'error' hold two each in arrays grown for
  // more (~176 bytes each, kept while the meter is connected): the same listeners, in the same order,
  // in arrays of their length.
  compactListeners(conn, 'end');
  compactListeners(conn, 'error');
}

/** An emitter's table of listeners by event (Node's `_events`: a function, or an array of them). */
function listenerTable(e: EventEmitter): Record<string | symbol, unknown> | undefined {
  return (e as unknown as { _events?: Record<string | symbol, unknown> })._events;
}

/**
 * An emitter's listeners of one event again, in order, in an array no longer than they need (two
 * listeners: an array of two). The list is replaced by a copy under the same key: taking the listeners
 * off would delete the key once none is left, which turns the table into a dictionary (~450 bytes,
 * more than the array saves). emit() calls a copy of the list, so replacing it is safe.
 */
export function compactListeners(e: EventEmitter, event: string): void {
  const table = listenerTable(e);
  const l = table?.[event];
  if (Array.isArray(l)) table![event] = l.slice();
}

function closeClient(this: { client?: { close(): void } }): void {
  this.client?.close();
}

/** An error on a client's socket or parser, passed on to the client (both hold it as `client`). */
function clientError(this: { client?: { emit(event: 'error', e: unknown): unknown } }, e: unknown): void {
  this.client?.emit('error', e);
}

/**
 * Puts `replacement` in place of the one listener of `event` named `name` (a bound function: "bound
 * emit"), at the same place in the list. False if there is not exactly one such listener.
 */
export function swapListener(e: EventEmitter, event: string, name: string, replacement: (...a: never[]) => void): boolean {
  const table = listenerTable(e);
  const l = table?.[event];
  if (typeof l === 'function') {
    if (l.name !== name) return false;
    table![event] = replacement;
    return true;
  }
  if (!Array.isArray(l)) return false;
  const at = l.flatMap((f: { name?: string }, i) => (f.name === name ? [i] : []));
  if (at.length !== 1) return false;
  // As in compactListeners: emit() calls a copy of the list, so changing it in place is safe.
  l[at[0]] = replacement;
  return true;
}

/**
 * The same keys and values in an object V8 keeps in fast mode. Node's emitters start their table of
 * events, and aedes a client's table of duplicates, as null-prototype objects, which V8 keeps as
 * dictionaries (~180 bytes each); this one shares its hidden class with every other table of the same
 * keys (~50 bytes). Still without a prototype: no inherited name reads as a key.
 */
export function fastTable<T extends object>(table: T): T {
  const fast: Record<string | symbol, unknown> = {};
  for (const k of Reflect.ownKeys(table)) fast[k] = (table as Record<string | symbol, unknown>)[k];
  return Object.setPrototypeOf(fast, null) as T;
}

/**
 * aedes's count of a client's inbound QoS 2 messages awaiting PUBREL, as a Set (~150 bytes for each
 * client, empty for meters, which publish at QoS 1): made when the first one arrives instead. aedes
 * asks it only for has, add, delete and size.
 */
export class LazyInflight {
  #ids: Set<number> | undefined;

  get size(): number {
    return this.#ids?.size ?? 0;
  }

  has(id: number): boolean {
    return this.#ids?.has(id) ?? false;
  }

  add(id: number): this {
    (this.#ids ??= new Set()).add(id);
    return this;
  }

  delete(id: number): boolean {
    const had = this.#ids?.delete(id) ?? false;
    if (this.#ids?.size === 0) this.#ids = undefined;
    return had;
  }
}

interface LightClient {
  closed?: boolean;
  conn?: Socket & { client?: unknown };
  _events?: object;
  duplicates?: object;
  _inboundInflight?: unknown;
  _parser?: EventEmitter & { client?: unknown; _events?: object };
}

/**
 * A connected meter's client in fewer bytes, once it is ready and its 'connected' listener has run
 * (aedes 1.2): the bound functions aedes listens with on its socket and parser become shared
 * functions that reach the client as `this.client` (~190 bytes), its tables of events and
 * duplicates and its parser's table of events are fast objects (~400 bytes), and its inbound QoS 2
 * set is made on first use (~120 bytes).
 */
function lighterClient(client: Client): void {
  const c = client as unknown as LightClient;
  const conn = c.conn;
  if (c.closed || !conn || conn.client !== client) return;
  swapListener(conn, 'error', 'bound emit', clientError);
  swapListener(conn, 'end', 'bound close', closeClient);
  const parser = c._parser;
  if (parser && parser.client === client) {
    swapListener(parser, 'error', 'bound emit', clientError);
    if (parser._events) parser._events = fastTable(parser._events);
  }
  if (c._events) c._events = fastTable(c._events);
  if (c.duplicates) c.duplicates = fastTable(c.duplicates);
  if (c._inboundInflight instanceof Set && c._inboundInflight.size === 0) c._inboundInflight = new LazyInflight();
}

function unwatch(this: { conn: Socket }): void {
  this.conn.removeListener('close', closeClient);
}

function ignore(): void {}

/** Whole seconds on the monotonic clock (a small integer: no heap number per packet). */
function seconds(): number {
  return Math.floor(performance.now() / 1000);
}

/**
 * A connected meter's keepalive: aedes gives each client a timer of its own (a Timeout, its closure and
 * context, ~220 bytes) and refreshes it on every packet. In its place the client gets a beat that notes
 * the second of its last packet, and one wheel for the broker checks every connected meter once a
 * second (KeepaliveWheel).
 */
class Beat {
  last = seconds();
  constructor(readonly limitS: number) {}

  /** What aedes calls on each packet of the client (handlers/index.js). */
  refresh(): void {
    this.last = seconds();
  }
}

/** Closes the connected meters that have sent nothing for 1.5 times their keepalive, as aedes would. */
class KeepaliveWheel {
  readonly #timer: NodeJS.Timeout;

  constructor(clients: Map<string, Client>, broker: Aedes) {
    this.#timer = setInterval(() => {
      const now = seconds();
      for (const c of clients.values()) {
        const beat = (c as unknown as { _keepaliveTimer?: unknown })._keepaliveTimer;
        if (!(beat instanceof Beat) || now - beat.last <= beat.limitS) continue;
        // As aedes's own timer does (handlers/connect.js): the error closes the client, and its will goes
        // out. The beat stays (aedes refreshes it on a packet still being handled) but fires once.
        beat.last = Number.MAX_SAFE_INTEGER;
        broker.emit('keepaliveTimeout', c);
        c.emit('error', new Error('keep alive timeout'));
      }
    }, 1000);
    this.#timer.unref();
  }

  /** Moves a connected client's keepalive onto the wheel. */
  take(client: Client): void {
    const c = client as unknown as { _keepaliveTimer?: unknown; _keepaliveInterval?: number };
    const ms = c._keepaliveInterval;
    if (!(typeof ms === 'number' && ms > 0) || !c._keepaliveTimer || c._keepaliveTimer instanceof Beat) return;
    clearTimeout(c._keepaliveTimer as NodeJS.Timeout);
    // aedes's interval is 1.5 keepalives plus 1 ms, here rounded up to whole seconds; counted in whole
    // seconds and checked each second, a silent meter is closed after that and at most 2 s later.
    c._keepaliveTimer = new Beat(Math.ceil(ms / 1000));
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

interface Chunks {
  length: number;
  _bufs: Buffer[];
  append(b: Buffer): unknown;
  consume(bytes: number): unknown;
}

/**
 * bl's plain BufferList (the one the parser of aedes's mqtt-packet loads, without its stream), which
 * lets its array of chunks go once the parser has consumed them all: a JavaScript array keeps the
 * capacity it grew to (17 slots, ~150 bytes) after its last element is shifted out, and a connected
 * meter's parser is empty between packets.
 */
const BufferList = (() => {
  const aedesRequire = createRequire(createRequire(import.meta.url).resolve('aedes'));
  const bl = createRequire(aedesRequire.resolve('mqtt-packet'))('bl') as { BufferList?: new () => Chunks };
  const Base = bl.BufferList;
  if (!Base || typeof Base.prototype.consume !== 'function') return undefined;
  return class LeanBufferList extends Base {
    override consume(bytes: number): unknown {
      const r = super.consume(bytes);
      if (this.length === 0 && this._bufs.length === 0) this._bufs = [];
      return r;
    }
  };
})();

interface PacketParser {
  _list?: { _bufs?: Buffer[]; append?: unknown; pipe?: unknown };
  _states?: string[];
}
const parserStates = new Map<string, string[]>();

/**
 * A connected client's MQTT parser (mqtt-packet 9) collects bytes in a BufferListStream, a duplex
 * stream with two stream states (about 600 bytes) of which it uses only the list: it gets a plain
 * BufferList with the same bytes. Its list of state names is shared with the other parsers.
 */
function lighterParser(client: Client): void {
  const parser = (client as unknown as { _parser?: PacketParser })._parser;
  if (!parser) return;
  const states = parser._states;
  if (Array.isArray(states)) {
    const k = states.join(',');
    const shared = parserStates.get(k) ?? (parserStates.set(k, states), states);
    parser._states = shared;
  }
  const list = parser._list;
  if (!BufferList || !list || typeof list.pipe !== 'function' || !Array.isArray(list._bufs)) return;
  const plain = new BufferList();
  for (const b of list._bufs) plain.append(b);
  parser._list = plain as PacketParser['_list'];
}

/** A message the gateway publishes (QoS 1, not retained). */
type OwnPacket = { cmd: 'publish'; topic: string; payload: Buffer; qos: 1; retain: false; dup: false };

/**
 * Keeps the gateway's messages to a meter in the order they were published while the meter resumes its
 * MQTT session (MQTT 3.1.1 4.6, and [MQTT-3.2.0-1]: CONNACK first). aedes restores a persistent
 * session's subscriptions before it sends CONNACK and before it sends the messages stored for the
 * session, so a message published in between went out live, ahead of CONNACK and of older stored
 * messages, and then once more from the store (seen: a meter reconnecting after pairing got config
 * with counter 2 before the time body with counter 1). While a meter with a persistent session
 * connects, what the gateway publishes to it waits here and is published when the meter is ready, after
 * what was stored, or when its connection fails (then it is stored for the session like any message to
 * an absent meter). Nothing is kept per connected meter.
 */
class ResumingSessions {
  /** Device ids whose persistent session is being resumed, and the connection doing it. */
  readonly #connecting = new Map<string, Client>();
  readonly #ids = new WeakMap<Client, string>();
  readonly #held = new Map<string, OwnPacket[]>();
  readonly #publish: (p: OwnPacket) => void;

  constructor(publish: (p: OwnPacket) => void) {
    this.#publish = publish;
  }

  /** A CONNECT that resumes a session (clean session 0) arrived for `id` on `client`. */
  begin(client: Client, id: string): void {
    this.#connecting.set(id, client);
    this.#ids.set(client, id);
  }

  /** True if the message was held: the device it is for is resuming its session. */
  hold(packet: OwnPacket): boolean {
    // Nothing to look up while no session is being resumed (gridlet's meters use clean sessions).
    if (this.#connecting.size === 0) return false;
    const id = addressee(packet.topic);
    if (!this.#connecting.has(id)) return false;
    const held = this.#held.get(id);
    if (held) held.push(packet);
    else this.#held.set(id, [packet]);
    return true;
  }

  /** `client` is ready (its stored messages sent) or its connection ended: publish what waited for it. */
  end(client: Client): void {
    const id = this.#ids.get(client);
    if (id === undefined || this.#connecting.get(id) !== client) return;
    this.#connecting.delete(id);
    const held = this.#held.get(id);
    if (!held) return;
    this.#held.delete(id);
    for (const p of held) this.#publish(p);
  }
}

/** The device a topic the gateway publishes on is for: `<prefix>/v1/d/<id>/down` or `<prefix>/v1/pair/<id>`. */
function addressee(topic: string): string {
  const end = topic.endsWith('/down') ? topic.length - 5 : topic.length;
  return topic.slice(topic.lastIndexOf('/', end - 1) + 1, end);
}

export class EmbeddedBroker {
  readonly url: string;
  readonly #aedes: Aedes;
  readonly #server: Server;
  /** Open sockets other than those of connected device clients (#connected has those). */
  readonly #sockets = new Set<Socket>();
  /** Connected device clients by id (a takeover replaces the entry before the old one leaves). */
  readonly #connected = new Map<string, Client>();
  /** Where each recent Hello came from, by device id (bounded, oldest forgotten first). */
  readonly #helloSources = new Map<string, string>();
  #wheel: KeepaliveWheel | undefined;
  readonly #resuming: ResumingSessions;

  private constructor(aedes: Aedes, server: Server, url: string, resuming: ResumingSessions) {
    this.#aedes = aedes;
    this.#resuming = resuming;
    this.#server = server;
    this.url = url;
  }

  static async start(o: BrokerOptions): Promise<EmbeddedBroker> {
    const wills = new WeakMap<Client, { topic: string } | undefined>();
    const internalSecret = utf8Encode(o.internal.password);
    const internalClients = new WeakSet<Client>();
    const isInternal = (c: Client | null) => c !== null && c.id === o.internal.clientId && internalClients.has(c);
    // Per client id, kept across reconnects (reconnecting must not refill a bucket).
    const hellos = new TokenBuckets(o.tuning.helloBurst, o.tuning.helloIntervalMs, o.now);
    // Connected clients without a session, in all and per source address.
    const unpaired = { all: 0, bySource: new Map<string, number>() };
    /** Admits one more client without a session from `source`, counted until its socket closes; false when over a bound. */
    const admitUnpaired = (client: Client, source: string): boolean => {
      const n = unpaired.bySource.get(source) ?? 0;
      if (unpaired.all >= o.tuning.unpairedConnections || n >= o.tuning.unpairedPerSource) return false;
      unpaired.all++;
      unpaired.bySource.set(source, n + 1);
      const conn = (client as unknown as { conn: Socket }).conn;
      conn.once('close', () => {
        unpaired.all--;
        const left = (unpaired.bySource.get(source) ?? 1) - 1;
        if (left > 0) unpaired.bySource.set(source, left);
        else unpaired.bySource.delete(source);
      });
      return true;
    };

    const resuming = new ResumingSessions((p) => aedes.publish(p, ignore));
    const aedes: Aedes = await Aedes.createBroker({
      // Our own rules say who may connect; keep the broker's timeouts tight for devices.
      connectTimeout: 10_000,
      drainTimeout: 30_000,
      maxTopicLevels: 16,
      preConnect(client, packet, done) {
        wills.set(client, packet.will ? { topic: packet.will.topic } : undefined);
        // The will's payload is a view of the bytes read from the socket, which the broker keeps until
        // the client leaves: a copy of its own lets the rest of those bytes (the password) go.
        if (packet.will && Buffer.isBuffer(packet.will.payload)) packet.will.payload = willPayload(packet.will.payload);
        forgetConnect(client, packet);
        if (packet.clean === false && isDeviceId(packet.clientId)) resuming.begin(client, packet.clientId);
        done(null, true);
      },
      authenticate(client, username, password, done) {
        const id = client.id;
        // Asked once per connection: the entry goes now rather than with the client.
        const will = wills.get(client);
        wills.delete(client);
        const refuse = (code: number, reason: string, message: string) => {
          o.metrics.brokerRefusal('connect', reason);
          o.log.debug({ client: id, reason }, 'MQTT connect refused');
          done(refusal(code, message) as never, false);
        };
        if (id === o.internal.clientId) {
          const ok = username === o.internal.username && password !== undefined &&
            constantTimeEqual(new Uint8Array(password), internalSecret);
          if (!ok) return refuse(Refuse.credentials, 'internal', 'not the gateway');
          internalClients.add(client);
          return done(null, true);
        }
        if (!isDeviceId(id)) return refuse(Refuse.identifier, 'bad-id', 'client id must be a device id');
        if (will && will.topic !== topics.lwt(o.prefix, id)) return refuse(Refuse.notAuthorized, 'will', 'will topic must be the device\'s own lwt');
        const gaveCredentials = username !== undefined || password !== undefined;
        o.session(id).then((s) => {
          if (s.state === 'paired' || s.state === 'pending') {
            const expected = utf8Encode(mqttPassword(s.ks));
            const ok = username === id && password !== undefined && constantTimeEqual(new Uint8Array(password), expected);
            if (!ok) return refuse(Refuse.credentials, 'credentials', 'bad user name or password');
            return done(null, true);
          }
          // Revoked and unpaired devices may only Hello; credentials for a session we do not
          // know (revoked, or never made here) are refused so the device learns they are void.
          if (gaveCredentials) return refuse(Refuse.credentials, s.state === 'revoked' ? 'revoked' : 'unknown-credentials', 'bad user name or password');
          if (!admitUnpaired(client, sourceOf(client))) return refuse(Refuse.unavailable, 'unpaired-limit', 'too many clients without a session');
          done(null, true);
        }, (e: Error) => {
          o.log.error({ err: e.message }, 'session lookup failed');
          refuse(Refuse.unavailable, 'error', 'server unavailable');
        });
      },
      authorizePublish(client, packet, done) {
        if (client === null) {
          // A will published after its client left: it was checked when the client connected.
          return done(null);
        }
        if (isInternal(client)) return done(null);
        const id = client.id;
        const t = packet.topic;
        // Nothing a device sends is kept for later subscribers.
        packet.retain = false;
        if (t === topics.up(o.prefix, id) || t === topics.lwt(o.prefix, id)) return done(null);
        if (t === topics.hello(o.prefix, id)) {
          if (!hellos.take(id)) {
            o.metrics.dropMessage('hello', 'rate');
            packet.topic = DROPPED_TOPIC;
          } else noteSource(id, sourceOf(client));
          return done(null);
        }
        o.metrics.brokerRefusal('publish', 'topic');
        o.log.debug({ client: id, topic: t.slice(0, 100) }, 'MQTT publish refused');
        done(new Error(`client ${id} may not publish to ${t.slice(0, 100)}`));
      },
      authorizeSubscribe(client, sub, done) {
        if (isInternal(client)) return done(null, sub);
        const id = client.id;
        if (sub.topic === topics.pair(o.prefix, id) || sub.topic === topics.down(o.prefix, id)) return done(null, sub);
        o.metrics.brokerRefusal('subscribe', 'topic');
        o.log.debug({ client: id, topic: sub.topic.slice(0, 100) }, 'MQTT subscribe refused');
        done(null, null);
      },
    });
    flattenRouter(aedes);
    exactTopics(aedes);

    const server = createServer({ noDelay: true });
    let url: string;
    try {
      url = await new Promise<string>((resolve, reject) => {
        server.once('error', reject);
        server.listen(o.port, o.host, () => {
          server.removeListener('error', reject);
          const a = server.address();
          const port = typeof a === 'object' && a ? a.port : o.port;
          resolve(`mqtt://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`);
        });
      });
    } catch (e) {
      // aedes runs a heartbeat timer: a broker that never listened must still be closed.
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      throw e;
    }
    const broker = new EmbeddedBroker(aedes, server, url, resuming);
    const helloSources = broker.#helloSources;
    function noteSource(id: string, source: string): void {
      helloSources.delete(id);
      helloSources.set(id, source);
      if (helloSources.size > 2 * o.tuning.helloTableSize) helloSources.delete(helloSources.keys().next().value!);
    }
    const sockets = broker.#sockets;
    function forget(this: Socket & { client?: Client }): void {
      sockets.delete(this);
      if (this.client) resuming.end(this.client);
    }
    const sizeGuard = { max: MAX_PACKET_BYTES, oversized: () => o.metrics.dropMessage('broker', 'oversized-packet') };
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', forget);
      socket.on('error', ignore);
      aedes.handle(socket);
      // Attached after aedes' 'readable' listener, this sees each chunk as aedes reads it (it does not
      // make the socket flow), early enough to refuse a huge packet from its header.
      guardPacketSize(socket, sizeGuard);
    });
    const wheel = (broker.#wheel = new KeepaliveWheel(broker.#connected, aedes));
    aedes.on('clientReady', (c) => {
      resuming.end(c);
      if (!isInternal(c) && isDeviceId(c.id)) {
        broker.#connected.set(c.id, c);
        // From here #connected (and aedes) reach the socket: the set keeps only the others.
        const conn = (c as unknown as { conn?: Socket }).conn;
        if (conn) sockets.delete(conn);
        wheel.take(c);
        lighterWatch(c);
        lighterParser(c);
        // After aedes emits 'connected' to the client, which removes its once-listener from the table.
        process.nextTick(lighterClient, c);
      }
    });
    aedes.on('clientDisconnect', (c) => {
      if (broker.#connected.get(c.id) === c) broker.#connected.delete(c.id);
    });
    aedes.on('clientError', (c, e) => o.log.debug({ client: c?.id, err: e.message }, 'MQTT client error'));
    aedes.on('connectionError', (_c, e) => o.log.debug({ err: e.message }, 'MQTT connection error'));
    return broker;
  }

  connectedDevices(): number {
    return this.#connected.size;
  }

  /**
   * The gateway's own ingress takes messages from the router directly (ingress.ts DirectIngress):
   * the router holds each delivery until `done`.
   */
  subscribe(filter: string, deliver: (topic: string, payload: Buffer, done: () => void) => void): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#aedes.subscribe(filter, (packet, done) => {
        const p = packet.payload;
        deliver(packet.topic, typeof p === 'string' ? Buffer.from(p) : p, done);
      }, () => resolve());
    });
  }

  /** Publishes from the gateway itself at QoS 1 (downlinks, PairAccepts). */
  publish(topic: string, payload: Uint8Array): void {
    const packet: OwnPacket = {
      cmd: 'publish', topic, payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
      qos: 1, retain: false, dup: false,
    };
    if (this.#resuming.hold(packet)) return;
    this.#aedes.publish(packet, ignore);
  }

  isConnected(id: string): boolean {
    return this.#connected.has(id);
  }

  /** The source address device `id` last sent a Hello from (the Hello table shares itself out by it). */
  source(id: string): string | undefined {
    return this.#helloSources.get(id);
  }

  async close(): Promise<void> {
    this.#wheel?.stop();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await new Promise<void>((resolve) => this.#aedes.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    for (const c of this.#connected.values()) (c as unknown as { conn?: Socket }).conn?.destroy();
    await closed;
  }
}


/** What guardPacketSize refuses, and what it calls then (one for the broker). */
interface SizeGuard {
  max: number;
  oversized(): void;
}

const kPacketGuard = Symbol('gridlet packet guard');

/**
 * Where a socket's guard is in the MQTT fixed headers: one small object per socket, read by one
 * listener shared by all sockets (a closure and its context per socket cost ~200 bytes more).
 */
class PacketGuard {
  /** 0: first header byte, 1: remaining length, 2: skipping the packet's bytes. */
  state = 0;
  length = 0;
  multiplier = 1;
  lengthBytes = 0;
  skip = 0;
  constructor(readonly limits: SizeGuard) {}
}

/** Watches MQTT fixed headers on a socket and destroys it when a packet declares more than `limits.max` bytes. */
function guardPacketSize(socket: Socket, limits: SizeGuard): void {
  (socket as Socket & { [kPacketGuard]?: PacketGuard })[kPacketGuard] = new PacketGuard(limits);
  socket.on('data', guardChunk);
}

function guardChunk(this: Socket & { [kPacketGuard]?: PacketGuard }, chunk: Buffer): void {
  const g = this[kPacketGuard];
  if (!g) return;
  let i = 0;
  while (i < chunk.length) {
    if (g.state === 0) {
      i++;
      g.state = 1;
      g.length = 0;
      g.multiplier = 1;
      g.lengthBytes = 0;
    } else if (g.state === 1) {
      const b = chunk[i++];
      g.length += (b & 0x7f) * g.multiplier;
      g.multiplier *= 128;
      g.lengthBytes++;
      if (b & 0x80) {
        if (g.lengthBytes === 4) return void this.destroy();
        continue;
      }
      if (g.length > g.limits.max) {
        g.limits.oversized();
        return void this.destroy();
      }
      g.skip = g.length;
      g.state = g.skip > 0 ? 2 : 0;
    } else {
      const n = Math.min(g.skip, chunk.length - i);
      i += n;
      g.skip -= n;
      if (g.skip === 0) g.state = 0;
    }
  }
}
