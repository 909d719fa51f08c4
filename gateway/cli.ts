// `gridlet gateway`, `gridlet pair`, `gridlet devices` (ARCHITECTURE.md "Operator interface").
// Exit codes: 0 done, 1 failed (the reason is printed), 2 usage error.

import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import pino from 'pino';
import { isDeviceId } from '../firmware/core/wire/topics.js';
import { startGateway } from './gateway.js';

export interface Io {
  out(line: string): void;
  err(line: string): void;
}

export const processIo: Io = {
  out: (l) => process.stdout.write(l + '\n'),
  err: (l) => process.stderr.write(l + '\n'),
};

export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;

type Values = { [flag: string]: string | boolean | string[] | undefined };

export function parse(argv: string[], options: Options, positionals: boolean): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: positionals, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export async function run(command: string, help: string, io: Io, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`gridlet ${command}: ${e.message}\n\n${help}`);
      return 2;
    }
    io.err(`gridlet ${command}: ${(e as Error).message}`);
    return 1;
  }
}

// ------------------------------------------------------------------ gridlet gateway

const GATEWAY_HELP = `usage: gridlet gateway [--data DIR] [--mqtt-listen HOST:PORT | --broker URL] [--http-listen HOST:PORT]
                      [--api-token TOKEN] [--store sqlite:PATH] [--operator NAME] [--topic-prefix P]
                      [--mesh-listen MULTIADDR] [--peer MULTIADDR]...
                      [--llm-url URL [--llm-model NAME] | --llm-gguf PATH]

Runs a gateway: pairs meters, stores their records, serves the operator HTTP API. Prints
"gateway ready mqtt=<url> http=<url> id=<gatewayId>" when ready (with " mesh=<multiaddr>/p2p/<peer id>"
when --mesh-listen is given); logs go to stderr. Ctrl-C stops it.

  --data DIR              identity and state (default ./.gridlet/gateway)
  --mqtt-listen H:P       embedded MQTT broker address (default 127.0.0.1:1883; port 0 = a free port)
  --broker URL            use an external broker instead (mqtt://user:pass@host:1883); it enforces its
                          own access rules, the gateway still authenticates every frame. Repeat it for
                          several brokers; with --mqtt-listen as well, the embedded broker serves too
                          (meters fail over between them)
  --http-listen H:P       HTTP API address (default 127.0.0.1:8080)
  --api-token TOKEN       bearer token for the HTTP API; required for a non-loopback --http-listen
                          (or set GRIDLET_API_TOKEN)
  --store sqlite:PATH     SQLite database (default DIR/gridlet.sqlite)
  --operator NAME         operator name on the mesh (default local)
  --topic-prefix P        MQTT topic prefix (default gl)
  --mesh-listen MA        libp2p address for the mesh of gateways, e.g. /ip4/0.0.0.0/tcp/4001 (port 0 = a free port)
  --peer MA               a peer gateway's mesh address with /p2p/<peer id> (its ready line's mesh=); repeatable
  --llm-url URL           answer meters' \`ask\` (llm.generate jobs) with an OpenAI-compatible server:
                          llama.cpp's llama-server, Ollama (http://host:11434), vLLM; a bearer token may
                          be given in GRIDLET_LLM_API_KEY
  --llm-model NAME        the model name to ask that server for (Ollama and vLLM need it)
  --llm-gguf PATH         run a local GGUF model instead, on the optional package node-llama-cpp
                          (loaded with the first job)
  --log-level L           debug, info, warn or error (default info, or GRIDLET_LOG_LEVEL)`;

