// The gateway the store-and-forward simulation's meters talk to: a real one (embedded broker, SQLite)
// on free ports, quiet. Shared by the simulation's tests and its benchmark.

import { startGateway } from '../../../gateway/gateway.js';
import type { SimGateway } from '../../../host/sim/store-forward-sim.js';

export function simGateway(dataDir: string): Promise<SimGateway> {
  return startGateway({ dataDir, mqttListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', logger: { log() {} } });
}
