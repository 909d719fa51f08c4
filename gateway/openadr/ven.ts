// The gateway as an OpenADR 3 VEN of one VTN (docs/operator.md "OpenADR 3: a utility's VTN"):
//   1. a bearer token (vtn-client.ts);
//   2. its VEN object, found by venName or created, and one resource per paired meter (resourceName = the
//      device id), created at pairing and deleted at revocation, checked against the VTN every resyncMs;
//   3. a webhook subscription to events where the VTN can reach the gateway's HTTP listener;
//   4. every pollMs (and at once on a notification) all programs and events: each event is mapped as
//      `gridlet dr send --openadr` maps it (dr/openadr.ts) and sent to the meters its targets name
//      (targets.ts); a changed event replaces what the meters have (a higher modification), an event that
//      disappeared, or lost intervals or meters, is cancelled on them (duration 0);
//   5. the USAGE and DEMAND reports the events ask for (reports.ts), posted when each interval ends and
//      replaced (PUT) when late readings arrive.
// A VTN that is down, slow, failing or sending what the schema does not allow only stops this loop's
// progress: what was sent stays on the meters (which run their events offline anyway), failures are
// counted per kind and logged once per kind until the link works again.

import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Body, type DrEvent, type Tariff } from '../../firmware/core/wire/bodies.js';
import { FieldError } from '../dr/field.js';
import { eventIntervals, mapOpenAdr, NothingToSend, type IntervalTime } from '../dr/openadr.js';
import { allows, allowsChannel } from '../privacy/policy.js';
import type { PrivacyService } from '../privacy/service.js';
import type { DeviceRow, Store } from '../store/store.js';
import type { Downlink } from '../downlink.js';
import { isoTime } from '../json.js';
import { isDeviceId } from '../../firmware/core/wire/topics.js';
import { constantTimeEqual, utf8Encode } from '../../firmware/core/bytes.js';
import type { OpenAdrMetrics } from './metrics.js';
import { boundaries, buildReport, complete, ENERGY_CHANNEL, feed, levelFor, newTrack, POWER_CHANNEL, reportRequests, type Track } from './reports.js';
import { problemText, type OpenAdrSpecVersion } from './schema.js';
import { linkKey, loadState, saveState, stateFile, type EventState, type SentDr, type VenState } from './state.js';
import { grantedTexts, readTargets, resolveTargets, type TargetContext } from './targets.js';
import { VtnClient, VtnError, type ErrorKind } from './vtn-client.js';
import { RecordKind } from '../../firmware/core/wire/constants.js';

export interface VtnLink {
  url: string;
  clientId: string;
  clientSecret: string;
  version: OpenAdrSpecVersion;
  venName: string;
  pollS: number;
  /** Base URL at which the VTN reaches this gateway's HTTP listener; none: no webhook. */
  callbackBase?: string;
  /** Put before every dr-event id of this VTN's events ('' for the first VTN). */
  idPrefix: string;
}

export interface OpenAdrTuning {
  /** Overrides pollS (tests). */
  pollMs?: number;
  /** Per request (default 10 s). */
  timeoutMs: number;
  /** How long after an interval ends a report waits for meters still to deliver readings (default 60 s). */
  reportGraceMs: number;
  /** Late readings are taken into a report for this long after the event's end (default 24 h). */
  reportLateMs: number;
  /** How often resources are checked against the VTN's list (default 10 minutes). */
  resyncMs: number;
  /** Refused credentials are retried after the poll interval, doubling up to this (default 10 minutes). */
  authBackoffMaxMs: number;
  /** Events gone from the VTN are shown this long (default 24 h). */
  keepGoneMs: number;
}

export const DEFAULT_OPENADR_TUNING: OpenAdrTuning = {
  timeoutMs: 10_000, reportGraceMs: 60_000, reportLateMs: 86_400_000, resyncMs: 600_000, authBackoffMaxMs: 600_000, keepGoneMs: 86_400_000,
};

export interface VenDeps {
  store: Store;
  downlink: Pick<Downlink, 'send'>;
  privacy: Pick<PrivacyService, 'effectivePolicy' | 'recordDisclosure'>;
  log: Logger;
  metrics: OpenAdrMetrics;
  /** Unix ms. */
  now(): number;
  dataDir: string;
  tuning: OpenAdrTuning;
}

/** Link failures: reset by a poll that works. */
const LINK_KINDS: ErrorKind[] = ['unreachable', 'timeout', 'auth', 'server', 'http', 'json', 'schema', 'internal'];
/** How many records a report reads back to find a meter's readings before an event (event in the past). */
const MAX_BACKFILL_RECORDS = 50_000;
/** How many records are read at once. */
const READ_BATCH = 500;

interface Program {
  id: string;
  name: string;
  currency?: string;
}

