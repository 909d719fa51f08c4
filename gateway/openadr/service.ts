// The gateway's OpenADR 3 VENs, one per VTN (`--openadr-vtn` groups), their HTTP routes and their part
// in the gateway's life: started once the HTTP listener is up (its address is the webhook's), told of
// pairings and revocations, closed with the gateway.
//   GET  /api/openadr                  each VTN link: state, last poll, failures, the events and their meters
//   POST /api/openadr/<key>/notify     the webhook a VTN calls (authenticated by the subscription's token)

import type { GatewayEvents } from '../events.js';
import type { Registry } from 'prom-client';
import { isLoopback } from '../http/security.js';
import { HttpError, type Route } from '../http/server.js';
import { openAdrMetrics } from './metrics.js';
import { OPENADR_VERSIONS, type OpenAdrSpecVersion } from './schema.js';
import { DEFAULT_OPENADR_TUNING, Ven, type OpenAdrTuning, type VenDeps, type VtnLink } from './ven.js';

export interface OpenAdrVtnOptions {
  /** The VTN's base URL, e.g. https://vtn.example.com/openadr3/3.1.0 */
  url: string;
  clientId: string;
  clientSecret: string;
  /** Default 3.1.0. */
  version?: string;
  /** Default: the gateway id. */
  venName?: string;
  /** Seconds between polls, default 30. */
  pollS?: number;
  /** The base URL at which the VTN reaches this gateway's HTTP listener, for a webhook subscription; `none`: no subscription. */
  callbackUrl?: string;
}

export interface OpenAdrDeps extends Omit<VenDeps, 'metrics' | 'tuning'> {
  events: GatewayEvents;
  registry: Registry;
  gatewayId: string;
  tuning?: Partial<OpenAdrTuning>;
}

export const DEFAULT_POLL_S = 30;

/** Checks the options of one VTN; the messages name the command-line flags. */
export function checkVtnOptions(o: OpenAdrVtnOptions, gatewayId: string): Omit<VtnLink, 'idPrefix' | 'callbackBase'> & { callbackUrl?: string } {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new Error(`--openadr-vtn "${o.url}" is not a URL such as https://vtn.example.com/openadr3/3.1.0`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`--openadr-vtn "${o.url}" must be an https:// (or http://) URL`);
  if (url.username || url.password) throw new Error(`--openadr-vtn "${url.host}": give the credentials with --openadr-client-id and the secret, not in the URL`);
  if (url.search || url.hash) throw new Error(`--openadr-vtn "${o.url}" must be the VTN's base URL, without ?query or #fragment`);
  if (!o.clientId) throw new Error(`--openadr-vtn ${o.url} needs --openadr-client-id ID`);
  if (!o.clientSecret) {
    throw new Error(`--openadr-vtn ${o.url} needs its client secret: set GRIDLET_OPENADR_CLIENT_SECRET or give --openadr-client-secret-file PATH`);
  }
  const version = (o.version ?? '3.1.0') as OpenAdrSpecVersion;
  if (!OPENADR_VERSIONS.includes(version)) throw new Error(`--openadr-version must be ${OPENADR_VERSIONS.join(' or ')}, not "${o.version}"`);
  const venName = o.venName ?? gatewayId;
  if (!venName || [...venName].length > 128) throw new Error(`--openadr-ven-name must be 1 to 128 characters, not "${venName.slice(0, 40)}"`);
  const pollS = o.pollS ?? DEFAULT_POLL_S;
  if (!Number.isInteger(pollS) || pollS < 1 || pollS > 3600) throw new Error(`--openadr-poll-s must be a whole number of seconds from 1 to 3600, not "${o.pollS}"`);
  if (o.callbackUrl !== undefined && o.callbackUrl !== 'none') {
    let c: URL;
    try {
      c = new URL(o.callbackUrl);
    } catch {
      throw new Error(`--openadr-callback-url "${o.callbackUrl}" is not a URL such as https://gateway.example.com`);
    }
    if (c.protocol !== 'https:' && c.protocol !== 'http:') throw new Error(`--openadr-callback-url "${o.callbackUrl}" must be an https:// (or http://) URL`);
  }
  return { url: url.href.replace(/\/+$/, ''), clientId: o.clientId, clientSecret: o.clientSecret, version, venName, pollS, callbackUrl: o.callbackUrl };
}

