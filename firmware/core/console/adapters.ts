// The console's view of the guest supervisor (guests/supervisor.ts) and of the relay interlocks
// (control/relays.ts): what the platform passes to AgentBridge as `guests` and `relays`.

import { DEFAULT_MAX_TOGGLES_PER_HOUR, RelayResult as InterlockResult, type Interlocks } from '../control/relays.js';
import type { GuestSupervisor } from '../guests/supervisor.js';
import { GuestOutcome, RelayLockMode, RelayOutcome, type GuestInfo, type RelayInfo, type RelayResult } from './console-host.js';
import type { ConsoleGuests, ConsoleRelays } from './agent-bridge.js';

export function consoleGuests(supervisor: GuestSupervisor): ConsoleGuests {
  return {
    list(): GuestInfo[] {
      return supervisor.status().map((g) => ({
        name: g.name, cid: g.cidText, state: g.state, faults: g.faults, fuelUsed: g.fuelLast, fuelPerCall: g.fuelPerCall,
      }));
    },
    stop(name) {
      return { outcome: supervisor.stop(name) ? GuestOutcome.done : GuestOutcome.notFound };
    },
    start(name) {
      if (!supervisor.has(name)) return { outcome: GuestOutcome.notFound };
      const r = supervisor.start(name);
      return r.ok ? { outcome: GuestOutcome.done } : { outcome: GuestOutcome.refused, reason: r.reason };
    },
  };
}

/** The holder name the console uses while it switches a relay no guest holds (not a valid guest name). */
const TECHNICIAN = '#console';

export function consoleRelays(interlocks: Interlocks): ConsoleRelays {
  const status = (id: number) => interlocks.status().find((s) => s.id === id);
  return {
    list(): RelayInfo[] {
      return interlocks.status().map((s) => ({ id: s.id, on: s.on, lock: s.locked ? (s.on ? 'on' : 'off') : '' }));
    },
    set(id, on): RelayResult {
      const st = status(id);
      if (!st) return { outcome: RelayOutcome.noRelay };
      if (st.locked) return { outcome: RelayOutcome.techLock };
      if (st.critical) return { outcome: RelayOutcome.critical };
      if (st.holder !== undefined) return { outcome: RelayOutcome.heldByGuest, holder: st.holder };
      if (!interlocks.claim(id, TECHNICIAN)) return { outcome: RelayOutcome.noRelay };
      const r = interlocks.request(id, on, TECHNICIAN);
      interlocks.release(TECHNICIAN);
      if (r === InterlockResult.done) return { outcome: RelayOutcome.done };
      if (r === InterlockResult.noCapability) return { outcome: RelayOutcome.noRelay };
      // Interlocks.request does not say which rule refused; lock and critical are ruled out above.
      return { outcome: st.togglesLastHour >= DEFAULT_MAX_TOGGLES_PER_HOUR ? RelayOutcome.toggles : RelayOutcome.dwell };
    },
    lock(id, mode): RelayResult {
      const ok = mode === RelayLockMode.release ? interlocks.unlock(id) : interlocks.lock(id, mode === RelayLockMode.on);
      return { outcome: ok ? RelayOutcome.done : RelayOutcome.noRelay };
    },
  };
}