export class Ven {
  readonly key: string;
  readonly link: VtnLink;
  readonly client: VtnClient;
  readonly #d: VenDeps;
  readonly #file: string;
  #state: VenState;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;
  #started = false;
  #resourcesDirty = true;
  /** Meters paired or revoked since the last run. */
  #pending = new Set<string>();
  #resyncAt = 0;
  #authBackoff = 0;
  #programs: Program[] = [];
  #venGranted: string[] = [];
  #resourceGranted = new Map<string, string[]>();
  /** Failure kinds since the link last worked: when first seen, how many. */
  #failing = new Map<ErrorKind, { since: number; count: number; message: string }>();
  #errors: { [kind: string]: number } = {};
  #lastError: { kind: ErrorKind; message: string; at: number } | undefined;
  #lastPoll: number | undefined;
  #lastSuccess: number | undefined;
  #webhookState: 'off' | 'subscribing' | 'subscribed' | 'unsupported' | 'failing' = 'off';
  #webhookRetryAt = 0;
  /** Invalid objects already counted and logged (id + problems), so a bad object is reported once. */
  #reported = new Set<string>();
  #notifications = 0;

  constructor(link: VtnLink, d: VenDeps) {
    this.link = link;
    this.#d = d;
    this.key = linkKey(link.url, link.clientId);
    this.#file = stateFile(d.dataDir, this.key);
    this.client = new VtnClient({ url: link.url, clientId: link.clientId, clientSecret: link.clientSecret, version: link.version, timeoutMs: d.tuning.timeoutMs, now: d.now });
    const fresh = (): VenState => ({ v: 1, url: link.url, clientId: link.clientId, venName: link.venName, resources: {}, events: {} });
    this.#state = loadState(this.#file, fresh);
    if (this.#state.venName !== link.venName) {
      // Another VEN name is another VEN on the VTN: its ids do not carry over, its events do (to be cancelled if gone).
      this.#state.venName = link.venName;
      this.#state.venId = undefined;
      this.#state.resources = {};
    }
    if (link.callbackBase) {
      this.#state.webhook ??= { token: randomBytes(24).toString('base64url'), subscriptions: {} };
      this.#webhookState = 'subscribing';
    }
  }

  get pollMs(): number {
    return this.#d.tuning.pollMs ?? this.link.pollS * 1000;
  }

  get callbackUrl(): string | undefined {
    return this.link.callbackBase ? `${this.link.callbackBase.replace(/\/+$/, '')}/api/openadr/${this.key}/notify` : undefined;
  }

  start(): void {
    this.#started = true;
    this.#schedule(0);
  }