export async function gatewayMain(argv: string[], io: Io = processIo): Promise<number> {
  return run('gateway', GATEWAY_HELP, io, async () => {
    const { values: v } = parse(argv, {
      data: { type: 'string' }, 'mqtt-listen': { type: 'string' }, broker: { type: 'string', multiple: true },
      'http-listen': { type: 'string' }, 'api-token': { type: 'string' }, store: { type: 'string' },
      operator: { type: 'string' }, 'topic-prefix': { type: 'string' }, 'log-level': { type: 'string' },
      'mesh-listen': { type: 'string' }, peer: { type: 'string', multiple: true },
      'llm-url': { type: 'string' }, 'llm-model': { type: 'string' }, 'llm-gguf': { type: 'string' },
    }, false);
    if (v.help) {
      io.out(GATEWAY_HELP);
      return 0;
    }
    const level = (v['log-level'] as string | undefined) ?? process.env.GRIDLET_LOG_LEVEL ?? 'info';
    if (!['debug', 'info', 'warn', 'error', 'silent'].includes(level)) throw new UsageError(`--log-level must be debug, info, warn or error, not "${level}"`);
    const logger = pino({ level, base: undefined }, pino.destination({ dest: 2, sync: true }));
    const gw = await startGateway({
      dataDir: (v.data as string | undefined) ?? './.gridlet/gateway',
      mqttListen: v['mqtt-listen'] as string | undefined,
      broker: v.broker as string[] | undefined,
      httpListen: v['http-listen'] as string | undefined,
      apiToken: (v['api-token'] as string | undefined) ?? (process.env.GRIDLET_API_TOKEN || undefined),
      store: v.store as string | undefined,
      operator: v.operator as string | undefined,
      topicPrefix: v['topic-prefix'] as string | undefined,
      meshListen: v['mesh-listen'] as string | undefined,
      peers: v.peer as string[] | undefined,
      llmUrl: v['llm-url'] as string | undefined,
      llmModel: v['llm-model'] as string | undefined,
      llmGguf: v['llm-gguf'] as string | undefined,
      logger,
    });
    io.out(`gateway ready mqtt=${gw.mqttUrl} http=${gw.httpUrl} id=${gw.id}${gw.meshAddr ? ` mesh=${gw.meshAddr}` : ''}`);
    const signal = await new Promise<string>((resolve) => {
      const on = (s: string) => () => resolve(s);
      process.once('SIGINT', on('SIGINT'));
      process.once('SIGTERM', on('SIGTERM'));
    });
    // A second signal while closing means "now".
    const force = () => process.exit(130);
    process.once('SIGINT', force);
    process.once('SIGTERM', force);
    logger.info({ signal }, 'closing');
    await gw.close();
    process.removeListener('SIGINT', force);
    process.removeListener('SIGTERM', force);
    return 0;
  });
}

// ------------------------------------------------------------------ HTTP client

export const DEFAULT_GATEWAY = 'http://127.0.0.1:8080';

export async function api(base: string, token: string | undefined, method: string, path: string, body?: unknown, timeoutMs = 10_000):
  Promise<{ status: number; json: unknown }> {
  let url: URL;
  try {
    url = new URL(path, base.endsWith('/') ? base : base + '/');
  } catch {
    throw new UsageError(`--gateway "${base}" is not a URL such as ${DEFAULT_GATEWAY}`);
  }
  const headers: { [k: string]: string } = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).name;
    throw new Error(`cannot reach the gateway at ${base} (${cause}); is \`gridlet gateway\` running there? (--gateway URL)`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = { error: `the gateway answered ${res.status} with a body that is not JSON` };
  }
  return { status: res.status, json };
}

export function errorOf(json: unknown, status: number): string {
  const e = (json as { error?: unknown } | null)?.error;
  return typeof e === 'string' ? e : `the gateway answered ${status}`;
}

// ------------------------------------------------------------------ gridlet pair

const PAIR_HELP = `usage: gridlet pair <deviceId> <code> [--gateway URL] [--api-token TOKEN] [--json]
       gridlet pair --csv FILE [--gateway URL] [--api-token TOKEN] [--json]

Pairs a device with a gateway by its id and the pair code on its label (XXXXX-XXXXX, any case). Waits
for the device's answer (up to 15 s). A CSV file has one "deviceId,code" per line.

  --gateway URL     the gateway's HTTP API (default ${DEFAULT_GATEWAY})
  --api-token T     bearer token, if the gateway has one (or set GRIDLET_API_TOKEN)
  --json            print the paired device (or {"error"}) as JSON`;

interface PairResult { deviceId: string; status: number; device?: unknown; error?: string }

async function pairOne(base: string, token: string | undefined, deviceId: string, code: string): Promise<PairResult> {
  const r = await api(base, token, 'POST', 'api/pairings', { deviceId, code }, 30_000);
  if (r.status === 201) return { deviceId, status: 201, device: r.json };
  return { deviceId, status: r.status, error: errorOf(r.json, r.status) };
}

function readCsv(path: string): [string, string][] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const out: [string, string][] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const l = line.trim();
    if (!l || l.startsWith('#')) return;
    const [id, code, ...rest] = l.split(',').map((x) => x.trim().replace(/^"|"$/g, ''));
    if (i === 0 && !isDeviceId(id ?? '') && /^(device_?id|id)$/i.test(id ?? '')) return; // a header
    if (!id || !code || rest.some((x) => x !== '')) throw new Error(`${path}:${i + 1}: expected "deviceId,code"`);
    out.push([id, code]);
  });
  return out;
}

