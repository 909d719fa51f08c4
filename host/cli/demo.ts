// `gridlet demo` (what `npm start` runs): a gateway with its embedded broker and SQLite store,
// plus N simulated meters on this machine, paired through the gateway's HTTP API exactly as an
// operator would, with a live view until Ctrl-C (or --duration S, then a summary).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway, type Gateway } from '../../gateway/gateway.js';
import { AgentState } from '../../firmware/core/agent/agent.js';
import { createHostAgent, type HostAgent } from '../agent-host.js';
import { streamLogger } from '../ports/node-platform.js';
import { parse, processIo, run, UsageError } from './args.js';

const HELP = `usage: gridlet demo [--meters N] [--unpaired N] [--duration S] [--interval MS] [--data DIR] [--http-listen HOST:PORT]

Starts a gateway (embedded MQTT broker, SQLite) and N simulated meters driven by a real household's
load, pairs them through the gateway's HTTP API, and shows a live view until Ctrl-C. The dashboard
(its URL is printed) shows them live; one more meter is left unpaired, with its pair code printed,
so that you can pair it from the dashboard.

  --meters N        simulated meters paired automatically (default 3)
  --unpaired N      further simulated meters left for you to pair (default 1; 0 for none)
  --duration S      stop after S seconds and print a summary
  --interval MS     milliseconds between a meter's readings (default 2000)
  --data DIR        keep the gateway's and meters' state here (default: a fresh temporary directory)
  --http-listen A   the gateway's HTTP address (default 127.0.0.1:8080, or a free port if taken)`;

interface MeterView {
  host: HostAgent;
  stored: number;
  pairedAt?: number;
}

export async function demoMain(argv: string[]): Promise<number> {
  return run('demo', HELP, processIo, async () => {
    const r = parse(argv, {
      meters: { type: 'string' },
      unpaired: { type: 'string' },
      duration: { type: 'string' },
      interval: { type: 'string' },
      data: { type: 'string' },
      'http-listen': { type: 'string' },
    }, false);
    if (r.values.help) {
      console.log(HELP);
      return 0;
    }
    const n = r.values.meters === undefined ? 3 : Number(r.values.meters);
    if (!Number.isInteger(n) || n < 1 || n > 1000) throw new UsageError('--meters must be a whole number from 1 to 1000');
    const unpaired = r.values.unpaired === undefined ? 1 : Number(r.values.unpaired);
    if (!Number.isInteger(unpaired) || unpaired < 0 || unpaired > 100) throw new UsageError('--unpaired must be a whole number from 0 to 100');
    const duration = r.values.duration === undefined ? undefined : Number(r.values.duration);
    if (duration !== undefined && !(duration > 0)) throw new UsageError('--duration must be a positive number of seconds');
    const interval = r.values.interval === undefined ? 2000 : Number(r.values.interval);
    if (!(interval >= 100)) throw new UsageError('--interval must be at least 100 ms');
    const dataDir = (r.values.data as string | undefined) ?? mkdtempSync(join(tmpdir(), 'gridlet-demo-'));
    const temporary = r.values.data === undefined;
    return runDemo({ meters: n, unpaired, duration, interval, dataDir, temporary, httpListen: r.values['http-listen'] as string | undefined });
  });
}