export class OpenAdr {
  readonly vens: Ven[] = [];
  readonly #d: OpenAdrDeps;
  readonly #links: ReturnType<typeof checkVtnOptions>[];
  readonly #metrics;
  #onDevice = ({ deviceId }: { deviceId: string }) => {
    for (const v of this.vens) v.devicesChanged(deviceId);
  };

  /** Checks the options (throws with a message naming the flag); nothing runs before start(). */
  constructor(options: OpenAdrVtnOptions[], d: OpenAdrDeps) {
    this.#d = d;
    this.#links = options.map((o) => checkVtnOptions(o, d.gatewayId));
    const seen = new Set<string>();
    for (const l of this.#links) {
      const k = `${l.url}\n${l.clientId}`;
      if (seen.has(k)) throw new Error(`--openadr-vtn ${l.url} with client ${l.clientId} is given twice`);
      seen.add(k);
    }
    this.#metrics = openAdrMetrics(d.registry);
  }

  /** Starts each VEN; `httpUrl` is the gateway's listener (the webhook's address when the VTN can reach it). */
  start(httpUrl: string): void {
    const tuning = { ...DEFAULT_OPENADR_TUNING, ...this.#d.tuning };
    const listener = new URL(httpUrl);
    this.#links.forEach((l, i) => {
      // Without --openadr-callback-url, a VTN on this machine can reach a listener on loopback.
      const callbackBase = l.callbackUrl === 'none' ? undefined : l.callbackUrl ?? (isLoopback(new URL(l.url).hostname.replace(/^\[|\]$/g, '')) && isLoopback(listener.hostname.replace(/^\[|\]$/g, '')) ? httpUrl : undefined);
      const ven = new Ven({ ...l, idPrefix: i === 0 ? '' : `vtn${i + 1}/`, callbackBase }, {
        store: this.#d.store, downlink: this.#d.downlink, privacy: this.#d.privacy, log: this.#d.log, metrics: this.#metrics,
        now: this.#d.now, dataDir: this.#d.dataDir, tuning,
      });
      this.vens.push(ven);
      this.#d.log.info({ vtn: l.url, version: l.version, venName: l.venName, pollS: l.pollS, webhook: ven.callbackUrl ?? 'off' }, 'OpenADR: VEN starting');
    });
    this.#d.events.on('paired', this.#onDevice);
    this.#d.events.on('revoked', this.#onDevice);
    for (const v of this.vens) v.start();
  }

  status(): { vtns: { [k: string]: unknown }[] } {
    return { vtns: this.vens.map((v) => v.status()) };
  }

  routes(): Route[] {
    return [
      {
        method: 'GET', pattern: /^\/api\/openadr$/,
        handle: async () => ({ status: 200, json: this.status() }),
      },
      {
        method: 'POST', pattern: /^\/api\/openadr\/([A-Za-z0-9]+)\/notify$/, webhook: true,
        handle: async (req) => {
          const ven = this.vens.find((v) => v.key === req.params[0]);
          if (!ven?.callbackUrl) throw new HttpError(404, `no OpenADR webhook ${req.params[0].slice(0, 20)} on this gateway`);
          const m = /^Bearer\s+(.+)$/i.exec(String(req.headers.authorization ?? '').trim());
          const r = ven.notify(m?.[1], req.body);
          if (r.error) throw new HttpError(r.status, r.error);
          return { status: 200, json: {} };
        },
      },
    ];
  }

  async close(): Promise<void> {
    this.#d.events.off('paired', this.#onDevice);
    this.#d.events.off('revoked', this.#onDevice);
    await Promise.all(this.vens.map((v) => v.close()));
  }
}
