// The operator routes that change what runs on devices: guests (guest-routes.ts), demand response
// and tariffs (dr-routes.ts), configuration and the console PIN (config-routes.ts).

import { configRoutes } from './config-routes.js';
import type { DeviceOpsDeps } from './device-ops.js';
import { drRoutes } from './dr-routes.js';
import { guestRoutes } from './guest-routes.js';
import type { Route } from './server.js';

export type { DeviceOpsDeps };

export function deviceOpsRoutes(d: DeviceOpsDeps): Route[] {
  return [...guestRoutes(d), ...drRoutes(d), ...configRoutes(d)];
}
