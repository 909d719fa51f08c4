// `gridlet sim`: a fleet of simulated meters in one process against a gateway (host/sim/fleet.ts).

import { Fleet, reportLine, type FleetOptions, type FleetProgress } from '../sim/fleet.js';
import { readReleasePublicKey } from './firmware.js';
import { parse, processIo, run, UsageError } from './args.js';

const HELP = `usage: gridlet sim --meters N --broker URL --gateway HTTP_URL [--duration S] [--interval MS]
                   [--flap-every S] [--grace S] [--pair-concurrency N] [--connect-rate N] [--seed N]
                   [--release-key FILE|HEX]… [--trial-s S] [--api-token TOKEN] [--prefix gl] [--json]

Runs N simulated meters in this process, each with its own MQTT connection, key, flash log and
counters. It pairs them through the gateway's API (POST /api/pairings, as an operator would), lets
them report for --duration seconds with start times spread over one interval, gives them --grace
seconds to drain their logs, then reads every meter's records back from the gateway
(GET /api/devices/:id/readings) and prints one line on stdout:

  sim report meters=N sent=… acked=… lost=… dup=… p50_ms=… p99_ms=…

sent: records the meters generated; acked: records the gateway acknowledged; lost: generated records
the gateway does not have; dup: readings the gateway stored that the meter did not generate at that
seq; p50/p99: from a frame's publish to the gateway's ack arriving at the meter. Progress goes to stderr.
Exit status 0 when nothing was lost or duplicated and every meter paired, 1 otherwise.

  --meters N             meters to simulate (required)
  --broker URL           the MQTT broker the meters connect to (required), e.g. mqtt://127.0.0.1:1883
  --gateway URL          the gateway's HTTP API (required), e.g. http://127.0.0.1:8080
  --duration S           seconds of reporting once the fleet is paired (default 60)
  --interval MS          milliseconds between one meter's readings (default 10000)
  --flap-every S         drop each meter's link on average once every S seconds (default: never)
  --grace S              seconds for meters to drain their logs before counting (default 60)
  --pair-concurrency N   pairing requests in flight at once (default 64)
  --connect-rate N       new MQTT connections per second (default 400)
  --seed N               seed of the run's randomness (start times, flaps, meter values; default 1)
  --release-key K        meters take firmware over the air, trusting this release public key (NAME.pub
                         of gridlet firmware keygen, or its hex; repeatable): each has A/B slots and
                         restarts into a new image; deploy host images (gridlet firmware host-image)
                         with gridlet firmware deploy while the fleet runs, e.g. a canary rollout
  --trial-s S            how long a new image has to reach the gateway before it rolls back (default 600)
  --api-token TOKEN      bearer token of a gateway whose API is not on loopback
  --prefix P             topic prefix (default gl)
  --json                 print the full report as JSON instead of the report line

Each meter holds one connection: raise \`ulimit -n\` above N (plus the gateway's and broker's) for big fleets.`;

function positive(v: unknown, name: string, min: number, help: string, integer = true): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) throw new UsageError(`${name} must be ${integer ? 'a whole number' : 'a number'} ≥ ${min}\n\n${help}`);
  return n;
}

/** The options `gridlet sim` and `npm run scale` share: the fleet's size, timing and seed. */
export const FLEET_OPTIONS = {
  meters: { type: 'string' },
  duration: { type: 'string' },
  interval: { type: 'string' },
  'flap-every': { type: 'string' },
  grace: { type: 'string' },
  'pair-concurrency': { type: 'string' },
  'connect-rate': { type: 'string' },
  seed: { type: 'string' },
} as const;

