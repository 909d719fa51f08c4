// `gridlet gateway`, `gridlet pair`, `gridlet devices` (ARCHITECTURE.md "Operator interface").
// Exit codes: 0 done, 1 failed (the reason is printed), 2 usage error.

import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import pino from 'pino';
import { channelName, channelUnit, isoTime } from '../../firmware/core/console/text.js';
import { normalizePairCode } from '../../firmware/core/wire/pairing.js';
import { isDeviceId } from '../../firmware/core/wire/topics.js';
import { pool, Progress, type ProgressSink } from './progress.js';
import { startGateway } from '../../gateway/gateway.js';
import { OPENADR_CLI_OPTIONS, OPENADR_HELP, openAdrGroups, OpenAdrUsageError } from './openadr-options.js';

export interface Io {
  out(line: string): void;
  err(line: string): void;
  /** Where bulk commands draw their progress (stderr); none: no progress is shown. */
  progress?: ProgressSink;
}

export const processIo: Io = {
  out: (l) => process.stdout.write(l + '\n'),
  err: (l) => process.stderr.write(l + '\n'),
  progress: process.stderr,
};

export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;

export type Values = { [flag: string]: string | boolean | string[] | undefined };

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
                      [--api-token-file FILE] [--store sqlite:PATH | --store postgres://…] [--topic-prefix P]
                      [--operator-key FILE | --operator-cert FILE | --operator NAME] [--trust-operator ID_OR_FILE]...
                      [--mesh-listen MULTIADDR] [--peer MULTIADDR]...
                      [--llm-url URL [--llm-model NAME] | --llm-gguf PATH]
                      [--openadr-vtn URL --openadr-client-id ID [--openadr-version V] [--openadr-ven-name N]
                       [--openadr-poll-s N] [--openadr-client-secret-file PATH] [--openadr-callback-url URL]]...

       gridlet gateway identity [--data DIR] [--store postgres://…] [--out FILE] [--json]
       gridlet gateway rotate-key [--data DIR] [--store postgres://…] [--json]

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
  --api-token-file FILE   bearer token for the HTTP API, read from FILE's first line (keep it mode 600);
                          required (or GRIDLET_API_TOKEN) for a non-loopback --http-listen.
                          --api-token TOKEN gives it on the command line instead, where every user of
                          the machine can read it in the process list (a warning says so)
  --store sqlite:PATH     SQLite database (default DIR/gridlet.sqlite)
  --store postgres://user:pass@host:5432/db
                          PostgreSQL instead, shared by gateway replicas on one --broker (MQTT 5 shared
                          subscription): registry, Hellos, pairings, records, counters and the gateway
                          identity (stored there by the first replica; later replicas load it)
  --replica NAME          this process's name among replicas of one gateway on an external broker (its
                          MQTT client ids; default: a random name kept in DIR); replicas share the
                          load through the MQTT 5 shared subscription $share/gridlet/…
  --operator-key FILE     the operator key that enrols this gateway on the mesh (gridlet operator init);
                          gateways enrolled by one key are one operator and share everything
  --operator-cert FILE    an enrollment certificate the operator signed offline (gridlet operator enroll),
                          so that the gateway never holds the operator key
  --operator NAME         without either: this gateway is an operator of its own, called NAME (default
                          local); gateways with the same name are NOT one operator (trust is by key)
  --trust-operator X      another operator whose gateways may connect and receive what each meter's
                          sharing policy grants them: its id (op…), its public file (FILE.pub), or
                          NAME=ID_OR_FILE to name it in sharing policies; repeatable. Every other
                          peer is refused
  --topic-prefix P        MQTT topic prefix (default gl)
  --mesh-listen MA        libp2p address for the mesh of gateways, e.g. /ip4/0.0.0.0/tcp/4001 (port 0 = a free port)
  --peer MA               a peer gateway's mesh address with /p2p/<peer id> (its ready line's mesh=); repeatable
  identity                prints (and with --out writes) this gateway's enrollment request: its gateway id,
                          keys and peer id, for gridlet operator enroll (makes the identity if there is none)
  rotate-key              gives this gateway a new mesh key (and peer id), keeping its gateway id and its
                          meters; with --operator-cert, have it enrolled again before restarting
  --llm-url URL           answer meters' \`ask\` (llm.generate jobs) with an OpenAI-compatible server:
                          llama.cpp's llama-server, Ollama (http://host:11434), vLLM; a bearer token may
                          be given in GRIDLET_LLM_API_KEY
  --llm-model NAME        the model name to ask that server for (Ollama and vLLM need it)
  --llm-gguf PATH         run a local GGUF model instead, on the optional package node-llama-cpp
                          (loaded with the first job)
${OPENADR_HELP}
  --unpaired-limit T,A    clients without a session (meters to be paired, which may only Hello) the
                          embedded broker keeps connected: T in all, A from one address (default
                          5000,500; raise A for many new meters behind one NAT)
  --retention-interval S  how often readings past their sharing policy's retention are removed
                          (default 3600 seconds)
  --log-level L           debug, info, warn or error (default info, or GRIDLET_LOG_LEVEL)
  --log-format F          json (one JSON object per line, for log collectors) or pretty (for people);
                          default pretty when stderr is a terminal, else json (or GRIDLET_LOG_FORMAT)`;

export async function gatewayMain(argv: string[], io: Io = processIo): Promise<number> {
  if (argv[0] === 'identity' || argv[0] === 'rotate-key') return gatewayKeysMain(argv[0], argv.slice(1), io);
  return run('gateway', GATEWAY_HELP, io, async () => {
    const { values: v } = parse(argv, {
      data: { type: 'string' }, 'mqtt-listen': { type: 'string' }, broker: { type: 'string', multiple: true },
      'http-listen': { type: 'string' }, 'api-token': { type: 'string' }, 'api-token-file': { type: 'string' }, store: { type: 'string' },
      operator: { type: 'string' }, 'operator-key': { type: 'string' }, 'operator-cert': { type: 'string' },
      'trust-operator': { type: 'string', multiple: true }, 'topic-prefix': { type: 'string' }, 'log-level': { type: 'string' }, 'log-format': { type: 'string' },
      'mesh-listen': { type: 'string' }, peer: { type: 'string', multiple: true },
      'llm-url': { type: 'string' }, 'llm-model': { type: 'string' }, 'llm-gguf': { type: 'string' },
      'retention-interval': { type: 'string' }, replica: { type: 'string' }, 'unpaired-limit': { type: 'string' }, ...OPENADR_CLI_OPTIONS,
    }, false);
    if (v.help) {
      io.out(GATEWAY_HELP);
      return 0;
    }
    const level = (v['log-level'] as string | undefined) ?? process.env.GRIDLET_LOG_LEVEL ?? 'info';
    if (!['debug', 'info', 'warn', 'error', 'silent'].includes(level)) throw new UsageError(`--log-level must be debug, info, warn or error, not "${level}"`);
    const format = (v['log-format'] as string | undefined) ?? (process.env.GRIDLET_LOG_FORMAT || (process.stderr.isTTY ? 'pretty' : 'json'));
    if (format !== 'json' && format !== 'pretty') throw new UsageError(`--log-format must be json or pretty, not "${format}"`);
    const limit = v['unpaired-limit'] as string | undefined;
    const limits = limit === undefined ? undefined : /^(\d{1,7}),(\d{1,7})$/.exec(limit);
    if (limit !== undefined && (!limits || Number(limits[1]) < 1 || Number(limits[2]) < 1)) {
      throw new UsageError(`--unpaired-limit must be TOTAL,PER_ADDRESS (two whole numbers, e.g. 5000,500), not "${limit}"`);
    }
    const retention = v['retention-interval'] as string | undefined;
    if (retention !== undefined && (!/^\d{1,7}$/.test(retention) || Number(retention) < 1)) {
      throw new UsageError(`--retention-interval must be a whole number of seconds (at least 1), not "${retention}"`);
    }
    let openadr;
    try {
      openadr = openAdrGroups(argv, process.env.GRIDLET_OPENADR_CLIENT_SECRET || undefined);
    } catch (e) {
      throw e instanceof OpenAdrUsageError ? new UsageError(e.message) : e;
    }
    const logger = gatewayLogger(level, format, process.stderr);
    const gw = await startGateway({
      dataDir: (v.data as string | undefined) ?? './.gridlet/gateway',
      mqttListen: v['mqtt-listen'] as string | undefined,
      broker: v.broker as string[] | undefined,
      httpListen: v['http-listen'] as string | undefined,
      apiToken: apiToken(v, io.err),
      store: v.store as string | undefined,
      operator: v.operator as string | undefined,
      operatorKey: v['operator-key'] as string | undefined,
      operatorCert: v['operator-cert'] as string | undefined,
      trustOperators: v['trust-operator'] as string[] | undefined,
      replica: v.replica as string | undefined,
      topicPrefix: v['topic-prefix'] as string | undefined,
      meshListen: v['mesh-listen'] as string | undefined,
      peers: v.peer as string[] | undefined,
      llmUrl: v['llm-url'] as string | undefined,
      llmModel: v['llm-model'] as string | undefined,
      llmGguf: v['llm-gguf'] as string | undefined,
      tuning: {
        ...(retention === undefined ? {} : { retentionIntervalMs: Number(retention) * 1000 }),
        ...(limits ? { unpairedConnections: Number(limits[1]), unpairedPerSource: Number(limits[2]) } : {}),
      },
      openadr,
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
    logger.info('gateway stopped');
    process.removeListener('SIGINT', force);
    process.removeListener('SIGTERM', force);
    return 0;
  });
}

/** `gridlet gateway identity` and `gridlet gateway rotate-key`: the gateway's keys, without running it. */
async function gatewayKeysMain(sub: 'identity' | 'rotate-key', argv: string[], io: Io): Promise<number> {
  return run(`gateway ${sub}`, GATEWAY_HELP, io, async () => {
    const { values: v } = parse(argv, { data: { type: 'string' }, store: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' } }, false);
    if (v.help) {
      io.out(GATEWAY_HELP);
      return 0;
    }
    const { enrollmentRequest } = await import('../../gateway/mesh/operator.js');
    const { loadOrCreateIdentity, rotateMeshKey } = await import('../../gateway/identity.js');
    const { privateDir } = await import('../../gateway/files.js');
    const { peerIdOf } = await import('../../gateway/mesh/protocols.js');
    const dataDir = (v.data as string | undefined) ?? './.gridlet/gateway';
    const spec = v.store as string | undefined;
    let identity;
    if (spec !== undefined && /^postgres(ql)?:\/\//.test(spec)) {
      const { PostgresStore } = await import('../../gateway/store/postgres.js');
      const store = await PostgresStore.open(spec);
      try {
        identity = sub === 'identity' ? await store.identity(() => undefined) : await store.rotateMeshKey();
      } finally {
        await store.close();
      }
    } else {
      privateDir(dataDir);
      identity = sub === 'identity' ? loadOrCreateIdentity(dataDir) : rotateMeshKey(dataDir);
    }
    if (sub === 'rotate-key') {
      const j = { gateway: identity.id, peer: peerIdOf(identity.sign.publicKey) };
      if (v.json) io.out(JSON.stringify(j));
      else {
        io.out(`gateway ${j.gateway} has a new mesh key: peer ${j.peer}`);
        io.out('peers that list it with --peer need its new address (…/p2p/' + j.peer + '); with --operator-cert, have it enrolled again first');
      }
      return 0;
    }
    const req = enrollmentRequest(identity);
    if (v.out) {
      writeFileSync(v.out as string, JSON.stringify(req, null, 2) + '\n', { mode: 0o644 });
    }
    if (v.json) io.out(JSON.stringify(req));
    else io.out(`gateway ${req.gateway} peer ${req.peer}${v.out ? ` (enrollment request: ${v.out}; the operator signs it with gridlet operator enroll)` : ''}`);
    return 0;
  });
}

/**
 * The gateway's log: JSON lines (time as ISO 8601, level as a word) or, for people, one line
 * "HH:MM:SS.mmm LEVEL message key=value …" per entry.
 */
export function gatewayLogger(level: string, format: 'json' | 'pretty', out: { write(s: string): unknown }): pino.Logger {
  const o: pino.LoggerOptions = {
    level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  if (format === 'json') return pino(o, out === process.stderr ? pino.destination({ dest: 2, sync: true }) : (out as pino.DestinationStream));
  return pino(o, { write: (line: string) => void out.write(prettyLine(line)) });
}

const LEVEL_COLUMN: { [l: string]: string } = { trace: 'TRACE', debug: 'DEBUG', info: 'INFO ', warn: 'WARN ', error: 'ERROR', fatal: 'FATAL' };

/** One pino JSON line as "HH:MM:SS.mmm LEVEL message key=value …" (a stack on its own lines). */
export function prettyLine(json: string): string {
  let e: { [k: string]: unknown };
  try {
    e = JSON.parse(json);
  } catch {
    return json.endsWith('\n') ? json : json + '\n';
  }
  const { time, level, msg, stack, ...fields } = e;
  const t = typeof time === 'string' ? time.slice(11, 23) : new Date(Number(time ?? Date.now())).toISOString().slice(11, 23);
  const extra = Object.entries(fields).map(([k, x]) => `${k}=${typeof x === 'string' && !/\s/.test(x) ? x : JSON.stringify(x)}`);
  return `${t} ${LEVEL_COLUMN[String(level)] ?? String(level)} ${[msg ?? '', ...extra].join(' ').trim()}\n${typeof stack === 'string' ? stack + '\n' : ''}`;
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
  // The gateway takes state-changing requests only as JSON (ARCHITECTURE.md "Exposure"), DELETE included.
  if (body !== undefined || method !== 'GET') headers['content-type'] = 'application/json';
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


/** The options every client command takes. */
export const CLIENT_OPTIONS: Options = {
  gateway: { type: 'string' }, 'api-token': { type: 'string' }, 'api-token-file': { type: 'string' }, json: { type: 'boolean' },
};

export const CLIENT_HELP = `  --gateway URL     the gateway's HTTP API (default ${DEFAULT_GATEWAY}, or set GRIDLET_GATEWAY)
  --api-token-file F  the gateway's bearer token, read from file F (or set GRIDLET_API_TOKEN);
                    --api-token T gives it on the command line, where every user of the machine sees it`;

/**
 * The API token from `--api-token-file FILE` (its first line), `--api-token TOKEN`, or GRIDLET_API_TOKEN.
 * A token on the command line is readable by every user in the process list (/proc/PID/cmdline):
 * `warn` is told so.
 */
export function apiToken(v: Values, warn?: (line: string) => void): string | undefined {
  const file = v['api-token-file'] as string | undefined;
  const inline = v['api-token'] as string | undefined;
  if (file !== undefined && inline !== undefined) throw new UsageError('give either --api-token-file FILE or --api-token TOKEN, not both');
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new UsageError(`--api-token-file ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const token = text.split(/\r?\n/)[0].trim();
    if (!token) throw new UsageError(`--api-token-file ${file} is empty: put the token on its first line`);
    if (warn && (statSync(file).mode & 0o077) !== 0) warn(`warning: --api-token-file ${file} is readable by other users; chmod 600 it`);
    return token;
  }
  if (inline !== undefined) {
    warn?.('warning: --api-token puts the token in the process list, where every user of this machine can read it; ' +
      'use --api-token-file FILE (mode 600) or GRIDLET_API_TOKEN instead');
    return inline;
  }
  return process.env.GRIDLET_API_TOKEN || undefined;
}