export async function pairMain(argv: string[], io: Io = processIo): Promise<number> {
  return run('pair', PAIR_HELP, io, async () => {
    const { values: v, positionals: p } = parse(argv, {
      gateway: { type: 'string' }, 'api-token': { type: 'string' }, json: { type: 'boolean' }, csv: { type: 'string' },
    }, true);
    if (v.help) {
      io.out(PAIR_HELP);
      return 0;
    }
    const base = (v.gateway as string | undefined) ?? DEFAULT_GATEWAY;
    const token = (v['api-token'] as string | undefined) ?? (process.env.GRIDLET_API_TOKEN || undefined);
    let pairs: [string, string][];
    if (v.csv !== undefined) {
      if (p.length) throw new UsageError('give either <deviceId> <code> or --csv FILE');
      pairs = readCsv(v.csv as string);
    } else {
      if (p.length !== 2) throw new UsageError('expected <deviceId> <code>');
      pairs = [[p[0], p[1]]];
    }
    const results: PairResult[] = [];
    for (const [id, code] of pairs) {
      const r = await pairOne(base, token, id, code);
      results.push(r);
      if (!v.json) {
        if (r.status === 201) {
          const d = r.device as { model?: string; firmware?: string; gateway?: string };
          io.out(`paired ${id} (${d.model ?? '?'} ${d.firmware ?? '?'}) with gateway ${d.gateway ?? '?'}`);
        } else io.err(`gridlet pair: ${r.error}`);
      }
    }
    if (v.json) {
      const view = results.map((r) => (r.status === 201 ? r.device : { deviceId: r.deviceId, status: r.status, error: r.error }));
      io.out(JSON.stringify(v.csv !== undefined ? view : view[0], null, 2));
    }
    return results.every((r) => r.status === 201) ? 0 : 1;
  });
}

// ------------------------------------------------------------------ gridlet devices

const DEVICES_HELP = `usage: gridlet devices [--gateway URL] [--api-token TOKEN] [--label SELECTOR] [--json]

Lists the devices a gateway knows: paired, revoked, and seen (Hello received, not paired).

  --gateway URL     the gateway's HTTP API (default ${DEFAULT_GATEWAY})
  --api-token T     bearer token, if the gateway has one (or set GRIDLET_API_TOKEN)
  --label SEL       only devices whose labels match key=value or key (comma-separated: all must match)
  --json            print the devices as a JSON array`;

interface DeviceView {
  id: string; state: string; model: string; firmware: string; lastSeen: string | null; ackedSeq: number;
  connected: boolean; labels: { [k: string]: string };
}

export async function devicesMain(argv: string[], io: Io = processIo): Promise<number> {
  return run('devices', DEVICES_HELP, io, async () => {
    const { values: v } = parse(argv, {
      gateway: { type: 'string' }, 'api-token': { type: 'string' }, json: { type: 'boolean' }, label: { type: 'string', multiple: true },
    }, false);
    if (v.help) {
      io.out(DEVICES_HELP);
      return 0;
    }
    const base = (v.gateway as string | undefined) ?? DEFAULT_GATEWAY;
    const token = (v['api-token'] as string | undefined) ?? (process.env.GRIDLET_API_TOKEN || undefined);
    const q = new URLSearchParams();
    for (const l of (v.label as string[] | undefined) ?? []) q.append('label', l);
    const r = await api(base, token, 'GET', 'api/devices' + (q.size ? `?${q}` : ''));
    if (r.status !== 200) throw new Error(errorOf(r.json, r.status));
    const devices = r.json as DeviceView[];
    if (v.json) {
      io.out(JSON.stringify(devices, null, 2));
      return 0;
    }
    const rows = [['ID', 'STATE', 'MODEL', 'FIRMWARE', 'LAST SEEN', 'ACKED', 'ONLINE', 'LABELS']];
    for (const d of devices) {
      rows.push([d.id, d.state, d.model, d.firmware, d.lastSeen ?? '-', String(d.ackedSeq), d.connected ? 'yes' : 'no',
        Object.entries(d.labels).map(([k, x]) => `${k}=${x}`).join(',') || '-']);
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
    for (const row of rows) io.out(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]))).join('  '));
    if (devices.length === 0) io.out('(no devices: start a meter and pair it with `gridlet pair <deviceId> <code>`)');
    return 0;
  });
}
