// Uplinks in order of preference (e.g. two brokers). The preferred link is always wanted; a fallback
// is brought up only after every link before it has been down for FAILOVER_GRACE_MS, and let go once
// a more preferred link has been back for RETURN_STABLE_MS. Frames go out on the most preferred link
// that is up; downlinks are accepted from any of them.

import type { Clock, LinkStateValue, Logger, Timers, Transport, TransportHandlers, TransportOptions } from '../ports.js';
import { LinkState } from '../ports.js';

/** A link down this long brings up the next one; failover completes well within 15 s. */
export const FAILOVER_GRACE_MS = 5_000;
/** The preferred link must stay up this long before fallbacks are released. */
export const RETURN_STABLE_MS = 10_000;
/** A link that is up but gets no answer for this long while frames wait is treated as down. */
export const UNHEALTHY_AFTER_MS = 20_000;
const CHECK_MS = 500;

/** Jittered exponential backoff for reconnects: 1 s doubling to 60 s, each delay in [d/2, d). */
export function reconnectDelay(attempt: number, random01: number): number {
  const d = Math.min(60_000, 1000 * 2 ** Math.min(attempt, 6));
  return Math.floor(d / 2 + (random01 * d) / 2);
}

export interface LinkStatus {
  name: string;
  state: LinkStateValue;
  lastError: string;
  active: boolean;
  /** Times the link went down since boot. */
  drops: number;
}

interface Slot {
  t: Transport;
  started: boolean;
  up: boolean;
  /** monotonic ms when it was last seen down (or started); 0 = never up. */
  downSince: number;
  upSince: number;
  drops: number;
  unhealthyUntil: number;
  error: string;
}

export class Links {
  #slots: Slot[];
  #handlers: TransportHandlers | undefined;
  #options: TransportOptions | undefined;
  #active = -1;
  /** The link that last carried frames, across periods with none up (for the failover event). */
  #lastActive = -1;
  #timer = -1;
  onFailover?: (from: string, to: string) => void;

  constructor(links: Transport[], readonly timers: Timers, readonly clock: Clock, readonly logger?: Logger) {
    if (!links.length) throw new Error('at least one uplink is needed');
    this.#slots = links.map((t) => ({ t, started: false, up: false, downSince: 0, upSince: 0, drops: 0, unhealthyUntil: 0, error: '' }));
  }

  get active(): Transport | undefined {
    return this.#active >= 0 ? this.#slots[this.#active].t : undefined;
  }

  get preferred(): Transport {
    return this.#slots[0].t;
  }

  start(options: TransportOptions, handlers: TransportHandlers): void {
    this.#options = options;
    this.#handlers = handlers;
    this.#startSlot(0);
    this.#timer = this.timers.repeat(() => this.#check(), CHECK_MS);
  }

  /** New credentials (after pairing or unpairing): every started link reconnects with them. */
  restart(options: TransportOptions): void {
    this.#options = options;
    this.#setActive(-1, false);
    for (const s of this.#slots) {
      if (!s.started) continue;
      s.up = false;
      s.t.restart(options);
    }
  }

  publish(topic: string, payload: Uint8Array): boolean {
    if (this.#active < 0) return false;
    return this.#slots[this.#active].t.publish(topic, payload);
  }

  /** The agent saw no answer on the active link for too long: try another one if there is one. */
  reportUnhealthy(reason: string): void {
    if (this.#active < 0 || this.#slots.length < 2) return;
    const s = this.#slots[this.#active];
    s.error = reason;
    s.unhealthyUntil = this.clock.monotonic() + 60_000;
    this.logger?.log('warn', `link ${s.t.name} unhealthy: ${reason}`);
    this.#check();
  }

  status(): LinkStatus[] {
    return this.#slots.map((s, i) => ({
      name: s.t.name, state: s.t.state, lastError: s.error || s.t.lastError, active: i === this.#active, drops: s.drops,
    }));
  }

  stop(): void {
    if (this.#timer >= 0) this.timers.clear(this.#timer);
    this.#timer = -1;
    for (const s of this.#slots) if (s.started) s.t.stop();
    for (const s of this.#slots) {
      s.started = false;
      s.up = false;
    }
    this.#active = -1;
  }

  #startSlot(i: number): void {
    const s = this.#slots[i];
    if (s.started || !this.#options) return;
    s.started = true;
    s.downSince = this.clock.monotonic();
    s.t.start(this.#options, {
      onConnect: () => {
        s.up = true;
        s.upSince = this.clock.monotonic();
        s.error = '';
        this.#check();
      },
      onDisconnect: (reason) => {
        if (s.up) s.drops++;
        s.up = false;
        s.error = reason;
        s.downSince = this.clock.monotonic();
        this.#check();
      },
      onMessage: (topic, payload) => this.#handlers?.onMessage(topic, payload),
    });
  }

  #usable(s: Slot, now: number, healthy: boolean): boolean {
    return s.started && s.up && s.t.state === LinkState.up && (!healthy || now >= s.unhealthyUntil);
  }

  #check(): void {
    const now = this.clock.monotonic();
    // Bring up the next link when every link before it has been down for the grace period.
    let want = 0;
    while (want < this.#slots.length - 1) {
      const s = this.#slots[want];
      if (this.#usable(s, now, true) || !s.started || now - s.downSince < FAILOVER_GRACE_MS) break;
      want++;
    }
    for (let i = 0; i <= want; i++) this.#startSlot(i);
    // Choose the most preferred healthy link; failing that, any link that is up (an unanswered link
    // is still better than none when the silence is the gateway's, not the link's).
    let best = -1;
    for (let pass = 0; pass < 2 && best < 0; pass++) {
      for (let i = 0; i < this.#slots.length; i++) {
        if (this.#usable(this.#slots[i], now, pass === 0)) {
          best = i;
          break;
        }
      }
    }
    if (best !== this.#active) this.#setActive(best, true);
    // Release fallbacks once a more preferred link has been stable for a while.
    if (best >= 0 && now - this.#slots[best].upSince >= RETURN_STABLE_MS) {
      for (let i = best + 1; i < this.#slots.length; i++) {
        const s = this.#slots[i];
        if (!s.started) continue;
        s.t.stop();
        s.started = false;
        s.up = false;
      }
    }
  }

  #setActive(i: number, notify: boolean): void {
    const prev = this.#active;
    this.#active = i;
    if (!notify) return;
    if (i >= 0) {
      const to = this.#slots[i].t.name;
      const last = this.#lastActive;
      this.#lastActive = i;
      if (last >= 0 && last !== i) {
        this.logger?.log('info', `uplink ${this.#slots[last].t.name} → ${to}`);
        this.onFailover?.(this.#slots[last].t.name, to);
      }
      this.#handlers?.onConnect();
    } else if (prev >= 0) {
      this.#handlers?.onDisconnect(this.#slots[prev].error || 'all uplinks down');
    }
  }
}