/** The gateway and token a client command talks to: flags first, then GRIDLET_GATEWAY / GRIDLET_API_TOKEN. */
export function client(v: Values): { base: string; token: string | undefined } {
  return {
    base: (v.gateway as string | undefined) ?? (process.env.GRIDLET_GATEWAY || DEFAULT_GATEWAY),
    token: apiToken(v),
  };
}

/** Prints rows as a table with padded columns (the last one unpadded). */
export function table(io: Io, rows: string[][]): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows) io.out(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]))).join('  '));
}

// ------------------------------------------------------------------ gridlet pair

const PAIR_HELP = `usage: gridlet pair <deviceId> <code> [--gateway URL] [--api-token-file FILE] [--json]
       gridlet pair --csv FILE [--concurrency N] [--skip-bad] [--gateway URL] [--api-token-file FILE] [--json]

Pairs a device with a gateway by its id and the pair code on its label (XXXXX-XXXXX, any case). Waits
for the device's answer (up to 15 s).

With --csv, pairs every device of a file with one "deviceId,code" per line (an optional header line,
blank lines and # comments are fine), several at a time, with a progress bar on stderr. A malformed
line is reported with its line number and nothing is paired, unless --skip-bad is given. Ends with a
summary such as "paired 98, refused 1 (403), unknown 1 (404), timeout 0"; exits 1 if any device was
not paired.

  --csv FILE        the devices to pair
  --concurrency N   pairings at once (1 to 64, default 8)
  --skip-bad        pair the well-formed lines and report the malformed ones
${CLIENT_HELP}
  --json            print the paired device (or {"error"}) as JSON; with --csv, one result per line
                    of the file: {"line", "deviceId", "status", "result", "error"?, "device"?}`;