/** Checks the FLEET_OPTIONS values (a UsageError naming the option, then `help`, if one is wrong). */
export function fleetOptions(v: { [k: string]: unknown }, help: string): Omit<FleetOptions, 'broker' | 'gateway'> {
  const meters = positive(v.meters, '--meters', 1, help);
  if (meters === undefined) throw new UsageError(`--meters N is required\n\n${help}`);
  return {
    meters,
    durationS: positive(v.duration, '--duration', 1, help, false),
    intervalMs: positive(v.interval, '--interval', 100, help),
    flapEveryS: positive(v['flap-every'], '--flap-every', 1, help, false),
    graceS: positive(v.grace, '--grace', 0, help, false),
    pairConcurrency: positive(v['pair-concurrency'], '--pair-concurrency', 1, help),
    connectRate: positive(v['connect-rate'], '--connect-rate', 1, help),
    seed: positive(v.seed, '--seed', 0, help),
  };
}

export async function simMain(argv: string[]): Promise<number> {
  return run('sim', HELP, processIo, async () => {
    const r = parse(argv, {
      broker: { type: 'string' },
      gateway: { type: 'string' },
      ...FLEET_OPTIONS,
      'api-token': { type: 'string' },
      prefix: { type: 'string' },
      json: { type: 'boolean' },
      'release-key': { type: 'string', multiple: true },
      'trial-s': { type: 'string' },
    }, false);
    if (r.values.help) {
      console.log(HELP);
      return 0;
    }
    const v = r.values;
    const broker = v.broker as string | undefined;
    if (!broker || !/^(mqtts?|wss?|tcp):\/\//.test(broker)) throw new UsageError(`--broker URL is required, e.g. mqtt://127.0.0.1:1883`);
    const gateway = v.gateway as string | undefined;
    if (!gateway || !/^https?:\/\//.test(gateway)) throw new UsageError(`--gateway HTTP_URL is required, e.g. http://127.0.0.1:8080`);
    // The meters of this process make their keys, pair, seal and open with libsodium where it loads, and
    // hash with node:crypto (the same bytes as the core's tweetnacl and sha256.ts): thousands of meters
    // in one process must not be what is measured.
    (await import('../../gateway/hash.js')).useFastCrypto();
    const fleet = new Fleet({
      ...fleetOptions(v, HELP), broker, gateway,
      apiToken: v['api-token'] as string | undefined,
      topicPrefix: v.prefix as string | undefined,
      onProgress: progressBar(process.stderr),
      ...(v['release-key'] ? { releaseKeys: (v['release-key'] as string[]).map(readReleasePublicKey) } : {}),
      ...(v['trial-s'] === undefined ? {} : { trialMs: positive(v['trial-s'], '--trial-s', 1, HELP, false)! * 1000 }),
    });
    let stopped = false;
    const interrupt = () => {
      if (stopped) process.exit(130);
      stopped = true;
      process.stderr.write('\ngridlet sim: interrupted; stopping the meters\n');
      fleet.stop();
      process.exit(130);
    };
    process.once('SIGINT', interrupt);
    try {
      const report = await fleet.run();
      if (v.json) console.log(JSON.stringify(report));
      else console.log(reportLine(report));
      return report.lost === 0 && report.dup === 0 && report.unpaired === 0 ? 0 : 1;
    } finally {
      process.removeListener('SIGINT', interrupt);
      fleet.stop();
    }
  });
}

/** A progress bar on a terminal; on a pipe, one line per phase every few seconds. */
export function progressBar(out: NodeJS.WriteStream): (p: FleetProgress) => void {
  const tty = !!out.isTTY;
  let last = 0;
  let lastPhase = '';
  return (p) => {
    const now = Date.now();
    const final = p.detail === 'final';
    if (!tty && !final && p.phase === lastPhase && now - last < 5000) return;
    if (tty && !final && p.phase === lastPhase && now - last < 100) return;
    last = now;
    lastPhase = p.phase;
    const width = 30;
    const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    const line = `${p.phase.padEnd(7)} [${bar}] ${p.done}/${p.total}${final ? '' : ` ${p.detail}`}`;
    if (tty) out.write(`\r\x1b[K${line}${final ? '\n' : ''}`);
    else out.write(`${line}\n`);
  };
}
