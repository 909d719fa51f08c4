// `npm run scale -- --meters 10000 --duration 300 --broker embedded|mosquitto`: the scale acceptance
// run. It starts a gateway as a child process (`node bin/gridlet.js gateway …`) — with its embedded
// broker, or on a Mosquitto of its own started from a temporary config on a free port — runs the fleet
// simulator (`gridlet sim`'s Fleet) in this process, and prints the sim report line, then one JSON line
// with the gateway's resource use. Other options are passed to the fleet: --interval MS, --flap-every S,
// --grace S, --pair-concurrency N, --connect-rate N, --seed N.
//
// Every meter is one connection: this process, the gateway (embedded broker) or Mosquitto each need a
// file descriptor per meter; `ulimit -n` must exceed the fleet (20000 on the reference machine).

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Fleet, reportLine, type FleetOptions, type FleetReport } from '../host/sim/fleet.js';
import { useFastCrypto } from '../gateway/hash.js';

// The simulated meters of this process make their keys, seal, open and pair with libsodium where it
// loads, and hash with node:crypto (the same bytes as the core's): thousands of meters in one process must
// not be what limits the gateway.
useFastCrypto();

const root = join(fileURLToPath(import.meta.url), '..', '..');

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface Child {
  proc: ChildProcess;
  url: string;
  dir: string;
  stop(): Promise<void>;
}

/** Stops a child process with `signal` (SIGKILL if it has not exited 10 s later); at once if it already has. */
export async function stopProc(p: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill(signal);
  const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

/** A Mosquitto of our own on a free loopback port (the system one on 1883 is shared). */
export async function startMosquitto(): Promise<Child> {
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-mosquitto-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence false',
    'max_queued_messages 1000000',
    'max_inflight_messages 0',
    'max_connections -1',
    'set_tcp_nodelay true',
    'log_type error',
    'log_type warning',
    '',
  ].join('\n'));
  const proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (b) => (err += b));
  const url = `mqtt://127.0.0.1:${port}`;
  // Ready when it accepts a TCP connection.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`mosquitto exited: ${err}`);
    const ok = await new Promise<boolean>((r) => {
      const c = connect(port, '127.0.0.1', () => {
        c.destroy();
        r(true);
      });
      c.on('error', () => r(false));
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    proc, url, dir,
    async stop() {
      await stopProc(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** CPU seconds (user + system) process `pid` has used, from /proc; 0 once it has exited or without /proc. */
export function procCpuSeconds(pid: number | undefined, thread?: number): number {
  try {
    const f = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ
  } catch {
    return 0;
  }
}

export interface GatewayChild extends Child {
  mqttUrl: string;
  httpUrl: string;
  /** The gateway's id, and its mesh listen address when it was given one (from its ready line). */
  id: string;
  mesh?: string;
  /** The last of what it printed, stdout and stderr (for a failing test's message). */
  output(): string;
  /** Resident set size of the gateway process, bytes. */
  rss(): number;
  /** CPU seconds the gateway process has used (user + system). */
  cpuSeconds(): number;
  /** CPU seconds its main thread (the event loop) has used. */
  mainThreadCpuSeconds(): number;
}

/** `node bin/gridlet.js gateway …` on ephemeral ports in a temporary data directory. */
export async function startGatewayChild(o: { broker?: string; extra?: string[] } = {}): Promise<GatewayChild> {
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-scale-gw-'));
  const args = [join(root, 'bin', 'gridlet.js'), 'gateway', '--data', dir, '--http-listen', '127.0.0.1:0',
    // Every simulated meter comes from 127.0.0.1: the per-address bound on meters waiting to pair is lifted.
    ...(o.broker ? ['--broker', o.broker] : ['--mqtt-listen', '127.0.0.1:0', '--unpaired-limit', '100000,100000']), '--log-level', 'warn', ...(o.extra ?? [])];
  // GRIDLET_CPU_PROF=DIR: the gateway writes a V8 CPU profile there when it stops (node --cpu-prof).
  const prof = process.env.GRIDLET_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.GRIDLET_CPU_PROF] : [];
  // GRIDLET_GATEWAY_ARGS="--heap-headroom 0 …": more gateway options, to compare settings side by side.
  args.push(...(process.env.GRIDLET_GATEWAY_ARGS ?? '').split(' ').filter(Boolean));
  // GRIDLET_GATEWAY_NODE_ARGS="--max-semi-space-size=4 …": options of node itself for the gateway child.
  const nodeArgs = (process.env.GRIDLET_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...nodeArgs, ...prof, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  // The gateway's log is kept beside the run (removed with it, unless the gateway died).
  const logFile = join(tmpdir(), `gridlet-scale-gw-${process.pid}-${Date.now()}.log`);
  const log = createWriteStream(logFile);
  // The last of what it printed, stdout and stderr.
  let all = '';
  const keep = (b: Buffer) => {
    all += b;
    if (all.length > 200_000) all = all.slice(-100_000);
  };
  proc.stderr!.on('data', (b: Buffer) => {
    log.write(b);
    keep(b);
  });
  proc.once('exit', (code, signal) => {
    if (!stopping) process.stderr.write(`\nscale: the gateway exited (${code ?? signal}); its log: ${logFile}\n`);
  });
  let stopping = false;
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`gateway not ready within 60 s: ${all.slice(-2000)}`)), 60_000);
    proc.stdout!.on('data', (b: Buffer) => {
      keep(b);
      out += b;
      const m = /gateway ready [^\n]*/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[0]);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`gateway exited (${code}): ${all.slice(-2000)}`));
    });
  });
  const mqttUrl = /mqtt=(\S+)/.exec(line)![1];
  const httpUrl = /http=(\S+)/.exec(line)![1];
  const id = /id=(\S+)/.exec(line)![1];
  const mesh = /mesh=(\S+)/.exec(line)?.[1];
  const pid = proc.pid!;
  return {
    proc, dir, url: httpUrl, mqttUrl, httpUrl, id, mesh,
    output: () => all,
    rss() {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        return m ? Number(m[1]) * 1024 : 0;
      } catch {
        return 0; // the gateway has exited
      }
    },
    cpuSeconds() {
      return procCpuSeconds(pid);
    },
    mainThreadCpuSeconds() {
      return procCpuSeconds(pid, pid);
    },
    async stop() {
      stopping = true;
      const died = proc.exitCode !== null || proc.signalCode !== null;
      await stopProc(proc);
      log.end();
      rmSync(dir, { recursive: true, force: true });
      if (!died) rmSync(logFile, { force: true });
    },
  };
}