/** What became of one pairing request: HTTP status and a word for it. */
export interface PairResult {
  line?: number;
  deviceId: string;
  status: number;
  result: 'paired' | 'refused' | 'unknown' | 'timeout' | 'conflict' | 'invalid' | 'malformed' | 'error';
  error?: string;
  device?: unknown;
}

const RESULT_OF: { [status: number]: PairResult['result'] } = { 201: 'paired', 403: 'refused', 404: 'unknown', 504: 'timeout', 409: 'conflict', 400: 'invalid' };

async function pairOne(base: string, token: string | undefined, deviceId: string, code: string): Promise<PairResult> {
  let r: { status: number; json: unknown };
  try {
    r = await api(base, token, 'POST', 'api/pairings', { deviceId, code }, 30_000);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    return { deviceId, status: 0, result: 'error', error: (e as Error).message };
  }
  if (r.status === 201) return { deviceId, status: 201, result: 'paired', device: r.json };
  return { deviceId, status: r.status, result: RESULT_OF[r.status] ?? 'error', error: errorOf(r.json, r.status) };
}

export interface CsvRow { line: number; deviceId: string; code: string }

/**
 * Reads "deviceId,code" lines: an optional header, blank lines and # comments are skipped; fields may
 * be quoted. Each malformed line is returned with its number and what is wrong with it.
 */
