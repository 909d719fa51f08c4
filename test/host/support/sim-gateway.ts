// The gateway the store-and-forward simulation's meters talk to: a real one (embedded broker, SQLite)
// on free ports, quiet. Shared by the simulation's tests and its benchmark. Kept downlinks (offers among
// them) are resent to a device heard 2 s after the last send, not 30 s: these meters lose power every
// few seconds, and a rollout here waits 30 s for its devices.

import { startGateway } from '../../../gateway/gateway.js';
import type { SimGateway } from '../../../host/sim/store-forward-sim.js';

export function simGateway(dataDir: string): Promise<SimGateway> {
  return startGateway({ dataDir, mqttListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', logger: { log() {} }, tuning: { resendIntervalMs: 2000 } });
}
