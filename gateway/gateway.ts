// A gateway: identity, store, MQTT (embedded broker or an external one) and the operator HTTP API.
// Restarting on the same data directory keeps its identity, registry, records, counters, replay
// windows and pending downlinks.

import { randomFillSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { GatewayEvents } from './events.js';
import { isAbsolute, join, resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import { base32, toHex } from '../firmware/core/bytes.js';
import { useRandom } from '../firmware/core/crypto.js';
import { useFastCrypto } from './hash.js';
import { randomBytes } from './random.js';
import { Body, type DownBody } from '../firmware/core/wire/bodies.js';
import { DEFAULT_PREFIX, parseTopic, TopicKind } from '../firmware/core/wire/topics.js';
import { EmbeddedBroker, type BrokerSession } from './broker.js';
import { DEFAULT_TUNING, type GatewayContext, type Tuning } from './context.js';
import { Downlink } from './downlink.js';
import { FirmwareService } from './firmware/service.js';
import { firmwareRoutes } from './http/firmware-routes.js';
import { privateDir } from './files.js';
import { Frames } from './frames.js';
import type { HandlerContext } from './handlers/handler.js';
import { routes } from './http/routes.js';
import { eventStream } from './http/events-routes.js';
import { deviceOpsRoutes } from './http/ops-routes.js';
import { Mesh, type MeshTrust, type PeerQuota } from './mesh/mesh.js';
import { certifies, parseTrust, readCertificate, readOperatorKey, selfOperator } from './mesh/operator.js';
import { backendFromConfig, Offload, type OffloadConfig } from './offload/offload.js';
import { meshRoutes } from './mesh/routes.js';
import { isLoopback, parseListen } from './http/security.js';
import { HttpServer } from './http/server.js';
import { loadOrCreateIdentity, type GatewayIdentity } from './identity.js';
import { DirectIngress, Ingress, type MessageIngress } from './ingress.js';
import { backlogOf, dropLogger, GatewayMetrics } from './metrics.js';
import { Pairing, type PairingShare } from './pairing.js';
import { PrivacyService } from './privacy/service.js';
import { Retention } from './privacy/retention.js';
import { privacyRoutes } from './http/privacy-routes.js';
import { TokenBuckets } from './rate.js';
import { OpenAdr, type OpenAdrVtnOptions } from './openadr/service.js';
import type { OpenAdrTuning } from './openadr/ven.js';
import { Registry } from './registry.js';
import { PostgresStore } from './store/postgres.js';
import { SqliteStore } from './store/sqlite.js';
import type { DeviceRow, Store } from './store/store.js';
import type { Logger as CoreLogger } from '../firmware/core/ports.js';

export interface GatewayOptions {
  dataDir: string;
  /** Embedded broker address, HOST:PORT (default 127.0.0.1:1883; port 0 picks a free port). */
  mqttListen?: string;
  /**
   * External broker URL(s) (mqtt://user:pass@host:port). Without `mqttListen` there is then no embedded
   * broker; with it, the gateway serves its embedded broker and the external ones together, so meters
   * can fail over between them (each downlink goes out where its device was last heard).
   */
  broker?: string | string[];
  /** Default 127.0.0.1:8080. */
  httpListen?: string;
  /** Required for any non-loopback HTTP bind. */
  apiToken?: string;
  /** `sqlite:PATH` (default `sqlite:<dataDir>/gridlet.sqlite`), or `postgres://…`: a store (and identity) shared by replicas. */
  store?: string;
  topicPrefix?: string;
  /**
   * The name of this gateway's operator when it has no operator key of its own to enrol it (default
   * `local`): the gateway is then an operator of its own (MESH.md "Trust, version 2").
   */
  operator?: string;
  /** The operator key file that enrols this gateway (`gridlet operator init`). */
  operatorKey?: string;
  /** An enrollment certificate its operator signed offline (`gridlet operator enroll`). */
  operatorCert?: string;
  /** Other operators whose gateways may connect: ids, files, or NAME=ID_OR_FILE (`--trust-operator`). */
  trustOperators?: string[];
  /** Jobs a peer of the same operator may run here (mesh offload); tests shorten it. */
  meshPeerQuota?: Partial<PeerQuota>;
  /** How long a connecting mesh peer has to be admitted (default 10 s). */
  meshAdmissionTimeoutMs?: number;
  /** libp2p listen multiaddr for the mesh (e.g. /ip4/127.0.0.1/tcp/0); none: no mesh listener. */
  meshListen?: string;
  /** Mesh peers' multiaddrs including /p2p/<peer id>; dialled at start and redialled when lost. */
  peers?: string[];
  /** How often the mesh announces what changed of its heads and registry (default 5000 ms). */
  meshSyncMs?: number;
  /** How often the mesh announces all it holds (anti-entropy; default 12 × meshSyncMs). */
  meshAntiEntropyMs?: number;
  /** Mesh summaries larger than this many bytes go out in parts (default 256 KiB). */
  meshSummaryBytes?: number;
  /** Worker threads that sign readings messages under load (default: the cores but one, at most 2; 0: none). */
  signThreads?: number;
  /** A pino logger, or the core's Logger port (`log(level, message)`), which gets info and above. */
  logger?: Logger | CoreLogger;
  /** Timings and bounds; tests shorten them. */
  tuning?: Partial<Tuning>;
  /** Unix ms; tests move it. */
  clock?: () => number;
  /** LLM offload (ARCHITECTURE.md): an OpenAI-compatible server and its model name, or a local GGUF file. */
  llmUrl?: string;
  llmModel?: string;
  llmGguf?: string;
  /** This process's name among replicas of the gateway on an external broker (its MQTT client ids); default: a random name kept in the data directory. */
  replica?: string;
  /**
   * Connections per external broker joining the shared subscription (default 1). The broker spreads
   * messages over them one by one, so with more than one a device's frames arrive out of order: each
   * then costs the store look-ups of a resend and its ack covers less (docs/benchmarks.md).
   */
  ingressConnections?: number;
  /** Offload bounds, timeouts and context size (tests shorten them), or a backend object. */
  offload?: Omit<OffloadConfig, 'llmUrl' | 'llmModel' | 'llmGguf'>;
  /** OpenADR 3 VTNs the gateway is a VEN of (gateway/openadr), and timings tests shorten. */
  openadr?: OpenAdrVtnOptions[];
  openadrTuning?: Partial<OpenAdrTuning>;
}

export interface Gateway {
  id: string;
  mqttUrl: string;
  httpUrl: string;
  /** Its operator's id (MESH.md "Trust, version 2": op followed by the base32 of the operator's key). */
  operator: string;
  /** The mesh listen address with /p2p/<peer id>, when `meshListen` was given. */
  meshAddr?: string;
  /** The gateway's part in the mesh (grid messages, registry CRDT, libp2p node). */
  mesh: Mesh;
  /**
   * 'hello' {deviceId, model, firmware, state}, 'paired' {deviceId, device}, 'revoked' {deviceId},
   * 'records' {deviceId, records: RecordJson[]}, 'ack' {deviceId, seq}, 'status' {deviceId, status},
   * 'guest-ack' {deviceId, cid, state, reason?}, 'drop' {deviceId, reason}, 'lwt' {deviceId}.
   */
  events: GatewayEvents;
  stats(): GatewayStats;
  /** Sends a downlink body to a paired device (state-changing ones are kept until acknowledged). */
  sendDownlink(deviceId: string, body: DownBody): Promise<void>;
  /** The job queue behind `job` bodies; `offload.capabilities()` is what the mesh may advertise. */
  offload: Offload;
  /** Sharing policies, their changes and the audit log (privacy/service.ts). */
  privacy: PrivacyService;
  /** The OpenADR 3 VENs (none without `openadr` options). */
  openadr: OpenAdr;
  close(): Promise<void>;
}

export interface GatewayStats {
  id: string;
  devices: { paired: number; revoked: number; seen: number };
  connected: number;
  framesReceived: number;
  framesAccepted: number;
  framesDropped: { [reason: string]: number };
  messagesDropped: { [topicAndReason: string]: number };
  hellos: number;
  records: { [kind: string]: number };
  pairings: { [result: string]: number };
  downlinksSent: number;
}

const PREFIX = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;
/** The shortest time between two recounts of the devices by state (refreshCounts). */
const COUNT_GAP_MS = 250;

/** Parses `--store`: `sqlite:PATH`, or `postgres://…` (returned as is) for a store shared by replicas. */
export function storePath(spec: string | undefined, dataDir: string): string {
  if (spec === undefined) return join(dataDir, 'gridlet.sqlite');
  if (/^postgres(ql)?:\/\//.test(spec)) return spec;
  const m = /^sqlite:(.+)$/.exec(spec);
  if (!m) throw new Error(`--store "${spec}" must be sqlite:PATH or postgres://user:pass@host:5432/db`);
  return isAbsolute(m[1]) ? m[1] : resolve(m[1]);
}

/**
 * Opens the store and the identity: SQLite with the data directory's identity, or PostgreSQL, whose
 * replicas share one identity kept in the database (postgres-identity.ts).
 */
async function openStore(spec: string, dataDir: string): Promise<{ store: Store; identity: GatewayIdentity; share?: PairingShare }> {
  if (!/^postgres(ql)?:\/\//.test(spec)) return { store: new SqliteStore(spec), identity: loadOrCreateIdentity(dataDir) };
  const store = await PostgresStore.open(spec);
  try {
    const local = existsSync(join(dataDir, 'identity.json')) ? loadOrCreateIdentity(dataDir) : undefined;
    return { store, identity: await store.identity(() => local), share: store.pairing };
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** A random name for this data directory's gateway process among replicas, made once and kept. */
function replicaName(dataDir: string): string {
  const file = join(dataDir, 'replica');
  try {
    const name = readFileSync(file, 'utf8').trim();
    if (/^[A-Za-z0-9_-]{1,32}$/.test(name)) return name;
  } catch {
    // made below
  }
  const name = toHex(randomBytes(3));
  privateDir(dataDir);
  writeFileSync(file, name + '\n', { mode: 0o600 });
  return name;
}

/** The gateway logs through pino; a core Logger port gets each line as `message key=value …`. */
function toPino(logger: Logger | CoreLogger | undefined): Logger {
  if (!logger) return pino({ level: 'silent' });
  if (typeof (logger as Logger).child === 'function') return logger as Logger;
  const core = logger as CoreLogger;
  const names: { [n: number]: 'debug' | 'info' | 'warn' | 'error' } = { 10: 'debug', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'error' };
  return pino({ level: 'info', base: undefined, timestamp: false }, {
    write(line: string) {
      const { level, msg, ...fields } = JSON.parse(line) as { level: number; msg?: string; [k: string]: unknown };
      const extra = Object.entries(fields).filter(([k]) => k !== 'stack').map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
      core.log(names[level] ?? 'info', [msg ?? '', ...extra].join(' ').trim());
    },
  });
}

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  useRandom({ fill: (b) => randomFillSync(b) });
  // libsodium's secretbox for every frame's box where sodium-native loads (the same bytes as tweetnacl's),
  // node:crypto's SHA-256 and HMAC for the pairing's and every connect's hashes.
  useFastCrypto();
  const log = toPino(opts.logger);
  const tuning: Tuning = { ...DEFAULT_TUNING, ...opts.tuning };
  const now = opts.clock ?? Date.now;
  const prefix = opts.topicPrefix ?? DEFAULT_PREFIX;
  if (!PREFIX.test(prefix)) throw new Error(`topic prefix "${prefix}" must be letters, digits, _ and - (levels separated by /)`);
  for (const url of opts.broker === undefined ? [] : Array.isArray(opts.broker) ? opts.broker : [opts.broker]) {
    if (!/^(mqtts?|wss?|tcp|tls):\/\//.test(url)) throw new Error(`--broker "${url}" must be a URL such as mqtt://host:1883`);
  }
  const mqttListen = parseListen(opts.mqttListen ?? '127.0.0.1:1883', '--mqtt-listen');
  const httpListen = parseListen(opts.httpListen ?? '127.0.0.1:8080', '--http-listen');
  if (!isLoopback(httpListen.host) && !opts.apiToken) {
    throw new Error(`--http-listen ${opts.httpListen} is not a loopback address: give --api-token-file FILE (or GRIDLET_API_TOKEN) so that only holders of the token can use the API`);
  }
  // The data directory holds the identity and (by default) the store with every session key: the
  // owner's alone, before anything is written into it.
  privateDir(opts.dataDir);
  const dbPath = storePath(opts.store, opts.dataDir);
  const llm = backendFromConfig({
    ...opts.offload, llmUrl: opts.llmUrl, llmModel: opts.llmModel, llmGguf: opts.llmGguf,
    llmApiKey: opts.offload?.llmApiKey ?? (process.env.GRIDLET_LLM_API_KEY || undefined),
  }, log);

  if (opts.operatorKey !== undefined && opts.operatorCert !== undefined) {
    throw new Error('give either --operator-key FILE (the gateway enrols itself) or --operator-cert FILE (enrolled offline), not both');
  }
  // Read before the store opens: a wrong file is reported at once.
  const operatorKey = opts.operatorKey !== undefined ? readOperatorKey(opts.operatorKey) : undefined;
  const certificate = opts.operatorCert !== undefined ? readCertificate(opts.operatorCert) : undefined;
  const trusted = (opts.trustOperators ?? []).map(parseTrust);
  for (const [what, name] of [['operator key', operatorKey?.name], ['certificate', certificate?.name]] as const) {
    if (name !== undefined && opts.operator !== undefined && opts.operator !== name) {
      throw new Error(`--operator ${opts.operator} differs from the operator's name in its ${what} (${name}); the name comes from the ${what}: leave --operator out`);
    }
  }

  const { store, identity, share } = await openStore(dbPath, opts.dataDir);
  const events = new GatewayEvents();
  // Streams opened are audited by the privacy service (made below; used only once the API is up).
  const live = eventStream(events, { privacy: { recordDisclosure: (d) => privacy.recordDisclosure(d), effectivePolicy: (id) => privacy.effectivePolicy(id) } });
  const ingresses: MessageIngress[] = [];
  /** The ingress each device was last heard on: its downlinks go back that way. */
  const via = new Map<string, MessageIngress>();
  let broker: EmbeddedBroker | undefined;
  let http: HttpServer | undefined;
  /** Devices heard and not since gone (their lwt), for an external broker. */
  const heard = new Set<string>();
  const connected = (id: string) => (broker ? broker.isConnected(id) : heard.has(id));
  const deviceCounts = { paired: 0, revoked: 0, seen: 0 };

  let registry: Registry;
  const metrics = new GatewayMetrics({
    devicesByState: async () => registry.countByState(),
    connectedDevices: () => (broker ? broker.connectedDevices() : heard.size),
    pendingDownlinks: () => store.countPendingDownlinks(),
    backlog: async () => backlogOf(await store.listDevices()),
    checkpoints: () => (store instanceof SqliteStore ? store.checkpoints : undefined),
    groupCommits: () => (store instanceof SqliteStore ? store.groupCommits : undefined),
  });
  // A newly paired device is told the sharing policy it is under (config key `privacy`).
  const privacy = new PrivacyService({ store, log, now, send: (deviceId, body) => sendDownlink(deviceId, body) });
  const ctx: GatewayContext = {
    identity, prefix, store, metrics, log, events, tuning, now, privacy,
    publish(topic, payload, deviceId) {
      if (!ingresses.length) throw new Error('the gateway is not connected to its broker');
      const id = deviceId ?? parseTopic(prefix, topic)?.id;
      const i = id === undefined ? undefined : via.get(id);
      if (i) i.publish(topic, payload);
      else for (const x of ingresses) x.publish(topic, payload);
    },
  };
  const downlink = new Downlink(ctx);
  async function sendDownlink(deviceId: string, body: DownBody): Promise<void> {
    const d = await store.getDevice(deviceId);
    if (!d || d.state !== 'paired') throw new Error(`device ${deviceId} is not paired on this gateway`);
    await downlink.send(d, body);
  }
  const offload = new Offload({ ...opts.offload, backend: llm }, { store, gatewayId: identity.id, send: sendDownlink, now, log, registry: metrics.registry });
  const firmware = new FirmwareService({
    store, downlink, log, now, registry: metrics.registry,
    devicesMatching: async (selector) => (await registry.list(selector)).filter((d) => d.state === 'paired').map((d) => d.id),
  });
  const lastTime = new Map<string, number>();
  const gw: HandlerContext = {
    ...ctx,
    downlink,
    offload,
    firmware,
    async timeSync(device) {
      const last = lastTime.get(device.id);
      const t = now();
      if (last !== undefined && t - last < tuning.timeIntervalMs) return;
      lastTime.set(device.id, t);
      await downlink.send(device, { type: Body.time, time: Math.floor(t / 1000) });
    },
  };
  const pairing = new Pairing(ctx, share, (device) => onPaired(device));
  const openadr = new OpenAdr(opts.openadr ?? [], {
    store, downlink, privacy, events, log, registry: metrics.registry, now, dataDir: opts.dataDir, gatewayId: identity.id, tuning: opts.openadrTuning,
  });
  let mesh: Mesh | undefined;
  let retention: Retention | undefined;
  registry = new Registry(ctx, pairing, downlink, connected, () => mesh);
  const frames = new Frames(gw, pairing, (device) => {
    if (!broker) heard.add(device.id);
  });
  // Counting is O(devices seen): under a stream of Hellos and pairings (a fleet coming up) recounts
  // coalesce, and a count is repeated at most every ~50 of its own durations, at least 250 ms and at
  // most 5 s apart (a cheap count repeated back to back would take a core while a fleet pairs).
  let counting: Promise<void> | undefined;
  let countsDirty = false;
  let countedAt = 0;
  let countCost = 0;
  const refreshCounts = (): Promise<void> => {
    countsDirty = true;
    counting ??= (async () => {
      try {
        while (countsDirty) {
          const wait = countedAt + Math.min(5000, Math.max(COUNT_GAP_MS, countCost * 50)) - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          countsDirty = false;
          const t = performance.now();
          Object.assign(deviceCounts, await registry.countByState());
          countedAt = performance.now();
          countCost = countedAt - t;
        }
      } catch (e) {
        // Callers do not wait for a count: a failed one is logged, and the next change counts again.
        log.warn({ err: (e as Error).message }, 'device counts not refreshed');
      } finally {
        counting = undefined;
      }
    })();
    return counting;
  };

  async function onPaired(device: DeviceRow): Promise<void> {
    await mesh?.paired(device.id).catch((e: Error) => log.error({ device: device.id, err: e.message }, 'mesh: pairing message not signed'));
    // Not counted against the hourly limit: a device reconnecting with its new credentials may miss it.
    // Under the counter the pairing reserved (Pairing.complete), so it costs no write of its own.
    const time = { type: Body.time, time: Math.floor(now() / 1000) } as const;
    if (device.downCounter === 1) downlink.sendWithCounter(device, 1, time);
    else await downlink.send(device, time);
    events.emit('paired', { deviceId: device.id, device: registry.deviceJson(device) });
    // Not awaited: the device's next frames must not wait for a recount (which may be seconds away).
    void refreshCounts();
  }
  events.on('revoked', () => void refreshCounts());
  events.on('drop', dropLogger(log, now));
  events.on('paired', ({ deviceId }: { deviceId: string }) => void privacy.paired(deviceId));

  const helloRate = new TokenBuckets(tuning.helloBurst, tuning.helloIntervalMs, now);
  async function onHello(id: string, payload: Uint8Array): Promise<void> {
    // The embedded broker rate-limits Hellos per client; an external broker is trusted for nothing.
    if (!broker && !helloRate.take(id)) return metrics.dropMessage('hello', 'rate');
    const result = await pairing.onHello(id, payload, broker?.source(id));
    if (result !== 'accepted') return metrics.dropMessage('hello', result);
    metrics.hello();
    if (!broker) heard.add(id);
    const entry = (await pairing.hello(id))!;
    const device = await store.getDevice(id);
    if (device) {
      await store.touch(id, now());
      // A Hello means the device has left its session (WIRE.md "Pairing" 5): an unpair is done.
      if (device.state === 'revoked') await store.dropDownlinks(id);
      else await downlink.heard(device);
    } else if (entry.firstSeen === entry.receivedAt) void refreshCounts(); // not awaited: a Hello storm must not hold the ingress
    events.emit('hello', { deviceId: id, model: entry.hello.model, firmware: entry.hello.firmware, state: device?.state ?? 'seen' });
  }

  async function onMessage(t: ReturnType<typeof parseTopic>, payload: Uint8Array, receivedAt: number): Promise<void> {
    switch (t?.kind) {
      case TopicKind.hello:
        return onHello(t.id, payload);
      case TopicKind.up:
        return frames.onUp(t.id, payload, receivedAt);
      case TopicKind.lwt:
        if (payload.length !== 0) metrics.dropMessage('lwt', 'not-empty');
        heard.delete(t.id);
        events.emit('lwt', { deviceId: t.id });
        return;
      default:
        metrics.dropMessage('unknown', 'topic');
    }
  }

  const externals = opts.broker === undefined ? [] : Array.isArray(opts.broker) ? opts.broker : [opts.broker];
  const heardVia = (ing: () => MessageIngress) => (topic: string, payload: Uint8Array, receivedAt: number) => {
    const t = parseTopic(prefix, topic);
    if (t && t.kind !== TopicKind.lwt) via.set(t.id, ing());
    return onMessage(t, payload, receivedAt);
  };
  try {
    if (certificate && !certifies(certificate, identity)) {
      throw new Error(`--operator-cert ${opts.operatorCert} enrols gateway ${certificate.gateway} with mesh key ${toHex(certificate.ed25519).slice(0, 16)}…, ` +
        `not this gateway (${identity.id}, mesh key ${toHex(identity.sign.publicKey).slice(0, 16)}…): ask its operator to enrol it again ` +
        `(gridlet gateway identity --data DIR --out REQUEST, then gridlet operator enroll REQUEST)`);
    }
    if (!operatorKey && !certificate && opts.operator !== undefined && (opts.meshListen !== undefined || (opts.peers?.length ?? 0) > 0)) {
      log.warn({ operator: opts.operator }, 'this gateway is an operator of its own: gateways sharing an --operator name are no longer one operator; ' +
        'enrol them with the same --operator-key (gridlet operator init) to make them one');
    }
    const trust: MeshTrust = certificate
      ? { operator: { id: `op${base32(certificate.operator)}`, name: certificate.name, publicKey: certificate.operator }, certificate, trusted }
      : { operator: operatorKey ?? selfOperator(identity, opts.operator ?? 'local'), trusted };
    mesh = await Mesh.start({
      ctx, trust, listen: opts.meshListen, peers: opts.peers, syncIntervalMs: opts.meshSyncMs, peerQuota: opts.meshPeerQuota,
      admissionTimeoutMs: opts.meshAdmissionTimeoutMs,
      antiEntropyMs: opts.meshAntiEntropyMs, summaryMaxBytes: opts.meshSummaryBytes, signThreads: opts.signThreads,
      capabilities: () => offload.capabilities(),
      serveOffload: offload.backend ? (peer, req, signal, onText) => offload.serve(peer, req, signal, onText) : undefined,
      onRevoke: async (id) => void (await registry.revoke(id, { fromMesh: true })),
    })
      .catch((e: Error) => {
        throw new Error(`cannot start the mesh${opts.meshListen ? ` on ${opts.meshListen}` : ''}: ${e.message}`);
      });
    const m = mesh;
    retention = new Retention({
      store, privacy, gatewayId: identity.id, signer: mesh.signer, log, now,
      announce: async (bytes) => m.broadcast([bytes]),
    });
    retention.start(tuning.retentionIntervalMs);
    // Without a backend of its own, jobs go to a connected peer that announced their kind.
    if (!offload.backend && mesh.node) {
      const m = mesh;
      offload.setPeerRouter((kind) => m.offloadPeer(kind));
    }
    const subscriptions = [`${prefix}/v1/hello/+`, `${prefix}/v1/d/+/up`, `${prefix}/v1/d/+/lwt`];
    if (!externals.length || opts.mqttListen !== undefined) {
      const internal = { clientId: `gridlet-gateway-${toHex(randomBytes(4))}`, username: 'gridlet-gateway', password: toHex(randomBytes(32)) };
      broker = await EmbeddedBroker.start({
        host: mqttListen.host, port: mqttListen.port, prefix, internal, metrics, log, tuning, now,
        async session(id): Promise<BrokerSession> {
          const p = await pairing.pending(id);
          if (p) return { state: 'pending', ks: p.ks };
          const d = await store.getDevice(id);
          if (!d) return { state: 'none' };
          return d.state === 'paired' ? { state: 'paired', ks: d.ks } : { state: 'revoked' };
        },
      }).catch((e: Error & { code?: string }) => {
        throw new Error(`cannot listen for MQTT on ${opts.mqttListen ?? '127.0.0.1:1883'}: ${e.code ?? e.message}` +
          (e.code === 'EADDRINUSE' ? '; another broker runs there: use --mqtt-listen HOST:PORT or --broker URL' : ''));
      });
      log.info({ url: broker.url }, 'embedded MQTT broker listening');
      // The gateway takes its embedded broker's messages in-process, without an MQTT client in between.
      const embedded: MessageIngress = new DirectIngress({ broker, subscriptions, log, now, onMessage: heardVia(() => embedded) });
      ingresses.push(embedded);
    }
    for (const url of externals) {
      // On an external broker its own rules apply: frames are still authenticated here.
      const n = ingresses.length;
      // Replicas of one gateway (one identity) share the load through a shared subscription; each
      // process needs client ids of its own (--replica NAME, or a name kept in its data directory),
      // the same across restarts so that its broker session, and what waits in it, is resumed.
      const replica = opts.replica ?? replicaName(opts.dataDir);
      const ext: Ingress = new Ingress({
        url, clientId: `gridlet-gateway-${identity.id}-${replica}${n ? `-${n}` : ''}`, protocolVersion: 5, subscriptions, log, now,
        shareGroup: 'gridlet', connections: opts.ingressConnections ?? 1, onMessage: heardVia(() => ext),
      });
      ingresses.push(ext);
    }
    for (const i of ingresses) await i.start();
    http = await HttpServer.start({
      listen: httpListen, apiToken: opts.apiToken, log,
      routes: [...meshRoutes(mesh), ...live.routes, ...routes({ gatewayId: identity.id, registry, pairing, store, metrics: metrics.registry, privacy }),
        ...deviceOpsRoutes({ registry, store, downlink, log, now }), ...firmwareRoutes(firmware), ...privacyRoutes({ privacy, registry, store, retention }), ...openadr.routes()],
    }).catch((e: Error & { code?: string }) => {
      throw new Error(`cannot listen for HTTP on ${opts.httpListen ?? '127.0.0.1:8080'}: ${e.code ?? e.message}` +
        (e.code === 'EADDRINUSE' ? '; use --http-listen HOST:PORT' : ''));
    });
    await refreshCounts();
    openadr.start(http.url);
  } catch (e) {
    await openadr.close();
    live.close();
    retention?.close();
    pairing.close();
    await offload.close().catch(() => {});
    await mesh?.close().catch(() => {});
    for (const i of ingresses) await i.close().catch(() => {});
    await broker?.close().catch(() => {});
    await store.close();
    throw e;
  }

  const mqttUrl = broker ? broker.url : externals[0];
  log.info({ id: identity.id, mqtt: mqttUrl, http: http.url, operator: mesh.operator, operatorName: mesh.operatorName }, 'gateway ready');
  let closing: Promise<void> | undefined;
  return {
    id: identity.id,
    mqttUrl,
    httpUrl: http.url,
    operator: mesh.operator,
    meshAddr: mesh.multiaddr,
    mesh,
    events,
    stats(): GatewayStats {
      const c = metrics.counts;
      return {
        id: identity.id, devices: { ...deviceCounts }, connected: broker ? broker.connectedDevices() : heard.size,
        framesReceived: c.framesReceived, framesAccepted: c.framesAccepted, framesDropped: { ...c.framesDropped },
        messagesDropped: { ...c.messagesDropped }, hellos: c.hellos, records: { ...c.records },
        pairings: { ...c.pairings }, downlinksSent: c.downlinksSent,
      };
    },
    sendDownlink,
    offload,
    privacy,
    openadr,
    close() {
      closing ??= (async () => {
        await openadr.close(); // its last reports and subscriptions go while the store is open
        retention!.close();
        pairing.close();
        await offload.close(); // running jobs end with an error result while the broker is still up
        await mesh!.close();
        live.close(); // ends open dashboard streams, which would otherwise hold the HTTP server open
        await http!.close();
        for (const i of ingresses) await i.close();
        await broker?.close();
        await store.close();
        events.removeAllListeners();
      })();
      return closing;
    },
  };
}