export function parsePairCsv(text: string): { rows: CsvRow[]; bad: { line: number; why: string }[] } {
  const rows: CsvRow[] = [];
  const bad: { line: number; why: string }[] = [];
  const lineOf = new Map<string, number>();
  let first = true;
  text.replace(/^\uFEFF/, '').split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const l = raw.trim();
    if (!l || l.startsWith('#')) return;
    const fields = l.split(/[,;\t]/).map((x) => x.trim().replace(/^"(.*)"$/, '$1').trim());
    while (fields.length > 2 && fields[fields.length - 1] === '') fields.pop();
    const wasFirst = first;
    first = false;
    if (wasFirst && /^(device[ _-]?id|id|device)$/i.test(fields[0]) && /^(pair[ _-]?)?code$/i.test(fields[1] ?? '')) return;
    if (fields.length !== 2 || !fields[0] || !fields[1]) {
      bad.push({ line, why: `expected "deviceId,code", found ${fields.length} field(s)` });
      return;
    }
    const [deviceId, code] = fields;
    if (!isDeviceId(deviceId)) bad.push({ line, why: `"${deviceId.slice(0, 40)}" is not a device id (16 characters a-z and 2-7)` });
    else if (!normalizePairCode(code)) bad.push({ line, why: `"${code.slice(0, 40)}" is not a pair code (XXXXX-XXXXX: A-Z and 2-7)` });
    else if (lineOf.has(deviceId)) bad.push({ line, why: `device ${deviceId} is already on line ${lineOf.get(deviceId)}` });
    else {
      lineOf.set(deviceId, line);
      rows.push({ line, deviceId, code });
    }
  });
  return { rows, bad };
}

