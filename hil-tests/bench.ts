// The bench the HIL suite runs on: a real meter on HIL_PORT, or — without it — a host agent behind a
// pseudo-terminal and a gateway, both started through the `gridlet` CLI exactly as a person would.
//
// Real meter (all optional but HIL_PORT):
//   HIL_PORT=/dev/ttyUSB0          the meter's console
//   HIL_PIN=12345678               its technician PIN (factory PIN while unpaired)
//   HIL_GATEWAY=http://host:8080   the gateway it talks to (pairs it when it is unpaired)
//   HIL_API_TOKEN=…                bearer token for that gateway, if it has one
//   HIL_GATEWAY_STOP='cmd' / HIL_GATEWAY_START='cmd'   shell commands that take the gateway away and back

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const GRIDLET = join(root, 'bin', 'gridlet.js');
const READY_MS = 60_000;

export interface Bench {
  /** What the suite runs against, for messages. */
  kind: 'meter' | 'host';
  port: string;
  pin?: string;
  /** The gateway's HTTP API, if the bench has one. */
  gatewayUrl?: string;
  apiToken?: string;
  /** What `agent ready` printed (host bench only), to cross-check the console. */
  announced?: { id: string; code: string };
  /** Takes the gateway away and brings it back; undefined when the bench cannot. */
  stopGateway?: () => Promise<void>;
  startGateway?: () => Promise<void>;
  close(): Promise<void>;
}

/** Runs `node bin/gridlet.js …` and resolves with the first stdout line matching `ready`. */
function launch(args: string[], ready: RegExp, logName: string): Promise<{ child: ChildProcess; match: RegExpMatchArray; stderr: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GRIDLET, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GRIDLET_LOG_LEVEL: 'warn' } });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${logName} did not get ready within ${READY_MS / 1000} s\nstdout: ${out}\nstderr: ${err.slice(-2000)}`));
    }, READY_MS);
    child.stdout!.on('data', (b) => {
      out += b;
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m, stderr: () => err });
      }
    });
    child.stderr!.on('data', (b) => {
      err += b;
      if (err.length > 100_000) err = err.slice(-50_000);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${logName} exited (${code}) before it was ready\nstdout: ${out}\nstderr: ${err.slice(-2000)}`));
    });
  });
}

function stop(child: ChildProcess, ms = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function hostBench(): Promise<Bench> {
  const dir = mkdtempSync(join(tmpdir(), 'gridlet-hil-'));
  const children = new Set<ChildProcess>();
  const killAll = () => {
    for (const c of children) c.kill('SIGKILL');
  };
  process.once('exit', killAll);
  const gatewayArgs = (mqtt: string, http: string) =>
    ['gateway', '--mqtt-listen', mqtt, '--http-listen', http, '--data', join(dir, 'gateway')];
  let gw = await launch(gatewayArgs('127.0.0.1:0', '127.0.0.1:0'), /gateway ready mqtt=(\S+) http=(\S+) id=(\S+)/, 'gridlet gateway');
  children.add(gw.child);
  const mqttUrl = gw.match[1];
  const httpUrl = gw.match[2];
  const agent = await launch(
    ['agent', '--console-pty', '--data', join(dir, 'agent'), '--broker', mqttUrl, '--interval', '250', '--guest', 'peak-guard'],
    /agent ready id=(\S+) code=(\S+) console=(\S+)/, 'gridlet agent --console-pty',
  );
  children.add(agent.child);
  // The factory PIN goes to stderr right after the ready line.
  let pin: string | undefined;
  for (let i = 0; i < 50 && !pin; i++) {
    pin = /console factory PIN (\d+)/.exec(agent.stderr())?.[1];
    if (!pin) await new Promise((r) => setTimeout(r, 100));
  }
  return {
    kind: 'host',
    port: agent.match[3],
    pin,
    gatewayUrl: httpUrl,
    announced: { id: agent.match[1], code: agent.match[2] },
    async stopGateway() {
      await stop(gw.child);
      children.delete(gw.child);
    },
    async startGateway() {
      // Same data directory, same addresses: the agent's --broker URL still points at it.
      const hostPort = (url: string) => new URL(url).host;
      gw = await launch(gatewayArgs(hostPort(mqttUrl), hostPort(httpUrl)), /gateway ready/, 'gridlet gateway (restarted)');
      children.add(gw.child);
    },
    async close() {
      await Promise.all([...children].map((c) => stop(c)));
      process.removeListener('exit', killAll);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function meterBench(port: string): Bench {
  const env = process.env;
  const shell = (cmd: string) => async () => {
    const r = spawnSync('sh', ['-c', cmd], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`"${cmd}" exited ${r.status}`);
  };
  return {
    kind: 'meter',
    port,
    pin: env.HIL_PIN || undefined,
    gatewayUrl: env.HIL_GATEWAY || undefined,
    apiToken: env.HIL_API_TOKEN || undefined,
    stopGateway: env.HIL_GATEWAY_STOP ? shell(env.HIL_GATEWAY_STOP) : undefined,
    startGateway: env.HIL_GATEWAY_START ? shell(env.HIL_GATEWAY_START) : undefined,
    async close() {},
  };
}

export async function openBench(): Promise<Bench> {
  const port = process.env.HIL_PORT;
  return port ? meterBench(port) : hostBench();
}

/** POST /api/pairings {deviceId, code}: 201 paired (retries while the gateway has seen no Hello yet). */
export async function pairThroughGateway(bench: Bench, deviceId: string, code: string): Promise<number> {
  const headers: { [k: string]: string } = { 'content-type': 'application/json' };
  if (bench.apiToken) headers.authorization = `Bearer ${bench.apiToken}`;
  let status = 0;
  for (let attempt = 0; attempt < 20; attempt++) {
    const res = await fetch(new URL('/api/pairings', bench.gatewayUrl), { method: 'POST', headers, body: JSON.stringify({ deviceId, code }) });
    status = res.status;
    await res.text();
    if (status !== 404) return status;
    await new Promise((r) => setTimeout(r, 500));
  }
  return status;
}
