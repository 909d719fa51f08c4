// Prometheus metrics of one gateway, in its own Registry (several gateways may share a process), served
// at GET /metrics; docs/operator.md "Monitoring" lists them with alert rules (docs/alerts.yml).

import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { FrameDrop } from '../firmware/core/wire/frame.js';
import { BUSY_PARTS, busyMs } from './busy.js';
import { RECORD_KIND_NAMES } from '../firmware/core/wire/constants.js';

/** Why a frame on an up topic was dropped: the core's reasons (WIRE.md "Frames") plus the registry's. */
export const FrameDropReason = {
  ...FrameDrop,
  unknownDevice: 'unknown-device',
  revoked: 'revoked',
  /** A frame that opened but whose body did not decode or cannot be acted on. */
  body: 'body',
} as const;
export type FrameDropReasonValue = (typeof FrameDropReason)[keyof typeof FrameDropReason];


export interface MetricSources {
  devicesByState(): Promise<{ [state: string]: number }>;
  connectedDevices(): number;
  pendingDownlinks(): Promise<number>;
  /** What paired devices last reported holding unacknowledged (their status `buffered`). */
  backlog?(): Promise<Backlog>;
  /** The SQLite store's WAL checkpoints on their own thread (sqlite.ts), when it has them. */
  checkpoints?(): { count: number; ms: number; heldMs: number; failed: number; forced: number } | undefined;
  /** The SQLite store's group commits and the jobs they held (sqlite.ts), when it has them. */
  groupCommits?(): { count: number; jobs: number } | undefined;
  /** Process metrics (CPU, memory, event loop lag, GC); default true. */
  processMetrics?: boolean;
}

export interface Backlog {
  /** Sum over paired devices of their last reported `buffered`. */
  records: number;
  /** The largest one. */
  max: number;
  /** Paired devices reporting a backlog above zero. */
  devices: number;
}

/** The backlog of a fleet from its device rows (paired ones with a status). */
export function backlogOf(rows: { state: string; status: { buffered: number } | null }[]): Backlog {
  const b: Backlog = { records: 0, max: 0, devices: 0 };
  for (const r of rows) {
    if (r.state !== 'paired' || !r.status) continue;
    const n = r.status.buffered;
    b.records += n;
    if (n > b.max) b.max = n;
    if (n > 0) b.devices++;
  }
  return b;
}

/**
 * Counts by one label kept as plain numbers on the hot path (a frame's body, its records' kinds, its
 * ack) and added to their prom-client counter when it is read (`collect`): prom-client's own `inc`
 * hashes the labels and checks them on every call, a dozen times per frame.
 */
export class Tally {
  readonly #pending = new Map<string, number>();

  constructor(readonly label: string) {}

  add(value: string, n = 1): void {
    this.#pending.set(value, (this.#pending.get(value) ?? 0) + n);
  }