/** "paired 98, refused 1 (403), unknown 1 (404), timeout 0", plus any other outcome there was. */
export function pairSummary(results: PairResult[], skipped = 0): string {
  const n = (r: PairResult['result']) => results.filter((x) => x.result === r).length;
  const parts = [`paired ${n('paired')}`, `refused ${n('refused')} (403)`, `unknown ${n('unknown')} (404)`, `timeout ${n('timeout')}`];
  if (n('conflict')) parts.push(`already paired or pairing ${n('conflict')} (409)`);
  if (n('invalid')) parts.push(`invalid ${n('invalid')} (400)`);
  if (n('error')) parts.push(`failed ${n('error')}`);
  if (skipped) parts.push(`skipped ${skipped} malformed line(s)`);
  return parts.join(', ');
}

function readFileText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export async function pairMain(argv: string[], io: Io = processIo): Promise<number> {
  return run('pair', PAIR_HELP, io, async () => {
    const { values: v, positionals: p } = parse(argv, {
      ...CLIENT_OPTIONS, csv: { type: 'string' }, concurrency: { type: 'string' }, 'skip-bad': { type: 'boolean' },
    }, true);
    if (v.help) {
      io.out(PAIR_HELP);
      return 0;
    }
    const { base, token } = client(v);
    if (v.csv === undefined) {
      if (p.length !== 2) throw new UsageError('expected <deviceId> <code>');
      if (v.concurrency !== undefined || v['skip-bad']) throw new UsageError('--concurrency and --skip-bad go with --csv FILE');
      const r = await pairOne(base, token, p[0], p[1]);
      if (r.status === 0) throw new Error(r.error);
      if (v.json) io.out(JSON.stringify(r.status === 201 ? r.device : { deviceId: r.deviceId, status: r.status, error: r.error }, null, 2));
      else if (r.status === 201) {
        const d = r.device as { model?: string; firmware?: string; gateway?: string };
        io.out(`paired ${r.deviceId} (${d.model ?? '?'} ${d.firmware ?? '?'}) with gateway ${d.gateway ?? '?'}`);
      } else io.err(`gridlet pair: ${r.error}`);
      return r.status === 201 ? 0 : 1;
    }
    return pairCsv(v, p, base, token, io);
  });
}

