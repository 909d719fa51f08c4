// `gridlet gateway` (ARCHITECTURE.md "Operator interface"): runs a gateway, prints its identity, rotates its key.

import { writeFileSync } from 'node:fs';
import pino from 'pino';
import { isoTime } from '../../firmware/core/console/text.js';
import { startGateway } from '../../gateway/gateway.js';
import { DEFAULT_HEADROOM, HeapHeadroom, setHeapGrowingPercent, watchHeapHeadroom } from '../../gateway/heap.js';
import { parse, processIo, run, UsageError, type Io } from './args.js';
import { apiToken } from './client.js';
import { OPENADR_CLI_OPTIONS, OPENADR_HELP, openAdrGroups, OpenAdrUsageError } from './openadr-options.js';
import { startAllocationProfile } from './alloc-prof.js';
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
  --heap-headroom P       how far (in percent) the JavaScript heap may grow past what was live at its last
                          full collection before it is collected again (default 30, and 20 while more than
                          64 MiB is live, as with thousands of meters connected; V8's own heuristic, up
                          to 300 %, is what 0 restores): lower keeps less memory per meter, at more CPU
                          spent collecting
  --sign-threads N        worker threads that sign the mesh's readings messages when many are made at
                          once (one per frame; default: the cores but one, at most 2; 0: all on the
                          event loop, which then has less time for frames)
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
      'retention-interval': { type: 'string' }, replica: { type: 'string' }, 'unpaired-limit': { type: 'string' }, 'heap-headroom': { type: 'string' }, 'sign-threads': { type: 'string' }, ...OPENADR_CLI_OPTIONS,
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
    const headroom = v['heap-headroom'] as string | undefined;
    if (headroom !== undefined && (!/^\d{1,3}$/.test(headroom) || Number(headroom) > 300)) {
      throw new UsageError(`--heap-headroom must be a whole number of percent from 0 to 300, not "${headroom}"`);
    }
    const signThreads = v['sign-threads'] as string | undefined;
    if (signThreads !== undefined && (!/^\d{1,2}$/.test(signThreads) || Number(signThreads) > 16)) {
      throw new UsageError(`--sign-threads must be a whole number from 0 to 16, not "${signThreads}"`);
    }
    let openadr;
    try {
      openadr = openAdrGroups(argv, process.env.GRIDLET_OPENADR_CLIENT_SECRET || undefined);
    } catch (e) {
      throw e instanceof OpenAdrUsageError ? new UsageError(e.message) : e;
    }
    const logger = gatewayLogger(level, format, process.stderr);
    // A gateway's heap is mostly what its connected meters keep; V8 lets it grow up to 4× what survived
    // the last full collection before collecting again, which at 4,000 meters on the embedded broker held
    // 219 MiB of old generation for 100 MiB live (docs/benchmarks.md). Given, the headroom holds; by
    // default it follows the live heap (gateway/heap.ts).
    let stopHeadroom = () => {};
    if (headroom === undefined) {
      const h = new HeapHeadroom(DEFAULT_HEADROOM, (p) => {
        setHeapGrowingPercent(p);
        logger.debug({ percent: p }, 'heap headroom');
      });
      stopHeadroom = watchHeapHeadroom(h);
    } else if (Number(headroom) > 0) setHeapGrowingPercent(Number(headroom));
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
      ...(signThreads === undefined ? {} : { signThreads: Number(signThreads) }),
      tuning: {
        ...(retention === undefined ? {} : { retentionIntervalMs: Number(retention) * 1000 }),
        ...(limits ? { unpairedConnections: Number(limits[1]), unpairedPerSource: Number(limits[2]) } : {}),
      },
      openadr,
      logger,
    });
    const stopAllocationProfile = await startAllocationProfile();
    // Listening for the signals before saying ready: a service manager (or a test) may stop the gateway
    // the moment it reads the ready line, and a signal nobody listens to kills the process unclosed.
    const stopped = new Promise<string>((resolve) => {
      const on = (s: string) => () => resolve(s);
      process.once('SIGINT', on('SIGINT'));
      process.once('SIGTERM', on('SIGTERM'));
    });
    io.out(`gateway ready mqtt=${gw.mqttUrl} http=${gw.httpUrl} id=${gw.id}${gw.meshAddr ? ` mesh=${gw.meshAddr}` : ''}`);
    const signal = await stopped;
    // A second signal while closing means "now".
    const force = () => process.exit(130);
    process.once('SIGINT', force);
    process.once('SIGTERM', force);
    await stopAllocationProfile();
    stopHeadroom();
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