  /** The counter's `collect`: what was added since the last read goes into it. */
  flushInto(counter: Counter<string>): void {
    for (const [value, n] of this.#pending) counter.inc({ [this.label]: value }, n);
    this.#pending.clear();
  }
}

/** A counter by `tally`'s label whose increments go through the tally. */
function talliedCounter(tally: Tally, o: { name: string; help: string; registers: Registry[] }): Counter<string> {
  return new Counter({ ...o, labelNames: [tally.label], collect() { tally.flushInto(this); } });
}

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #accepted = new Tally('body');
  readonly #records = new Tally('kind');
  readonly #downlinks = new Tally('body');
  readonly framesReceived = new Counter({
    name: 'gridlet_frames_received_total', help: 'Frames received on device up topics.', registers: [this.registry],
  });
  readonly framesAccepted = talliedCounter(this.#accepted, {
    name: 'gridlet_frames_accepted_total', help: 'Frames accepted, by body type name.', registers: [this.registry],
  });
  readonly framesDropped = new Counter({
    name: 'gridlet_frames_dropped_total', help: 'Frames dropped without acting on them, by reason.',
    labelNames: ['reason'], registers: [this.registry],
  });
  readonly messagesDropped = new Counter({
    name: 'gridlet_messages_dropped_total',
    help: 'MQTT messages dropped outside frame acceptance, by topic kind (hello, lwt, unknown, broker) and reason.',
    labelNames: ['topic', 'reason'], registers: [this.registry],
  });
  readonly hellos = new Counter({
    name: 'gridlet_hellos_received_total', help: 'Well-formed Hellos accepted into the Hello table.', registers: [this.registry],
  });
  readonly recordsStored = talliedCounter(this.#records, {
    name: 'gridlet_records_stored_total', help: 'Records newly stored (resends not counted), by kind.', registers: [this.registry],
  });
  readonly pairings = new Counter({
    name: 'gridlet_pairings_total',
    help: 'Pairing requests by result (paired, refused, timeout, no-hello, conflict, invalid).',
    labelNames: ['result'], registers: [this.registry],
  });
  readonly downlinksSent = talliedCounter(this.#downlinks, {
    name: 'gridlet_downlinks_sent_total', help: 'Downlink frames published, by body type name (resends included).', registers: [this.registry],
  });
  readonly ackLatency = new Histogram({
    name: 'gridlet_ack_latency_seconds', help: 'Time from receiving a records frame to publishing its ack.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [this.registry],
  });
  readonly brokerRefusals = new Counter({
    name: 'gridlet_broker_refusals_total',
    help: 'Embedded broker refusals: connect (bad id, bad credentials, foreign will), publish, subscribe.',
    labelNames: ['action', 'reason'], registers: [this.registry],
  });

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    new Counter({
      name: 'gridlet_busy_seconds_total', labelNames: ['part'], registers,
      help: 'Main-thread time spent in parts of the frame pipeline (frame acceptance, group commit, ack, mesh signing and keeping), process-wide; part="loop": the event loop\'s whole busy time.',
      collect() {
        const ms = busyMs();
        this.reset();
        for (const part of BUSY_PARTS) this.inc({ part }, ms[part] / 1000);
        // All of the event loop's busy time, the parts' whole.
        this.inc({ part: 'loop' }, performance.eventLoopUtilization().active / 1000);
      },
    });
    new Counter({
      name: 'gridlet_store_checkpoints_total', labelNames: ['result'], registers,
      help: 'WAL checkpoints of the SQLite store, run on a thread of their own; result="behind": done, but the WAL outgrew twice its threshold meanwhile and commits waited for it; result="failed": the thread failed and SQLite\'s own checkpoints took over.',
      collect() {
        const c = sources.checkpoints?.();
        this.reset();
        if (c) {
          this.inc({ result: 'done' }, c.count - c.forced);
          this.inc({ result: 'behind' }, c.forced);
          this.inc({ result: 'failed' }, c.failed);
        }
      },
    });
    new Counter({
      name: 'gridlet_store_group_commits_total', registers,
      help: 'Transactions of the SQLite store\'s group commit, each made durable by one fsync.',
      collect() {
        const c = sources.groupCommits?.();
        this.reset();
        if (c) this.inc(c.count);
      },
    });
    new Counter({
      name: 'gridlet_store_group_commit_jobs_total', registers,
      help: 'Writes the SQLite store\'s group commits held: frames, pairings, downlinks, the mesh\'s chain appends and messages (over gridlet_store_group_commits_total: the mean group).',
      collect() {
        const c = sources.groupCommits?.();
        this.reset();
        if (c) this.inc(c.jobs);
      },
    });
    new Counter({
      name: 'gridlet_store_checkpoint_held_seconds_total', registers,
      help: 'Time group commits were held back for the second pass of WAL checkpoints.',
      collect() {
        const c = sources.checkpoints?.();
        this.reset();
        if (c) this.inc(c.heldMs / 1000);
      },
    });
    new Gauge({
      name: 'gridlet_devices', help: 'Devices by registry state (seen = Hello received, not paired).',
      labelNames: ['state'], registers,
      async collect() {
        const by = await sources.devicesByState();
        for (const state of Object.keys(by)) this.set({ state }, by[state]);
      },
    });
    new Gauge({
      name: 'gridlet_devices_connected', help: 'Devices connected to the broker (embedded) or heard since their last will (external).',
      registers,
      collect() {
        this.set(sources.connectedDevices());
      },
    });
    new Gauge({
      name: 'gridlet_downlinks_pending', help: 'State-changing downlinks kept until the device acknowledges them.',
      registers,
      async collect() {
        this.set(await sources.pendingDownlinks());
      },
    });
    if (sources.backlog) {
      // One read of the registry per scrape serves the three gauges.
      let pending: Promise<Backlog> | undefined;
      const backlog = () => (pending ??= sources.backlog!().finally(() => setTimeout(() => (pending = undefined), 0)));
      new Gauge({
        name: 'gridlet_device_backlog_records',
        help: 'Records paired devices hold that the gateway has not acknowledged, summed, as of each device\'s last status.',
        registers,
        async collect() {
          this.set((await backlog()).records);
        },
      });
      new Gauge({
        name: 'gridlet_device_backlog_records_max', help: 'The largest backlog one paired device reported in its last status.',
        registers,
        async collect() {
          this.set((await backlog()).max);
        },
      });
      new Gauge({
        name: 'gridlet_devices_backlogged', help: 'Paired devices whose last status reported a backlog above zero.',
        registers,
        async collect() {
          this.set((await backlog()).devices);
        },
      });
    }
    if (sources.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The same counts as plain numbers, for stats() and the demo's live view. */
  readonly counts = {
    framesReceived: 0,
    framesAccepted: 0,
    framesDropped: {} as { [reason: string]: number },
    messagesDropped: {} as { [topicAndReason: string]: number },
    hellos: 0,
    records: {} as { [kind: string]: number },
    pairings: {} as { [result: string]: number },
    downlinksSent: 0,
    brokerRefusals: 0,
  };

  frameReceived(): void {
    this.framesReceived.inc();
    this.counts.framesReceived++;
  }

  frameAccepted(bodyType: number): void {
    this.#accepted.add(BodyName[bodyType] ?? String(bodyType));
    this.counts.framesAccepted++;
  }

  dropFrame(reason: FrameDropReasonValue): void {
    this.framesDropped.inc({ reason });
    bump(this.counts.framesDropped, reason);
  }

  dropMessage(topic: string, reason: string): void {
    this.messagesDropped.inc({ topic, reason });
    bump(this.counts.messagesDropped, `${topic}/${reason}`);
  }

  hello(): void {
    this.hellos.inc();
    this.counts.hellos++;
  }

  recordsAdded(kind: number, n = 1): void {
    const name = RECORD_KIND_NAMES[kind] ?? String(kind);
    this.#records.add(name, n);
    bump(this.counts.records, name, n);
  }

  pairing(result: string): void {
    this.pairings.inc({ result });
    bump(this.counts.pairings, result);
  }

  downlinkSent(bodyType: number): void {
    this.#downlinks.add(BodyName[bodyType] ?? String(bodyType));
    this.counts.downlinksSent++;
  }

  brokerRefusal(action: string, reason: string): void {
    this.brokerRefusals.inc({ action, reason });
    this.counts.brokerRefusals++;
  }
}