export interface ScaleResult {
  report: FleetReport;
  broker: 'embedded' | 'mosquitto';
  /**
   * Resident memory: the peak over the whole run (pairing's burst of allocations included), the idle
   * gateway's before the fleet, and the median over the second half of the reporting phase (every meter
   * connected and reporting, after pairing's garbage is collected); per meter: minus idle, over paired.
   */
  gateway: {
    rssBytes: number; rssIdleBytes: number; rssPerMeterBytes: number; rssSteadyBytes: number; rssSteadyPerMeterBytes: number;
    cpuSeconds: number;
  };
  /** Signed readings messages (one per frame that added records) and how long after the fleet the mesh was done signing. */
  mesh: { readingsMessages: number; settledAfterS: number; signedOn: { thread: number; loop: number } };
}

/** The gateway's count of readings messages it signed, and where it signed them (its /metrics). */
async function readingsMessages(httpUrl: string): Promise<{ n: number; thread: number; loop: number }> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  return {
    n: value(/^gridlet_mesh_messages_created_total\{protocol="readings"\} (\d+)/m),
    thread: value(/^gridlet_mesh_signatures_total\{where="thread"\} (\d+)/m),
    loop: value(/^gridlet_mesh_signatures_total\{where="loop"\} (\d+)/m) + value(/^gridlet_mesh_signatures_total\{where="fallback"\} (\d+)/m),
  };
}