  /** A meter was paired or revoked: its resource is created or deleted, and events are matched again. */
  devicesChanged(deviceId: string): void {
    this.#pending.add(deviceId);
    if (this.#started) this.wake();
  }

  /** Runs the loop now (a notification, a pairing), or right after the run in progress. */
  wake(): void {
    if (this.#closed) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#schedule(0);
  }

  /** A notification from the VTN (POST /api/openadr/<key>/notify): checked, then the loop runs at once. */
  notify(token: string | undefined, body: unknown): { status: number; error?: string } {
    const w = this.#state.webhook;
    if (!w || token === undefined || !constantTimeEqual(utf8Encode(token), utf8Encode(w.token))) return { status: 401, error: 'this callback needs the bearer token given in the subscription' };
    const problems = this.client.spec.validate('notification', body);
    if (problems.length) {
      this.#failure(new VtnError('schema', `notification: not an OpenADR ${this.link.version} notification: ${problemText(problems)}`));
      return { status: 400, error: `not an OpenADR ${this.link.version} notification: ${problemText(problems)}` };
    }
    this.#notifications++;
    this.wake();
    return { status: 200 };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    // A run waiting on a slow VTN is not waited for: its requests end now.
    this.client.abort();
    await this.#running;
    // Subscriptions are taken back, so that the VTN does not call a gateway that is gone.
    const w = this.#state.webhook;
    if (w && Object.keys(w.subscriptions).length && this.#lastSuccess !== undefined && !this.#failing.size) {
      for (const [program, id] of Object.entries(w.subscriptions)) {
        try {
          await this.client.request('DELETE', `/subscriptions/${encodeURIComponent(id)}`, { ok: [200, 204] });
          delete w.subscriptions[program];
        } catch {
          // taken back at the next start (subscriptions of this link with another URL are removed)
        }
      }
    }
    this.#save();
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#tick().finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.#schedule(0);
        } else this.#schedule(this.#nextDelay());
      });
    }, ms);
  }

  #nextDelay(): number {
    if (this.#failing.has('auth')) {
      this.#authBackoff = Math.min(this.#d.tuning.authBackoffMaxMs, Math.max(this.pollMs, this.#authBackoff * 2));
      return this.#authBackoff;
    }
    this.#authBackoff = 0;
    // Earlier when a report interval ends before the next poll.
    const now = this.#d.now();
    let next = this.pollMs;
    for (const e of Object.values(this.#state.events)) {
      const r = e.report;
      if (!r || r.done || r.closed) continue;
      for (const iv of this.#intervals(e)) {
        const due = (iv.start + iv.duration) * 1000 + 100 - now;
        if (due > 0) {
          next = Math.min(next, due);
          break;
        }
      }
    }
    return Math.max(0, next);
  }

  async #tick(): Promise<void> {
    this.#lastPoll = this.#d.now();
    let linked = false;
    try {
      await this.#register();
      await this.#poll();
      linked = true;
      this.#linkWorks();
      await this.#subscribe();
    } catch (e) {
      this.#failure(e);
    }
    if (linked) {
      try {
        await this.#reports();
      } catch (e) {
        this.#failure(e);
      }
    }
    this.#forgetGone();
    this.#d.metrics.up.set({ vtn: this.link.url }, linked ? 1 : 0);
    this.#d.metrics.events.set({ vtn: this.link.url }, Object.values(this.#state.events).filter((e) => !e.gone).length);
    this.#save();
  }

  #save(): void {
    try {
      saveState(this.#file, this.#state);
    } catch (e) {
      this.#d.log.error({ vtn: this.link.url, file: this.#file, err: (e as Error).message }, 'OpenADR: cannot write the VEN state');
    }
  }

  // ---------------------------------------------------------------- failures

  #failure(e: unknown): void {
    if (this.#closed) return; // requests ended by close()
    const err = e instanceof VtnError ? e : new VtnError('internal', (e as Error)?.message ?? String(e));
    if (!(e instanceof VtnError)) this.#d.log.error({ vtn: this.link.url, err: err.message, stack: (e as Error)?.stack }, 'OpenADR: internal error');
    this.#count(err.kind, err.message);
    const f = this.#failing.get(err.kind);
    if (f) {
      f.count++;
      f.message = err.message;
      return;
    }
    this.#failing.set(err.kind, { since: this.#d.now(), count: 1, message: err.message });
    // Once per kind until the link works again.
    this.#d.log.warn({ vtn: this.link.url, kind: err.kind, err: err.message }, err.kind === 'auth' ? 'OpenADR VTN: authentication failed' : 'OpenADR VTN: request failed');
  }

  #count(kind: ErrorKind, message: string): void {
    this.#d.metrics.errors.inc({ vtn: this.link.url, kind });
    this.#errors[kind] = (this.#errors[kind] ?? 0) + 1;
    this.#lastError = { kind, message, at: this.#d.now() };
  }

  /** One object the VTN sent, or one event, that cannot be used: counted and logged once. */
  #objectProblem(kind: ErrorKind, what: string, message: string): void {
    const key = `${kind}\u0000${what}\u0000${message}`;
    if (this.#reported.has(key)) return;
    if (this.#reported.size > 10_000) this.#reported.clear();
    this.#reported.add(key);
    this.#count(kind, `${what}: ${message}`);
    this.#d.log.warn({ vtn: this.link.url, kind, object: what, err: message }, 'OpenADR VTN: object not used');
  }

  #linkWorks(): void {
    this.#lastSuccess = this.#d.now();
    const was = [...this.#failing].filter(([k]) => LINK_KINDS.includes(k));
    if (!was.length) return;
    this.#d.log.info({
      vtn: this.link.url, failures: Object.fromEntries(was.map(([k, f]) => [k, f.count])),
      seconds: Math.round((this.#d.now() - Math.min(...was.map(([, f]) => f.since))) / 1000),
    }, 'OpenADR VTN: the link works again');
    for (const [k] of was) this.#failing.delete(k);
  }

  // ---------------------------------------------------------------- registration

  async #pairedDevices(): Promise<DeviceRow[]> {
    return (await this.#d.store.listDevices()).filter((d) => d.state === 'paired');
  }

  async #register(): Promise<void> {
    const s = this.#state;
    const v = this.link.version;
    if (!s.venId) {
      const found = await this.client.list<{ id: string; venName: string; targets?: unknown }>('/vens', 'ven', { venName: s.venName });
      const mine = found.items.find((x) => x.venName === s.venName);
      if (mine) s.venId = mine.id;
      else {
        const body = v === '3.1.0' ? { objectType: 'VEN_VEN_REQUEST', venName: s.venName } : { venName: s.venName };
        this.#checkOut(v === '3.1.0' ? 'venRequest' : 'ven', body, 'POST /vens');
        const made = await this.client.request('POST', '/vens', { body, schema: 'ven', ok: [200, 201] }) as { id: string };
        s.venId = made.id;
        this.#d.log.info({ vtn: this.link.url, venName: s.venName, venId: made.id }, 'OpenADR: VEN registered');
      }
      this.#resourcesDirty = true;
    }
    const now = this.#d.now();
    if (this.#resourcesDirty || now >= this.#resyncAt) await this.#resync(now);
    else if (this.#pending.size) await this.#applyPending();
  }

  #resourcePath(): string {
    return this.link.version === '3.1.0' ? '/resources' : `/vens/${encodeURIComponent(this.#state.venId!)}/resources`;
  }

  async #createResource(id: string): Promise<{ id: string; targets?: unknown }> {
    const v = this.link.version;
    const path = this.#resourcePath();
    const body = v === '3.1.0' ? { objectType: 'VEN_RESOURCE_REQUEST', resourceName: id, venID: this.#state.venId } : { resourceName: id };
    this.#checkOut(v === '3.1.0' ? 'resourceRequest' : 'resource', body, `POST ${path}`);
    const r = await this.client.request('POST', path, { body, schema: 'resource', ok: [200, 201] }) as { id: string; targets?: unknown };
    this.#d.log.info({ vtn: this.link.url, device: id, resourceId: r.id }, 'OpenADR: resource registered');
    return r;
  }

  async #deleteResource(device: string, resourceId: string): Promise<void> {
    await this.client.request('DELETE', `${this.#resourcePath()}/${encodeURIComponent(resourceId)}`, { ok: [200, 204, 404] });
    this.#d.log.info({ vtn: this.link.url, device, resourceId }, 'OpenADR: resource deleted (the meter is no longer paired here)');
  }

  /** Meters paired or revoked since the last run: their resources created or deleted one by one. */
  async #applyPending(): Promise<void> {
    const s = this.#state;
    for (const id of [...this.#pending]) {
      const row = await this.#d.store.getDevice(id);
      if (row?.state === 'paired' && !s.resources[id]) {
        const r = await this.#createResource(id);
        s.resources[id] = r.id;
        this.#resourceGranted.set(id, grantedTexts(r.targets, this.link.version));
      } else if (row?.state !== 'paired' && s.resources[id]) {
        await this.#deleteResource(id, s.resources[id]);
        delete s.resources[id];
        this.#resourceGranted.delete(id);
      }
      this.#pending.delete(id);
    }
  }

  /** The VEN object (targets the VTN granted it) and all its resources, made to match the paired meters. */
  async #resync(now: number): Promise<void> {
    const s = this.#state;
    const v = this.link.version;
    const ven = await this.client.request('GET', `/vens/${encodeURIComponent(s.venId!)}`, { schema: 'ven' }).catch((e: VtnError) => {
      if (e instanceof VtnError && e.status === 404) {
        // Deleted on the VTN: registered again on the next run.
        s.venId = undefined;
        s.resources = {};
      }
      throw e;
    }) as { targets?: unknown };
    this.#venGranted = grantedTexts(ven.targets, v);
    const listed = await this.client.list<{ id: string; resourceName: string; venID?: string; targets?: unknown }>(this.#resourcePath(), 'resource', v === '3.1.0' ? { venID: s.venId! } : {});
    const byName = new Map(listed.items.filter((r) => r.venID === undefined || r.venID === s.venId).map((r) => [r.resourceName, r]));
    const paired = new Set((await this.#pairedDevices()).map((d) => d.id));
    const resources: { [id: string]: string } = {};
    this.#resourceGranted = new Map();
    for (const id of paired) {
      const r = byName.get(id) ?? await this.#createResource(id);
      resources[id] = r.id;
      this.#resourceGranted.set(id, grantedTexts(r.targets, v));
    }
    // Resources named after a meter that is not paired here (revoked) are deleted; others are left alone.
    for (const [name, r] of byName) if (!paired.has(name) && isDeviceId(name)) await this.#deleteResource(name, r.id);
    s.resources = resources;
    this.#pending.clear();
    this.#resourcesDirty = false;
    this.#resyncAt = now + this.#d.tuning.resyncMs;
  }

  /** What gridlet sends is checked against the schema too: a mismatch is a bug here, not the VTN's. */
  #checkOut(schema: string, body: unknown, what: string): void {
    const problems = this.client.spec.validate(schema, body);
    if (problems.length) throw new Error(`${what}: gridlet made a body that is not an OpenADR ${this.link.version} ${schema}: ${problemText(problems)}`);
  }

  // ---------------------------------------------------------------- webhook

  async #subscribe(): Promise<void> {
    const w = this.#state.webhook;
    const url = this.callbackUrl;
    if (!w || !url || this.#d.now() < this.#webhookRetryAt) return;
    const v = this.link.version;
    const want = v === '3.1.0' ? ['*'] : this.#programs.map((p) => p.id);
    if (w.callbackUrl === url && want.every((p) => p in w.subscriptions) && this.#webhookState === 'subscribed') return;
    try {
      // Subscriptions of this link from an earlier run (another address, another token) are taken back.
      const mine = await this.client.list<{ id: string; programID?: string; objectOperations: { callbackUrl: string; bearerToken?: string | null }[] }>(
        '/subscriptions', 'subscription', { clientName: this.#state.venName });
      const current = new Map<string, string>();
      for (const sub of mine.items) {
        const ops = sub.objectOperations ?? [];
        if (!ops.some((o) => o.callbackUrl.includes(`/api/openadr/${this.key}/notify`))) continue;
        const program = v === '3.1.0' ? '*' : sub.programID ?? '*';
        if (ops.every((o) => o.callbackUrl === url && (o.bearerToken ?? w.token) === w.token) && !current.has(program) && want.includes(program)) {
          current.set(program, sub.id);
        } else {
          await this.client.request('DELETE', `/subscriptions/${encodeURIComponent(sub.id)}`, { ok: [200, 204, 404] });
        }
      }
      for (const program of want) {
        if (current.has(program)) continue;
        const body = {
          clientName: this.#state.venName,
          ...(program === '*' ? {} : { programID: program }),
          objectOperations: [{ objects: ['EVENT'], operations: ['CREATE', 'UPDATE', 'DELETE'], callbackUrl: url, bearerToken: w.token }],
        };
        this.#checkOut(v === '3.1.0' ? 'subscriptionRequest' : 'subscription', body, 'POST /subscriptions');
        const made = await this.client.request('POST', '/subscriptions', { body, schema: 'subscription', ok: [200, 201] }) as { id: string };
        current.set(program, made.id);
      }
      w.subscriptions = Object.fromEntries(current);
      if (w.callbackUrl !== url || this.#webhookState !== 'subscribed') this.#d.log.info({ vtn: this.link.url, callback: url }, 'OpenADR: subscribed to events (webhook)');
      w.callbackUrl = url;
      this.#webhookState = 'subscribed';
    } catch (e) {
      if (e instanceof VtnError && (e.status === 404 || e.status === 405 || e.status === 501)) {
        // The VTN has no subscriptions: polling only; asked again in an hour.
        this.#webhookState = 'unsupported';
        this.#webhookRetryAt = this.#d.now() + 3_600_000;
        this.#d.log.info({ vtn: this.link.url, status: e.status }, 'OpenADR: the VTN does not take subscriptions; polling only');
        return;
      }
      this.#webhookState = 'failing';
      this.#webhookRetryAt = this.#d.now() + 5 * this.pollMs;
      this.#failure(e);
    }
  }

  // ---------------------------------------------------------------- events

  async #poll(): Promise<void> {
    const programs = await this.client.list<{ id: string; programName: string; payloadDescriptors?: { payloadType?: string; currency?: string }[] | null }>('/programs', 'program');
    for (const bad of programs.invalid) this.#objectProblem('schema', `program ${bad.id ?? `#${bad.index}`}`, problemText(bad.problems));
    this.#programs = programs.items.map((p) => ({
      id: p.id, name: p.programName,
      currency: p.payloadDescriptors?.find((d) => d?.payloadType === 'PRICE' && typeof d.currency === 'string' && /^[A-Z]{3}$/.test(d.currency))?.currency,
    }));
    const events = await this.client.list<{ [k: string]: unknown }>('/events', 'event');
    const seen = new Set<string>();
    for (const bad of events.invalid) {
      // Kept as it was on the meters: an object that does not parse is not an event that went away.
      if (bad.id) for (const e of Object.values(this.#state.events)) if (e.id === bad.id) seen.add(e.key);
      this.#objectProblem('schema', `event ${bad.id ?? `#${bad.index}`}`, problemText(bad.problems));
    }
    const devices = await this.#pairedDevices();
    const ctx: TargetContext = {
      venName: this.#state.venName, devices: devices.map((d) => ({ id: d.id, labels: d.labels })),
      venGranted: this.#venGranted, resourceGranted: this.#resourceGranted,
    };
    const rows = new Map(devices.map((d) => [d.id, d]));
    for (const ev of events.items) {
      const key = typeof ev.id === 'string' ? ev.id : typeof ev.eventName === 'string' ? `${String(ev.programID)}/${ev.eventName}` : undefined;
      if (!key) {
        this.#objectProblem('event', `event of program ${String(ev.programID)}`, 'has neither an id nor an eventName: it cannot be followed');
        continue;
      }
      seen.add(key);
      await this.#apply(key, ev, ctx, rows);
    }
    // An answer with an object that does not parse is not trusted to be complete: nothing is taken as gone
    // while it lasts (a wrong cancellation switches demand response off on every meter at once).
    if (events.invalid.length) return;
    for (const e of Object.values(this.#state.events)) {
      if (!seen.has(e.key) && !e.gone) await this.#gone(e, rows);
    }
  }

  async #apply(key: string, ev: { [k: string]: unknown }, ctx: TargetContext, rows: Map<string, DeviceRow>): Promise<void> {
    const now = this.#d.now();
    const nowS = Math.floor(now / 1000);
    const hash = JSON.stringify(ev);
    let e = this.#state.events[key];
    if (!e || e.hash !== hash || e.gone) {
      e = {
        ...(e ?? { key, firstSeen: now, sent: {}, devices: [], unmatched: [], notes: [] }),
        key, id: typeof ev.id === 'string' ? ev.id : undefined, programID: String(ev.programID),
        name: typeof ev.eventName === 'string' ? ev.eventName : undefined, object: ev, hash, mappedAtS: nowS, changedAt: now, gone: undefined,
      };
      this.#state.events[key] = e;
    }
    const targets = readTargets(ev.targets, this.link.version);
    const { devices, unmatched } = resolveTargets(targets, this.link.version, ctx);
    e.devices = devices;
    e.unmatched = unmatched;
    const program = this.#programs.find((p) => p.id === e!.programID);
    let bodies: (DrEvent | Tariff)[] = [];
    e.error = undefined;
    try {
      const m = mapOpenAdr(ev, { nowS: e.mappedAtS, currency: program?.currency });
      bodies = m.bodies;
      e.notes = m.notes.filter((n) => !/targets are not used for routing/.test(n));
    } catch (err) {
      if (err instanceof NothingToSend) e.notes = err.notes;
      else if (err instanceof FieldError) {
        e.error = err.message;
        e.notes = [];
        this.#objectProblem('event', `event ${key}`, err.message);
        // What the meters have of an earlier version stays: a broken change is not a cancellation.
        return;
      } else throw err;
    }
    const reports = reportRequests(ev.reportDescriptors);
    e.notes.push(...reports.notes);
    if (unmatched.length) e.notes.push(`targets that name no meter of this gateway: ${unmatched.join(', ')}`);

    // dr-events, named <event id>#<interval id> by the mapper, after this VTN's prefix.
    const wanted = new Map<string, DrEvent>();
    for (const b of bodies) {
      if (b.type !== Body.drEvent) continue;
      const id = this.link.idPrefix + b.id;
      wanted.set(id, { ...b, id });
    }
    for (const [id, b] of wanted) {
      const prev = e.sent[id];
      const same = prev && prev.start === b.start && prev.duration === b.duration && prev.level === b.level && prev.limit === b.limit && prev.window === b.window;
      if (!prev && b.start + b.duration <= nowS) continue; // over before gridlet saw it: nothing to do
      let modification = prev?.modification ?? b.modification;
      if (prev && !same) modification = Math.max(b.modification, prev.modification + 1);
      const body: DrEvent = { ...b, modification };
      const had = new Set(same ? prev.devices : []);
      const to = devices.filter((d) => !had.has(d));
      const sent = await this.#send(to, body, rows);
      const next: SentDr = { start: b.start, duration: b.duration, level: b.level, modification, devices: [...(same ? prev.devices.filter((d) => devices.includes(d)) : []), ...sent].sort() };
      if (b.limit !== undefined) next.limit = b.limit;
      if (b.window !== undefined) next.window = b.window;
      // Meters no longer targeted: cancelled.
      if (prev) await this.#cancel(id, { ...prev, modification }, prev.devices.filter((d) => !devices.includes(d)), rows);
      e.sent[id] = next;
    }
    for (const [id, prev] of Object.entries(e.sent)) {
      if (wanted.has(id)) continue;
      // An interval that went away (or an event emptied of intervals).
      await this.#cancel(id, prev, prev.devices, rows);
      delete e.sent[id];
    }
    // Tariffs (PRICE): sent again when they change; a tariff cannot be taken back.
    const tariffs = bodies.filter((b): b is Tariff => b.type === Body.tariff && b.until > nowS);
    if (tariffs.length) {
      const sig = JSON.stringify(tariffs);
      const had = new Set(e.tariffs?.sig === sig ? e.tariffs.devices : []);
      const sent: string[] = [];
      for (const id of devices.filter((d) => !had.has(d))) {
        const row = rows.get(id);
        if (!row) continue;
        for (const t of tariffs) await this.#d.downlink.send(row, t);
        sent.push(id);
      }
      e.tariffs = { sig, devices: [...[...had].filter((d) => devices.includes(d)), ...sent].sort() };
    }
    // Reports asked for.
    if (reports.requests.length && !e.report) e.report = { tracks: {} };
    if (!reports.requests.length) e.report = undefined;
  }

  async #send(to: string[], body: DrEvent, rows: Map<string, DeviceRow>): Promise<string[]> {
    const sent: string[] = [];
    for (const id of to) {
      const row = rows.get(id);
      if (!row) continue;
      await this.#d.downlink.send(row, body);
      sent.push(id);
    }
    if (sent.length) this.#d.log.info({ vtn: this.link.url, event: body.id, devices: sent.length, modification: body.modification }, 'OpenADR: dr-event sent');
    return sent;
  }

  /** Cancels a dr-event (duration 0) on meters, unless it is already over. */
  async #cancel(id: string, prev: SentDr, devices: string[], rows: Map<string, DeviceRow>): Promise<void> {
    if (!devices.length || prev.start + prev.duration <= Math.floor(this.#d.now() / 1000)) return;
    const body: DrEvent = { type: Body.drEvent, id, start: prev.start, duration: 0, level: 0, modification: prev.modification };
    const sent = await this.#send(devices, body, rows);
    if (sent.length) this.#d.log.info({ vtn: this.link.url, event: id, devices: sent.length }, 'OpenADR: dr-event cancelled');
  }

  async #gone(e: EventState, rows: Map<string, DeviceRow>): Promise<void> {
    for (const [id, prev] of Object.entries(e.sent)) await this.#cancel(id, prev, prev.devices, rows);
    e.sent = {};
    e.gone = this.#d.now();
    if (e.report) e.report.closed = true;
    this.#d.log.info({ vtn: this.link.url, event: e.key }, 'OpenADR: event gone from the VTN; cancelled on the meters');
  }

  #forgetGone(): void {
    const now = this.#d.now();
    for (const [k, e] of Object.entries(this.#state.events)) if (e.gone !== undefined && now - e.gone > this.#d.tuning.keepGoneMs) delete this.#state.events[k];
  }

  #intervals(e: EventState): IntervalTime[] {
    try {
      return eventIntervals(e.object, e.mappedAtS);
    } catch {
      return [];
    }
  }

  // ---------------------------------------------------------------- reports

  async #reports(): Promise<void> {
    const now = this.#d.now();
    const nowS = Math.floor(now / 1000);
    for (const e of Object.values(this.#state.events)) {
      const r = e.report;
      if (!r || r.done || r.closed || e.error) continue;
      const intervals = this.#intervals(e);
      if (!intervals.length) continue;
      const { requests } = reportRequests(e.object.reportDescriptors);
      if (!requests.length) continue;
      const bounds = boundaries(intervals);
      const first = intervals[0].start;
      if (first > nowS) continue;
      // Meters reported on: those the event is for (and those it was for, already tracked).
      for (const id of e.devices) if (!r.tracks[id]) r.tracks[id] = await this.#startTrack(id, bounds, intervals.length);
      for (const [id, track] of Object.entries(r.tracks)) if (!complete(track)) await this.#catchUp(id, track, bounds, intervals);
      const ended = intervals.filter((iv) => (iv.start + iv.duration) * 1000 <= now);
      if (!ended.length) continue;
      const lastEnd = ended[ended.length - 1].start + ended[ended.length - 1].duration;
      const endIndex = bounds.indexOf(lastEnd);
      const waiting = Object.values(r.tracks).some((t) => t.energy[endIndex] === null);
      // A newly ended interval is reported when every meter has delivered past its end, or after the grace
      // period; what is already reported is sent again whenever it changes (late readings).
      if (waiting && r.intervals !== ended.length && now < lastEnd * 1000 + this.#d.tuning.reportGraceMs) continue;
      // Sharing policies: the VTN is the operator's audience; meters that do not share this are left out.
      const level = levelFor(intervals);
      const channels = [...(requests.some((q) => !q.peak) ? [ENERGY_CHANNEL] : []), ...(requests.some((q) => q.peak) ? [POWER_CHANNEL] : [])];
      const tracks = new Map<string, Track>();
      const withheld: string[] = [];
      for (const [id, track] of Object.entries(r.tracks)) {
        const share = (await this.#d.privacy.effectivePolicy(id)).operator;
        if (allows(share, level) && channels.every((c) => allowsChannel(share, c)) && share.purposes.includes('grid-operations')) tracks.set(id, track);
        else withheld.push(id);
      }
      r.withheld = withheld;
      if (!tracks.size) continue;
      const built = buildReport({
        version: this.link.version, eventId: e.id ?? e.key, programId: e.programID, clientName: this.#state.venName,
        reportName: `gridlet ${e.key}`, requests, intervals, nowS, tracks,
      });
      const text = JSON.stringify(built.body);
      const allDone = ended.length === intervals.length && (built.missing === 0 || now > lastEnd * 1000 + this.#d.tuning.reportLateMs);
      if (text !== r.posted) {
        const schema = this.link.version === '3.1.0' ? 'reportRequest' : 'report';
        this.#checkOut(schema, built.body, r.id ? 'PUT /reports' : 'POST /reports');
        try {
          if (r.id) await this.client.request('PUT', `/reports/${encodeURIComponent(r.id)}`, { body: built.body, schema: 'report', ok: [200, 201] });
          else r.id = (await this.client.request('POST', '/reports', { body: built.body, schema: 'report', ok: [200, 201] }) as { id: string }).id;
        } catch (err) {
          if (err instanceof VtnError && (err.kind === 'http')) {
            // Refused (the event is gone, or the VTN does not take this report): reported once, not retried.
            r.closed = true;
            this.#objectProblem('report', `report on event ${e.key}`, err.message);
            continue;
          }
          throw err;
        }
        r.posted = text;
        r.at = now;
        r.intervals = built.intervals;
        r.missing = built.missing;
        this.#d.metrics.reports.inc({ vtn: this.link.url });
        this.#d.log.info({ vtn: this.link.url, event: e.key, report: r.id, intervals: built.intervals, missing: built.missing }, 'OpenADR: report sent');
        await this.#d.privacy.recordDisclosure([...tracks.keys()].map((deviceId) => ({
          audience: `openadr:${this.link.url}`, deviceId, kind: 'openadr-report', level, purposes: ['grid-operations'], via: 'openadr',
        })));
      }
      if (allDone) r.done = true;
    }
  }

  /** A track starting at the meter's first reading at or after the first boundary (read back when the event began in the past). */
  async #startTrack(id: string, bounds: number[], intervals: number): Promise<Track> {
    const row = await this.#d.store.getDevice(id);
    const acked = row?.ackedSeq ?? 0;
    let start = acked + 1;
    let to = acked;
    let read = 0;
    search: while (to >= 1 && read < MAX_BACKFILL_RECORDS) {
      const from = Math.max(1, to - READ_BATCH + 1);
      const recs = await this.#d.store.readRecords(id, from, to - from + 1);
      read += to - from + 1;
      for (let i = recs.length - 1; i >= 0; i--) {
        const r = recs[i];
        if (r.seq > to) continue;
        if (r.kind === RecordKind.reading && r.t < bounds[0]) break search;
        start = Math.min(start, r.seq);
      }
      start = Math.min(start, from);
      to = from - 1;
    }
    return newTrack(start, bounds, intervals);
  }

  async #catchUp(id: string, track: Track, bounds: number[], intervals: IntervalTime[]): Promise<void> {
    const row = await this.#d.store.getDevice(id);
    const acked = row?.ackedSeq ?? 0;
    while (track.next <= acked && !complete(track)) {
      const recs = (await this.#d.store.readRecords(id, track.next, Math.min(READ_BATCH, acked - track.next + 1))).filter((r) => r.seq <= acked);
      if (!recs.length) {
        track.next = acked + 1;
        break;
      }
      const before = track.next;
      feed(track, bounds, intervals, recs);
      if (track.next <= before) track.next = before + recs.length;
    }
  }

  // ---------------------------------------------------------------- status

  status(): { [k: string]: unknown } {
    const now = this.#d.now();
    const nowS = Math.floor(now / 1000);
    const s = this.#state;
    const events = Object.values(s.events).sort((a, b) => b.changedAt - a.changedAt).map((e) => {
      const intervals = this.#intervals(e);
      const start = intervals.length ? intervals[0].start : undefined;
      const end = intervals.length ? Math.max(...intervals.map((i) => i.start + i.duration)) : undefined;
      const state = e.gone ? 'cancelled' : e.error ? 'invalid' : start === undefined ? 'no-intervals' : nowS < start ? 'pending' : nowS < end! ? 'active' : 'ended';
      const r = e.report;
      return {
        key: e.key, id: e.id ?? null, programID: e.programID, program: this.#programs.find((p) => p.id === e.programID)?.name ?? null, name: e.name ?? null, state,
        start: start === undefined ? null : isoTime(start * 1000), end: end === undefined ? null : isoTime(end * 1000),
        devices: e.devices, unmatchedTargets: e.unmatched,
        drEvents: Object.entries(e.sent).map(([id, x]) => ({ id, level: x.level, ...(x.limit === undefined ? {} : { limitW: x.limit }), start: isoTime(x.start * 1000), duration: x.duration, modification: x.modification, devices: x.devices.length })),
        firstSeen: isoTime(e.firstSeen), changedAt: isoTime(e.changedAt), gone: e.gone === undefined ? null : isoTime(e.gone),
        notes: e.notes, error: e.error ?? null,
        report: r ? { id: r.id ?? null, intervals: r.intervals ?? 0, missing: r.missing ?? 0, sentAt: r.at === undefined ? null : isoTime(r.at), withheld: r.withheld ?? [], done: !!r.done, closed: !!r.closed } : null,
      };
    });
    const linkState = this.#lastPoll === undefined ? 'connecting' : this.#failing.size === 0 ? 'ok' : this.#failing.has('auth') ? 'auth-error' : 'failing';
    return {
      key: this.key, vtn: this.link.url, version: this.link.version, clientId: this.link.clientId, venName: s.venName, venId: s.venId ?? null,
      link: linkState, pollS: this.pollMs / 1000,
      lastPoll: this.#lastPoll === undefined ? null : isoTime(this.#lastPoll), lastSuccess: this.#lastSuccess === undefined ? null : isoTime(this.#lastSuccess),
      tokenExpires: this.client.expiresAt === undefined ? null : isoTime(this.client.expiresAt),
      failing: [...this.#failing].map(([kind, f]) => ({ kind, since: isoTime(f.since), count: f.count, message: f.message })),
      errors: { ...this.#errors }, lastError: this.#lastError ? { ...this.#lastError, at: isoTime(this.#lastError.at) } : null,
      webhook: { state: this.#webhookState, callbackUrl: this.callbackUrl ?? null, notifications: this.#notifications },
      resources: Object.keys(s.resources).length,
      programs: this.#programs.map((p) => ({ id: p.id, name: p.name })),
      events,
    };
  }
}