function bump(o: { [k: string]: number }, k: string, n = 1): void {
  o[k] = (o[k] ?? 0) + n;
}

export const BodyName: { [type: number]: string } = {
  1: 'readings', 2: 'event', 3: 'status', 4: 'job', 5: 'paired', 6: 'guest-ack', 7: 'gap', 8: 'down-ack',
  16: 'ack', 17: 'config', 18: 'guest-offer', 19: 'guest-chunk', 20: 'guest-remove', 21: 'dr-event', 22: 'job-result',
  23: 'time', 24: 'unpair', 25: 'tariff', 9: 'fw-status', 26: 'fw-offer', 27: 'fw-chunk', 28: 'fw-cancel',
};

/**
 * Logs dropped frames without letting a flood flood the log: the first drop of each reason in a
 * window is logged at once, the rest are counted and summed up in one line when the next window
 * opens with another drop of that reason.
 */
export function dropLogger(log: Logger, now: () => number, windowMs = 10_000): (e: { deviceId: string; reason: string }) => void {
  const windows = new Map<string, { start: number; suppressed: number; devices: Set<string> }>();
  return ({ deviceId, reason }) => {
    const t = now();
    const w = windows.get(reason);
    if (w && t - w.start < windowMs) {
      w.suppressed++;
      if (w.devices.size < 10) w.devices.add(deviceId);
      return;
    }
    if (w && w.suppressed > 0) {
      log.warn({ reason, dropped: w.suppressed, devices: [...w.devices], seconds: Math.round((t - w.start) / 1000) }, 'more frames dropped');
    }
    windows.set(reason, { start: t, suppressed: 0, devices: new Set() });
    log.warn({ device: deviceId, reason }, 'frame dropped');
  };
}