/** Waits until the readings message count stops moving (3 s unchanged, at most 5 minutes). */
async function meshSettled(httpUrl: string): Promise<ScaleResult['mesh']> {
  const t0 = Date.now();
  let last = -1;
  let since = Date.now();
  for (;;) {
    const { n, thread, loop } = await readingsMessages(httpUrl);
    if (n !== last) {
      last = n;
      since = Date.now();
    } else if (Date.now() - since >= 3000 || Date.now() - t0 > 300_000) {
      return { readingsMessages: n, settledAfterS: Math.round((since - t0) / 100) / 10, signedOn: { thread, loop } };
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** One scale run: broker (+ Mosquitto), gateway child, fleet; everything stopped afterwards. */
export async function scaleRun(broker: 'embedded' | 'mosquitto', fleet: Omit<FleetOptions, 'broker' | 'gateway'>): Promise<ScaleResult> {
  const mosq = broker === 'mosquitto' ? await startMosquitto() : undefined;
  let gw: GatewayChild | undefined;
  let f: Fleet | undefined;
  try {
    gw = await startGatewayChild({ broker: mosq?.url });
    const idle = gw.rss();
    const cpu0 = gw.cpuSeconds();
    f = new Fleet({ ...fleet, broker: mosq?.url ?? gw.mqttUrl, gateway: gw.httpUrl });
    let peak = idle;
    const g = gw;
    const t0 = performance.now();
    const samples: [number, number][] = [];
    const sampler = setInterval(() => {
      const r = g.rss();
      peak = Math.max(peak, r);
      samples.push([(performance.now() - t0) / 1000, r]);
    }, 1000);
    const report = await f.run();
    clearInterval(sampler);
    const rss = Math.max(peak, gw.rss());
    // The second half of the reporting phase, from the phases' durations.
    const runStart = report.seconds.connect + report.seconds.pair;
    const steadySamples = samples.filter(([t]) => t >= runStart + report.seconds.run / 2 && t <= runStart + report.seconds.run).map(([, r]) => r).sort((a, b) => a - b);
    const steady = steadySamples.length ? steadySamples[Math.floor(steadySamples.length / 2)] : rss;
    const mesh = await meshSettled(gw.httpUrl);
    return {
      report, broker, mesh,
      gateway: {
        rssBytes: rss, rssIdleBytes: idle, rssPerMeterBytes: Math.round((rss - idle) / Math.max(1, report.paired)),
        rssSteadyBytes: steady, rssSteadyPerMeterBytes: Math.round((steady - idle) / Math.max(1, report.paired)),
        cpuSeconds: Math.round((gw.cpuSeconds() - cpu0) * 10) / 10,
      },
    };
  } finally {
    f?.stop();
    await gw?.stop();
    await mosq?.stop();
  }
}

async function main(): Promise<number> {
  const { FLEET_OPTIONS, fleetOptions, progressBar } = await import('../host/cli/sim.js');
  const { values: v } = parseArgs({
    args: process.argv.slice(2),
    options: { ...FLEET_OPTIONS, meters: { type: 'string', default: '1000' }, duration: { type: 'string', default: '60' }, broker: { type: 'string', default: 'embedded' }, json: { type: 'boolean' } },
  });
  const broker = v.broker as string;
  if (broker !== 'embedded' && broker !== 'mosquitto') throw new Error('--broker must be embedded or mosquitto');
  const r = await scaleRun(broker, { ...fleetOptions(v, 'usage: npm run scale -- --meters N --duration S --broker embedded|mosquitto [gridlet sim\'s fleet options]'), onProgress: progressBar(process.stderr) });
  console.log(reportLine(r.report));
  console.log(JSON.stringify({ broker: r.broker, ...r.report, gateway: r.gateway, mesh: r.mesh }));
  return r.report.lost === 0 && r.report.dup === 0 && r.report.unpaired === 0 ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then((code) => process.exit(code), (e: Error) => {
    console.error(`scale: ${e.stack ?? e.message}`);
    process.exit(1);
  });
}
