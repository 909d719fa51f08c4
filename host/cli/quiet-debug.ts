// The `debug` package's loggers take their arguments as a rest parameter, so one that is switched off
// still allocates an array per call. mqtt-packet (under the embedded broker's clients and under mqtt.js)
// calls its loggers several times per packet it parses or writes: 4.8 % of everything the gateway
// allocated under the throughput bench (docs/benchmarks.md), garbage its collector then has to find.
// Unless DEBUG names something to show, `quietDebug()` makes the loggers created after it plain functions
// that do nothing and allocate nothing. With DEBUG set nothing changes: `DEBUG=mqtt-packet* gridlet
// gateway` still shows them.

import { createRequire } from 'node:module';

type Logger = ((...args: unknown[]) => void) & { enabled: boolean; namespace: string; extend(sub: string, delimiter?: string): Logger };
type CreateDebug = ((namespace: string) => Logger) & { enabled(namespace: string): boolean };

/** A logger that is off for good: no arguments kept, no work done. */
function silent(namespace: string): Logger {
  const log = (() => {}) as unknown as Logger;
  log.enabled = false;
  log.namespace = namespace;
  log.extend = (sub: string, delimiter = ':') => silent(namespace + delimiter + sub);
  return log;
}

/**
 * Replaces the `debug` module that mqtt-packet loads with one whose loggers are no-ops, unless DEBUG
 * is set. Must run before mqtt-packet is first loaded; returns whether it took effect.
 */
export function quietDebug(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.DEBUG) return false;
  const require = createRequire(import.meta.url);
  let path: string;
  try {
    // The copy of `debug` mqtt-packet resolves to (the one aedes and mqtt.js share).
    path = createRequire(require.resolve('mqtt-packet')).resolve('debug');
  } catch {
    return false;
  }
  const create = require(path) as CreateDebug;
  const mod = require.cache[path];
  if (!mod || typeof create !== 'function') return false;
  const quiet = Object.assign((namespace: string) => silent(namespace), create);
  mod.exports = quiet;
  return true;
}
