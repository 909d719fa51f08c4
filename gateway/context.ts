// What the gateway's parts share: identity, store, metrics, log, the clock, and the way out to MQTT.

import type { Logger } from 'pino';
import type { GatewayEvents } from './events.js';
import type { GatewayIdentity } from './identity.js';
import type { GatewayMetrics } from './metrics.js';
import type { PrivacyService } from './privacy/service.js';
import type { Store } from './store/store.js';

export interface Tuning {
  /** How long POST /api/pairings waits for the device (WIRE.md: 15 s). */
  pairTimeoutMs: number;
  /** Hello table bound and lifetime (WIRE.md: bounded, each forgotten after an hour). */
  helloTableSize: number;
  helloTtlMs: number;
  /**
   * The embedded broker's bounds on clients without a session (they may only Hello): at most this many
   * connected at once in all, and from one address.
   */
  unpairedConnections: number;
  unpairedPerSource: number;
  /** Hellos per client: a bucket of `helloBurst`, refilled one per `helloIntervalMs`. */
  helloBurst: number;
  helloIntervalMs: number;
  /** Kept downlinks are resent when the device is heard, at most this often. */
  resendIntervalMs: number;
  /** A `time` body goes to a device sending t = 0 at most this often. */
  timeIntervalMs: number;
  /** How often expired records and readings messages are removed (privacy/retention.ts). */
  retentionIntervalMs: number;
}

export const DEFAULT_TUNING: Tuning = {
  pairTimeoutMs: 15_000,
  helloTableSize: 10_000,
  helloTtlMs: 3_600_000,
  unpairedConnections: 5_000,
  unpairedPerSource: 500,
  helloBurst: 3,
  helloIntervalMs: 2_000,
  resendIntervalMs: 30_000,
  timeIntervalMs: 3_600_000,
  retentionIntervalMs: 3_600_000,
};

export interface GatewayContext {
  identity: GatewayIdentity;
  prefix: string;
  store: Store;
  metrics: GatewayMetrics;
  log: Logger;
  /** What happened, for the parts that act on it (events.ts names every event and its payload). */
  events: GatewayEvents;
  tuning: Tuning;
  /** Unix ms. */
  now(): number;
  /** Sharing policies in force per device, their changes, and the audit log (privacy/service.ts). */
  privacy: PrivacyService;
  /** QoS 1 publish through the gateway's own MQTT client. Never awaited: see ingress.ts. */
  /** `deviceId`: the device the topic is about, when the caller knows it (else read from the topic). */
  publish(topic: string, payload: Uint8Array, deviceId?: string): void;
}