async function pairCsv(v: Values, p: string[], base: string, token: string | undefined, io: Io): Promise<number> {
  if (p.length) throw new UsageError('give either <deviceId> <code> or --csv FILE');
  const concurrency = v.concurrency === undefined ? 8 : Number(v.concurrency);
  if (!/^\d+$/.test(String(v.concurrency ?? '8')) || concurrency < 1 || concurrency > 64) {
    throw new UsageError(`--concurrency must be a whole number from 1 to 64, not "${v.concurrency}"`);
  }
  const file = v.csv as string;
  const { rows, bad } = parsePairCsv(readFileText(file));
  if (bad.length && !v['skip-bad']) {
    for (const b of bad) io.err(`${file}:${b.line}: ${b.why}`);
    throw new Error(`${bad.length} malformed line(s) in ${file}; nothing was paired (fix them, or give --skip-bad to pair the others)`);
  }
  if (!v.json) for (const b of bad) io.err(`${file}:${b.line}: skipped: ${b.why}`);
  if (!rows.length) throw new Error(`${file} lists no device to pair ("deviceId,code" per line)`);
  // One clear error for a gateway that is not there, rather than one per line.
  const health = await api(base, token, 'GET', 'api/health');
  if (health.status !== 200) throw new Error(errorOf(health.json, health.status));

  const progress = new Progress({ label: 'pairing', total: rows.length, sink: io.progress, quiet: v.json === true });
  const results = await pool(rows, concurrency, async (row) => {
    const r: PairResult = { line: row.line, ...(await pairOne(base, token, row.deviceId, row.code)) };
    progress.tick(r.status === 201);
    if (r.status !== 201 && !v.json) {
      const text = `${file}:${row.line}: ${row.deviceId}: ${r.result}${r.status ? ` (${r.status})` : ''}: ${r.error}`;
      if (!progress.note(text)) io.err(text);
    }
    return r;
  });
  progress.finish();
  if (v.json) {
    const malformed: PairResult[] = bad.map((b) => ({ line: b.line, deviceId: '', status: 0, result: 'malformed', error: b.why }));
    io.out(JSON.stringify([...results, ...malformed].sort((a, b) => a.line! - b.line!), null, 2));
  } else io.out(pairSummary(results, bad.length));
  return results.every((r) => r.status === 201) ? 0 : 1;
}

// ------------------------------------------------------------------ gridlet devices

const DEVICES_HELP = `usage: gridlet devices [--label SELECTOR] [--gateway URL] [--api-token-file FILE] [--json]
       gridlet devices show <deviceId> [--readings N] [--gateway URL] [--api-token-file FILE] [--json]

Lists the devices a gateway knows: paired, revoked, and seen (Hello received, not paired), with whether
each is online, its last reading, its backlog (records it holds that the gateway has not acknowledged,
as of its last status), its link and its guests. \`devices show\` prints one device in full with its
latest readings and events.

  --label SEL       only devices whose labels match key=value or key (comma-separated: all must match)
  --readings N      show: how many of the latest records to print (default 20, at most 1000)
${CLIENT_HELP}
  --json            print the devices (or the device, with "records") as JSON`;