async function startDemoGateway(dataDir: string, httpListen: string | undefined): Promise<Gateway> {
  const quiet = streamLogger('gateway', 'warn');
  const opts = { dataDir: join(dataDir, 'gateway'), mqttListen: '127.0.0.1:0', logger: quiet };
  if (httpListen) return startGateway({ ...opts, httpListen });
  try {
    return await startGateway({ ...opts, httpListen: '127.0.0.1:8080' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' && !/EADDRINUSE/.test(String(e))) throw e;
    return startGateway({ ...opts, httpListen: '127.0.0.1:0' });
  }
}

async function pairWhenSeen(gw: Gateway, deviceId: string, code: string, deadline: number): Promise<void> {
  for (;;) {
    const res = await fetch(`${gw.httpUrl}/api/pairings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ deviceId, code }),
    });
    if (res.status === 201 || res.status === 409) return;
    const why = await res.text();
    if (res.status !== 404 && res.status !== 504) throw new Error(`pairing ${deviceId} failed: ${res.status} ${why}`);
    if (Date.now() > deadline) throw new Error(`pairing ${deviceId} timed out: ${why}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function runDemo(o: { meters: number; unpaired: number; duration?: number; interval: number; dataDir: string; temporary: boolean; httpListen?: string }): Promise<number> {
  const started = Date.now();
  const gw = await startDemoGateway(o.dataDir, o.httpListen);
  const views = new Map<string, MeterView>();
  let storedTotal = 0;
  gw.events.on('records', (e: { deviceId: string; records: unknown[] }) => {
    const v = views.get(e.deviceId);
    const readings = e.records.filter((r) => Array.isArray(r) && typeof r[2] === 'number').length;
    storedTotal += readings;
    if (v) v.stored += readings;
  });
  const agentLogger = streamLogger('agent', 'warn');
  const toPair: MeterView[] = [];
  for (let i = 0; i < o.meters + o.unpaired; i++) {
    const host = createHostAgent({
      dataDir: join(o.dataDir, `meter-${i + 1}`), brokers: [gw.mqttUrl], meter: 'sim', intervalMs: o.interval,
      model: 'gridlet-sim', logger: agentLogger, guests: ['peak-guard', 'tamper-watch'],
    });
    const view: MeterView = { host, stored: 0 };
    host.agent.start();
    views.set(host.agent.deviceId, view);
    if (i < o.meters) toPair.push(view);
  }
  console.log(`gridlet demo: gateway ${gw.id}`);
  console.log(`  dashboard  ${gw.httpUrl}/`);
  console.log(`  mqtt       ${gw.mqttUrl}`);
  console.log(`  data       ${o.dataDir}${o.temporary ? ' (temporary)' : ''}`);
  const deadline = Date.now() + 20_000;
  await Promise.all(toPair.map((v) =>
    pairWhenSeen(gw, v.host.agent.deviceId, v.host.agent.identity.pairCode, deadline).then(() => { v.pairedAt = Date.now(); })));
  console.log(`  paired ${toPair.length} meter(s) through POST /api/pairings in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  for (const v of views.values()) {
    if (toPair.includes(v)) continue;
    console.log(`  pair it from the dashboard: id ${v.host.agent.deviceId} code ${v.host.agent.identity.pairCode}`);
  }
  const open = `open the dashboard: ${gw.httpUrl}/`;
  console.log(`\n  ┌${'─'.repeat(open.length + 2)}┐\n  │ ${open} │\n  └${'─'.repeat(open.length + 2)}┘\n`);

  const tty = process.stdout.isTTY;
  let lines = 0;
  const draw = () => {
    const rows = [...views.entries()].map(([id, v]) => {
      const a = v.host.agent;
      const link = a.online ? 'up' : 'down';
      const st = a.state === AgentState.paired ? 'paired' : 'unpaired';
      const buffered = v.host.log.stats().buffered;
      return `  ${id}  ${st.padEnd(8)}  ${link.padEnd(10)}  ${String(v.stored).padStart(8)}  ${String(a.ackedSeq).padStart(9)}  ${String(buffered).padStart(8)}`;
    });
    const header = `  ${'meter'.padEnd(16)}  ${'state'.padEnd(8)}  ${'link'.padEnd(10)}  ${'stored'.padStart(8)}  ${'acked seq'.padStart(9)}  ${'buffered'.padStart(8)}   ${((Date.now() - started) / 1000).toFixed(0)} s, ${storedTotal} readings stored${o.duration === undefined ? '; Ctrl-C to stop' : ''}`;
    const out = [header, ...rows];
    if (tty) {
      if (lines) process.stdout.write(`\x1b[${lines}A`);
      process.stdout.write(out.map((l) => `\x1b[2K${l}`).join('\n') + '\n');
      lines = out.length;
    } else console.log(out.join('\n'));
  };
  const view = setInterval(draw, tty ? 1000 : 5000);
  draw();

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    if (o.duration !== undefined) setTimeout(resolve, o.duration * 1000).unref();
  });
  clearInterval(view);
  draw();
  for (const v of views.values()) v.host.stop();
  await gw.close();
  const acked = [...views.values()].reduce((s, v) => s + v.host.agent.ackedSeq, 0);
  console.log(`\ndemo summary meters=${views.size} readings_stored=${storedTotal} acked_records=${acked} duration_s=${((Date.now() - started) / 1000).toFixed(1)}`);
  if (o.temporary) rmSync(o.dataDir, { recursive: true, force: true });
  return 0;
}