export interface DeviceView {
  id: string; state: string; model: string; firmware: string; lastSeen: string | null; ackedSeq: number;
  connected: boolean; labels: { [k: string]: string }; gateway?: string;
  status?: { buffered: number; link: string; t: number; uptime: number; dropped: number; heap: number; receivedAt: number } | null;
  guests?: { [cid: string]: { state: string; reason?: string; name?: string } };
  lastReading?: LastReading | null;
}

interface LastReading { seq: number; t: number; channel: number; value: number }

type RecordJson = [number, number, ...unknown[]];

/** The latest records of a device (up to `n`, oldest first), from its acknowledged prefix backwards. */
async function latestRecords(base: string, token: string | undefined, d: DeviceView, n: number): Promise<RecordJson[]> {
  if (!d.ackedSeq) return [];
  const from = Math.max(1, d.ackedSeq - n + 1);
  const r = await api(base, token, 'GET', `api/devices/${encodeURIComponent(d.id)}/readings?from=${from}&limit=${n}`);
  if (r.status !== 200) return [];
  return (r.json as { records: RecordJson[] }).records;
}

/** Channels a meter reports together, in the order an operator would rather see one of them. */
const SHOWN_FIRST = [3, 1, 4, 2, 11];

/** The latest reading: of the readings taken at the latest time, power or energy before the rest. */
function lastReadingOf(records: RecordJson[]): LastReading | null {
  const readings = records.filter((r) => typeof r[2] === 'number').map(([seq, t, channel, value]) => ({ seq, t, channel: channel as number, value: value as number }));
  if (!readings.length) return null;
  const t = Math.max(...readings.map((r) => r.t));
  const rank = (c: number) => (SHOWN_FIRST.includes(c) ? SHOWN_FIRST.indexOf(c) : SHOWN_FIRST.length);
  return readings.filter((r) => r.t === t).sort((a, b) => rank(a.channel) - rank(b.channel) || b.seq - a.seq)[0];
}

function readingText(r: LastReading | null | undefined): string {
  if (!r) return '-';
  const unit = channelUnit(r.channel);
  return `${isoTime(r.t)} ${channelName(r.channel)}=${r.value}${unit ? ' ' + unit : ''}`;
}

function guestsText(d: DeviceView): string {
  const g = Object.entries(d.guests ?? {});
  if (!g.length) return '-';
  // Names come from the device's status ([name, cid, state] per guest); a cid stands in until then.
  const name = (cid: string) => (d.status as { guests?: [string, string, string][] } | null | undefined)?.guests?.find((x) => x[1] === cid)?.[0];
  return g.map(([cid, x]) => `${x.name ?? name(cid) ?? cid.slice(0, 12)}:${x.state}`).join(',');
}

export async function devicesMain(argv: string[], io: Io = processIo): Promise<number> {
  if (argv[0] === 'show') return deviceShow(argv.slice(1), io);
  return run('devices', DEVICES_HELP, io, async () => {
    const { values: v, positionals: p } = parse(argv, { ...CLIENT_OPTIONS, label: { type: 'string', multiple: true } }, true);
    if (v.help) {
      io.out(DEVICES_HELP);
      return 0;
    }
    if (p.length) throw new UsageError(`unexpected "${p[0]}"; use gridlet devices show <deviceId> for one device`);
    const { base, token } = client(v);
    const q = new URLSearchParams();
    for (const l of (v.label as string[] | undefined) ?? []) q.append('label', l);
    const r = await api(base, token, 'GET', 'api/devices' + (q.size ? `?${q}` : ''));
    if (r.status !== 200) throw new Error(errorOf(r.json, r.status));
    const devices = r.json as DeviceView[];
    // The last reading of each device that has stored some (a few requests at a time).
    await pool(devices, 8, async (d) => {
      if (d.lastReading === undefined) d.lastReading = lastReadingOf(await latestRecords(base, token, d, 16));
    });
    if (v.json) {
      io.out(JSON.stringify(devices, null, 2));
      return 0;
    }
    const rows = [['ID', 'STATE', 'ONLINE', 'LAST READING', 'BACKLOG', 'LINK', 'GUESTS', 'LABELS']];
    for (const d of devices) {
      rows.push([d.id, d.state, d.connected ? 'yes' : 'no', readingText(d.lastReading),
        d.status ? String(d.status.buffered) : '-', d.status?.link || '-', guestsText(d),
        Object.entries(d.labels).map(([k, x]) => `${k}=${x}`).join(',') || '-']);
    }
    table(io, rows);
    if (devices.length === 0) io.out('(no devices: start a meter and pair it with `gridlet pair <deviceId> <code>`)');
    else {
      const by = (s: string) => devices.filter((d) => d.state === s).length;
      io.out(`${devices.length} device(s): ${by('paired')} paired (${devices.filter((d) => d.connected && d.state === 'paired').length} online), ${by('seen')} seen, ${by('revoked')} revoked`);
    }
    return 0;
  });
}

function recordText(rec: RecordJson): string {
  const [seq, t, a, b, c] = rec;
  if (typeof a === 'number') {
    const unit = channelUnit(a);
    return `seq ${seq}  ${isoTime(t)}  ${channelName(a)}  ${b}${unit ? ' ' + unit : ''}`;
  }
  if (a === 'event') return `seq ${seq}  ${isoTime(t)}  event ${b}${c && Object.keys(c as object).length ? ' ' + JSON.stringify(c) : ''}`;
  return `seq ${seq}  ${isoTime(t)}  gap: seqs ${seq}..${b} lost (${c})`;
}

async function deviceShow(argv: string[], io: Io): Promise<number> {
  return run('devices show', DEVICES_HELP, io, async () => {
    const { values: v, positionals: p } = parse(argv, { ...CLIENT_OPTIONS, readings: { type: 'string' } }, true);
    if (v.help) {
      io.out(DEVICES_HELP);
      return 0;
    }
    if (p.length !== 1) throw new UsageError('expected gridlet devices show <deviceId>');
    const n = v.readings === undefined ? 20 : Number(v.readings);
    if (!/^\d+$/.test(String(v.readings ?? '20')) || n > 1000) throw new UsageError(`--readings must be a whole number from 0 to 1000, not "${v.readings}"`);
    const { base, token } = client(v);
    const r = await api(base, token, 'GET', `api/devices/${encodeURIComponent(p[0])}`);
    if (r.status !== 200) throw new Error(errorOf(r.json, r.status));
    const d = r.json as DeviceView & {
      capabilities?: string[]; firstSeen?: string | null; pairedAt?: string | null; revokedAt?: string | null;
      conflicts?: { gateway: string; operator: string; operatorName: string | null; pairedAt: string | null }[];
    };
    const records = n ? await latestRecords(base, token, d, n) : [];
    if (v.json) {
      io.out(JSON.stringify({ ...d, records }, null, 2));
      return 0;
    }
    const s = d.status;
    const lines: [string, string][] = [
      ['id', d.id], ['state', d.state], ['gateway', d.gateway ?? '-'], ['model', `${d.model} ${d.firmware}`],
      ['online', d.connected ? 'yes' : 'no'], ['labels', Object.entries(d.labels).map(([k, x]) => `${k}=${x}`).join(',') || '-'],
      ['first seen', d.firstSeen ?? '-'], ['last seen', d.lastSeen ?? '-'], ['paired at', d.pairedAt ?? '-'],
      ...(d.revokedAt ? [['revoked at', d.revokedAt] as [string, string]] : []),
      ['acked seq', String(d.ackedSeq)],
      ['status', s ? `as of ${isoTime(s.t)}: backlog ${s.buffered} record(s), link ${s.link || '-'}, uptime ${s.uptime} s, dropped ${s.dropped}, heap ${s.heap} B` : '-'],
      ['guests', guestsText(d)],
      // Pairings by another operator's gateways while this one's stood: they displaced nothing.
      ...(d.conflicts ?? []).map((c): [string, string] => ['conflict', `paired at ${c.pairedAt ?? '?'} by gateway ${c.gateway} of operator ${c.operatorName ?? '?'} (${c.operator}): it displaced nothing; settle it with that operator`]),
    ];
    const w = Math.max(...lines.map(([k]) => k.length));
    for (const [k, x] of lines) io.out(`${k.padEnd(w)}  ${x}`);
    if (records.length) {
      io.out('');
      io.out(`latest records (${records.length}):`);
      for (const rec of records) io.out(`  ${recordText(rec)}`);
    }
    return 0;
  });
}
