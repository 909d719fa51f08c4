// `gridlet guest deploy` and `gridlet dr send` (ARCHITECTURE.md "Operator interface"): clients of the
// gateway's HTTP API (guest-routes.ts, dr-routes.ts). Exit codes: 0 done, 1 failed (the reason is
// printed), 2 usage error.

import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pool, Progress } from './progress.js';
import { drVtn } from './openadr-status.js';
import { parse, processIo, run, table, UsageError, type Io } from './args.js';
import { api, CLIENT_HELP, client, errorOf } from './client.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DIST_DIR = join(ROOT, 'guests', 'dist');
const MANIFEST_DIR = join(ROOT, 'manifests', 'guests');

function concurrencyFlag(v: unknown): number {
  const n = v === undefined ? 8 : Number(v);
  if (!/^\d+$/.test(String(v ?? '8')) || n < 1 || n > 64) throw new UsageError(`--concurrency must be a whole number from 1 to 64, not "${String(v)}"`);
  return n;
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function readJson(file: string, what: string): unknown {
  const text = readText(file, what);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

/** The paired devices a command addresses: --device ids as given, or the paired ones a --label selector matches. */
async function targets(base: string, tok: string | undefined, devices: string[], labels: string[]): Promise<string[]> {
  if (devices.length && labels.length) throw new UsageError('give either --device ID (repeatable) or --label SELECTOR, not both');
  if (devices.length) return devices;
  if (!labels.length) throw new UsageError('give --device ID or --label key=value');
  const q = new URLSearchParams();
  for (const l of labels) q.append('label', l);
  const r = await api(base, tok, 'GET', `api/devices?${q}`);
  if (r.status !== 200) throw new Error(errorOf(r.json, r.status));
  const ids = (r.json as { id: string; state: string }[]).filter((d) => d.state === 'paired').map((d) => d.id);
  if (!ids.length) throw new Error(`no paired device matches --label ${labels.join(',')}`);
  return ids;
}

// ------------------------------------------------------------------ gridlet guest deploy

const DEPLOY_HELP = `usage: gridlet guest deploy <name | FILE.wasm | FILE.world> (--device ID… | --label SELECTOR) [--manifest FILE | JSON]
                           [--wait S] [--concurrency N] [--gateway URL] [--api-token-file FILE] [--json]

Uploads a guest or a world to the gateway (POST /api/guests: it checks it against GUESTS.md and adds the
metering calls if they are missing; the CID names the bytes it keeps), then deploys it by CID to each
device (guest-offer and guest-chunks, kept and resent by the gateway until the device acknowledges them).
A world is swapped on the device as one unit. On a terminal, a progress bar on stderr follows a
deployment to many devices.

  <name>            a built guest: guests/dist/<name>.wasm with manifests/guests/<name>.json, or a
                    built world: guests/dist/<name>.world
  FILE.wasm         a module; its manifest is --manifest, else manifests/guests/<file name>.json
  FILE.world        a world's bundle (it carries its manifest)
  --device ID       a paired device; repeatable
  --label SEL       every paired device whose labels match key=value or key (comma-separated: all)
  --manifest M      the manifest: a JSON file, or the JSON itself
  --wait S          wait up to S seconds for each device's guest-ack (running or rejected)
  --concurrency N   deployments sent at once (1 to 64, default 8)
${CLIENT_HELP}
  --json            print one JSON document: {"cid", "name", "size", "devices": [{"deviceId", …}]}`;

interface DeployResult {
  deviceId: string;
  status: number;
  chunks?: number;
  error?: string;
  state?: string;
  reason?: string;
}

/** What POST /api/guests is given: a module and its manifest, or a world's bundle. */
function upload(target: string, manifestFlag: string | undefined): { [k: string]: unknown } {
  const isFile = target.endsWith('.wasm') || target.endsWith('.world') || target.includes('/') || target.includes('\\');
  const worldPath = target.endsWith('.world') ? target : isFile ? undefined : join(DIST_DIR, `${target}.world`);
  if (worldPath && (isFile || existsSync(worldPath))) {
    if (manifestFlag !== undefined) throw new UsageError(`--manifest: a world's bundle carries its manifest (${worldPath})`);
    try {
      return { world: Buffer.from(readFileSync(worldPath)).toString('base64') };
    } catch (e) {
      throw new Error(`cannot read world ${worldPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const { wasm, manifest } = moduleAndManifest(target, manifestFlag);
  return { wasm: Buffer.from(wasm).toString('base64'), manifest };
}

function moduleAndManifest(target: string, manifestFlag: string | undefined): { wasm: Uint8Array; manifest: unknown; source: string } {
  const isFile = target.endsWith('.wasm') || target.includes('/') || target.includes('\\');
  const wasmPath = isFile ? target : join(DIST_DIR, `${target}.wasm`);
  if (!isFile && !existsSync(wasmPath)) throw new Error(`no built guest "${target}" (${wasmPath}); run \`gridlet guest build ${target}\` or give FILE.wasm`);
  let wasm: Uint8Array;
  try {
    wasm = new Uint8Array(readFileSync(wasmPath));
  } catch (e) {
    throw new Error(`cannot read module ${wasmPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let manifest: unknown;
  if (manifestFlag !== undefined) {
    if (manifestFlag.trim().startsWith('{')) {
      try {
        manifest = JSON.parse(manifestFlag);
      } catch (e) {
        throw new UsageError(`--manifest: not valid JSON: ${(e as Error).message}`);
      }
    } else manifest = readJson(manifestFlag, 'manifest');
  } else {
    const file = join(MANIFEST_DIR, `${basename(wasmPath, '.wasm')}.json`);
    if (!existsSync(file)) throw new UsageError(`no manifest for ${wasmPath}: give --manifest FILE (${file} does not exist)`);
    manifest = readJson(file, 'manifest');
  }
  return { wasm, manifest, source: wasmPath };
}

export async function guestDeployMain(argv: string[], io: Io = processIo): Promise<number> {
  return run('guest deploy', DEPLOY_HELP, io, async () => {
    const { values: v, positionals: p } = parse(argv, {
      device: { type: 'string', multiple: true }, label: { type: 'string', multiple: true }, manifest: { type: 'string' },
      wait: { type: 'string' }, gateway: { type: 'string' }, 'api-token': { type: 'string' }, 'api-token-file': { type: 'string' }, json: { type: 'boolean' },
      concurrency: { type: 'string' },
    }, true);
    if (v.help) {
      io.out(DEPLOY_HELP);
      return 0;
    }
    if (p.length !== 1) throw new UsageError('expected one guest or world: a name (peak-guard, shed-world), FILE.wasm or FILE.world');
    const waitS = v.wait === undefined ? 0 : Number(v.wait);
    if (!Number.isInteger(waitS) || waitS < 0 || waitS > 3600) throw new UsageError('--wait must be whole seconds from 0 to 3600');
    const concurrency = concurrencyFlag(v.concurrency);
    const { base, token: tok } = client(v);
    const body = upload(p[0], v.manifest as string | undefined);
    const devices = await targets(base, tok, (v.device as string[] | undefined) ?? [], (v.label as string[] | undefined) ?? []);

    const up = await api(base, tok, 'POST', 'api/guests', body);
    if (up.status !== 201 && up.status !== 200) {
      const reason = (up.json as { reason?: string }).reason;
      throw new Error(reason ? `the gateway refused ${p[0]}: ${reason}` : errorOf(up.json, up.status));
    }
    const g = up.json as { cid: string; name: string; version: string; size: number; instrumented: boolean; kind?: string; members?: string[] };
    if (!v.json) {
      const what = g.kind === 'world' ? `world ${g.name} ${g.version} (${g.members?.join(', ')})` : `${g.name} ${g.version}`;
      io.out(`uploaded ${what}: ${g.cid}, ${g.size} bytes${g.instrumented ? ' (metering added by the gateway)' : ''}`);
    }
    // On a terminal the bar stands for the per-device lines (failures are still printed above it).
    const progress = new Progress({ label: 'deploying', total: devices.length, sink: io.progress?.isTTY && devices.length > 1 ? io.progress : undefined, quiet: v.json === true });
    const results = await pool(devices, concurrency, async (id, i): Promise<DeployResult> => {
      const r = await api(base, tok, 'POST', `api/devices/${encodeURIComponent(id)}/guests`, { cid: g.cid });
      const res: DeployResult = r.status === 202
        ? { deviceId: id, status: 202, chunks: (r.json as { chunks: number }).chunks }
        : { deviceId: id, status: r.status, error: errorOf(r.json, r.status) };
      progress.tick(!res.error);
      if (!v.json) {
        const line = res.error ? `[${i + 1}/${devices.length}] ${id}: not sent: ${res.error}` : `[${i + 1}/${devices.length}] ${id}: offer and ${res.chunks} chunk(s) sent`;
        if (!progress.note(line, !res.error)) io.out(line);
      }
      return res;
    });
    progress.finish();
    if (!v.json && devices.length > 1) {
      const sent = results.filter((r) => r.status === 202).length;
      io.out(`offered to ${sent} of ${devices.length} device(s)`);
    }
    if (waitS > 0) await waitForAcks(base, tok, g.cid, results, waitS, v.json ? undefined : io);
    if (v.json) io.out(JSON.stringify({ ...g, devices: results }, null, 2));
    const ok = results.every((r) => r.status === 202 && (waitS === 0 || r.state === 'running'));
    return ok ? 0 : 1;
  });
}

async function waitForAcks(base: string, tok: string | undefined, cid: string, results: DeployResult[], waitS: number, io?: Io): Promise<void> {
  const deadline = Date.now() + waitS * 1000;
  const open = new Set(results.filter((r) => r.status === 202));
  const progress = new Progress({ label: 'waiting for guest-acks', total: open.size, sink: io?.progress?.isTTY && open.size > 1 ? io.progress : undefined });
  const say = (line: string, routine: boolean) => {
    if (io && !progress.note(line, routine)) io.out(line);
  };
  while (open.size && Date.now() < deadline) {
    await pool([...open], 8, async (r) => {
      const q = await api(base, tok, 'GET', `api/devices/${encodeURIComponent(r.deviceId)}/guests`);
      const entry = q.status === 200 ? (q.json as { guests: { cid: string; state: string; reason?: string }[] }).guests.find((x) => x.cid === cid) : undefined;
      if (entry && (entry.state === 'running' || entry.state === 'rejected')) {
        r.state = entry.state;
        if (entry.reason !== undefined) r.reason = entry.reason;
        open.delete(r);
        progress.tick(entry.state === 'running');
        say(`${r.deviceId}: ${entry.state}${entry.reason ? `: ${entry.reason}` : ''}`, entry.state === 'running');
      }
    });
    if (open.size) await new Promise((res) => setTimeout(res, 250));
  }
  progress.finish();
  for (const r of open) {
    r.state = 'deploying';
    io?.out(`${r.deviceId}: no answer within ${waitS} s (the gateway resends when the device is next heard)`);
  }
  if (io && results.length > 1) {
    const n = (s: string) => results.filter((r) => r.state === s).length;
    io.out(`running ${n('running')}, rejected ${n('rejected')}, no answer ${n('deploying')}`);
  }
}

// ------------------------------------------------------------------ gridlet dr send

const DR_HELP = `usage: gridlet dr send (--device ID… | --label SELECTOR) --level N --start T --duration S [--limit W]
                      [--id ID] [--modification N] [--randomize S] [--concurrency N]
                      [--gateway URL] [--api-token-file FILE] [--json]
       gridlet dr send (--device ID… | --label SELECTOR) --openadr FILE.json [--currency EUR] […]
       gridlet dr list <deviceId> [--gateway URL] [--api-token-file FILE] [--json]
       gridlet dr vtn [--gateway URL] [--api-token-file FILE] [--json]

send: sends a demand-response event (WIRE.md dr-event) to devices; the gateway keeps it until each
device acknowledges it. Devices run it by their own clock, also while offline. To a label selector,
the gateway sends it to every paired device that matches (one request); to several --device ids the
requests go a few at a time, with a progress bar on a terminal.
list: the demand-response history a device reported (its dr events: start, end, missed).
vtn: the utilities' OpenADR 3 VTNs the gateway is a VEN of (gridlet gateway --openadr-vtn): link state,
their events, the meters each is for, and the reports sent.

  --level N         0 normal operation … 3 the strongest request
  --start T         unix seconds, an RFC 3339 date-time (2025-03-14T18:00:00Z), now or now+SECONDS
  --duration S      seconds; 0 cancels the event with this id
  --limit W         import limit in watts while the event runs
  --id ID           the event id (default cli-<start>); an event sent again with the same id replaces it
  --modification N  a higher number replaces an event with the same id (default: the gateway's clock)
  --randomize S     each device delays its start by a random 0..S seconds
  --openadr FILE    an OpenADR 3 event (3.0.1 or 3.1.0) instead: SIMPLE levels, IMPORT_CAPACITY_LIMIT
                    and PRICE (as a tariff) are sent, one body per interval; the rest is listed as notes
  --currency C      currency of OpenADR PRICE payloads whose payloadDescriptor names none
  --device ID       a paired device; repeatable
  --label SEL       every paired device whose labels match key=value or key (comma-separated: all)
  --concurrency N   with several --device ids: requests at once (1 to 64, default 8)
${CLIENT_HELP}
  --json            print the gateway's answers (list: the events) as JSON`;

function uintFlag(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d{1,15}$/.test(v)) throw new UsageError(`--${flag} must be a whole number, not "${String(v)}"`);
  return Number(v);
}

function startFlag(text: string): number | string {
  const now = /^now(?:\+(\d{1,9}))?$/.exec(text);
  if (now) return Math.floor(Date.now() / 1000) + Number(now[1] ?? 0);
  if (/^\d{1,15}$/.test(text)) return Number(text);
  return text; // RFC 3339: the gateway checks it
}

interface BodyView { body: string; [k: string]: unknown }

function describe(b: BodyView): string {
  const iso = (t: unknown) => new Date(Number(t) * 1000).toISOString().replace('.000Z', 'Z');
  if (b.body === 'dr-event') {
    const extra = [b.limit !== undefined ? `limit ${b.limit} W` : '', b.window !== undefined ? `start randomised over ${b.window} s` : ''].filter(Boolean);
    return b.duration === 0
      ? `dr-event ${b.id}: cancel (modification ${b.modification})`
      : `dr-event ${b.id}: level ${b.level} from ${iso(b.start)} for ${b.duration} s${extra.length ? `, ${extra.join(', ')}` : ''}`;
  }
  return `tariff: ${(Number(b.price) / 100_000).toString()} ${b.currency}/kWh from ${iso(b.from)} until ${iso(b.until)}`;
}

export async function drMain(argv: string[], io: Io = processIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
    io.out(DR_HELP);
    return sub ? 0 : 2;
  }
  return run('dr', DR_HELP, io, async () => {
    if (sub === 'list') return drList(rest, io);
    if (sub === 'vtn') return drVtn(rest, io, DR_HELP);
    if (sub !== 'send') throw new UsageError(`unknown subcommand "${sub}"; use gridlet dr send, gridlet dr list or gridlet dr vtn`);
    const { values: v } = parse(rest, {
      device: { type: 'string', multiple: true }, label: { type: 'string', multiple: true },
      level: { type: 'string' }, start: { type: 'string' }, duration: { type: 'string' }, limit: { type: 'string' },
      id: { type: 'string' }, modification: { type: 'string' }, randomize: { type: 'string' },
      openadr: { type: 'string' }, currency: { type: 'string' }, concurrency: { type: 'string' },
      gateway: { type: 'string' }, 'api-token': { type: 'string' }, 'api-token-file': { type: 'string' }, json: { type: 'boolean' },
    }, false);
    if (v.help) {
      io.out(DR_HELP);
      return 0;
    }
    const { base, token: tok } = client(v);
    const concurrency = concurrencyFlag(v.concurrency);
    const native = ['level', 'start', 'duration', 'limit', 'id', 'modification', 'randomize'].filter((f) => v[f] !== undefined);
    let body: unknown;
    let query = '';
    if (v.openadr !== undefined) {
      if (native.length) throw new UsageError(`--openadr sends the event as it is; --${native[0]} does not apply`);
      body = readJson(v.openadr as string, 'OpenADR event');
      if (v.currency !== undefined) query = `currency=${encodeURIComponent(v.currency as string)}`;
    } else {
      if (v.currency !== undefined) throw new UsageError('--currency applies to --openadr events only');
      for (const f of ['level', 'start', 'duration']) if (v[f] === undefined) throw new UsageError(`--${f} is required (or --openadr FILE)`);
      const start = startFlag(v.start as string);
      const ev: { [k: string]: unknown } = {
        id: (v.id as string | undefined) ?? `cli-${start}`, start, duration: uintFlag(v.duration, 'duration'), level: uintFlag(v.level, 'level'),
      };
      if (v.limit !== undefined) ev.limitW = uintFlag(v.limit, 'limit');
      if (v.modification !== undefined) ev.modification = uintFlag(v.modification, 'modification');
      if (v.randomize !== undefined) ev.randomizeS = uintFlag(v.randomize, 'randomize');
      body = ev;
    }
    const devices = (v.device as string[] | undefined) ?? [];
    const labels = (v.label as string[] | undefined) ?? [];
    if (devices.length && labels.length) throw new UsageError('give either --device ID (repeatable) or --label SELECTOR, not both');
    if (!devices.length && !labels.length) throw new UsageError('give --device ID or --label key=value');
    let answers: { status: number; json: unknown }[] = [];
    if (labels.length) {
      const q = new URLSearchParams(query);
      for (const l of labels) q.append('label', l);
      answers.push(await api(base, tok, 'POST', `api/dr-events?${q}`, body));
    } else {
      const progress = new Progress({ label: 'sending', total: devices.length, sink: devices.length > 1 ? io.progress : undefined, quiet: v.json === true });
      answers = await pool(devices, concurrency, async (id) => {
        const a = await api(base, tok, 'POST', `api/devices/${encodeURIComponent(id)}/dr-events${query ? `?${query}` : ''}`, body);
        progress.tick(a.status === 202);
        return a;
      });
      progress.finish();
    }
    if (v.json) {
      io.out(JSON.stringify(answers.length === 1 ? answers[0].json : answers.map((a) => a.json), null, 2));
      return answers.every((a) => a.status === 202) ? 0 : 1;
    }
    for (const [i, a] of answers.entries()) {
      if (a.status !== 202) {
        io.err(`gridlet dr: ${labels.length ? '' : `${devices[i]}: `}${errorOf(a.json, a.status)}`);
        continue;
      }
      const j = a.json as { deviceId?: string; devices?: string[]; bodies: BodyView[]; notes: string[] };
      const to = j.deviceId ?? `${j.devices!.length} device(s) (${j.devices!.join(', ')})`;
      for (const b of j.bodies) io.out(`sent to ${to}: ${describe(b)}`);
      for (const n of j.notes) io.out(`note: ${n}`);
    }
    return answers.every((a) => a.status === 202) ? 0 : 1;
  });
}

interface DrHistoryEntry { seq: number; t: number; event?: string; phase?: string; [k: string]: unknown }

async function drList(argv: string[], io: Io): Promise<number> {
  const { values: v, positionals: p } = parse(argv, {
    gateway: { type: 'string' }, 'api-token': { type: 'string' }, 'api-token-file': { type: 'string' }, json: { type: 'boolean' },
  }, true);
  if (v.help) {
    io.out(DR_HELP);
    return 0;
  }
  if (p.length !== 1) throw new UsageError('expected gridlet dr list <deviceId>');
  const { base, token: tok } = client(v);
  const r = await api(base, tok, 'GET', `api/devices/${encodeURIComponent(p[0])}/dr-events`);
  if (r.status === 404 && !(await api(base, tok, 'GET', `api/devices/${encodeURIComponent(p[0])}`).then((x) => x.status === 200))) {
    throw new Error(errorOf(r.json, r.status));
  }
  if (r.status !== 200) {
    throw new Error(r.status === 404 || r.status === 405 ? 'this gateway has no demand-response history (GET /api/devices/:id/dr-events); update it' : errorOf(r.json, r.status));
  }
  const events = (r.json as { events: DrHistoryEntry[] }).events;
  if (v.json) {
    io.out(JSON.stringify(r.json, null, 2));
    return 0;
  }
  if (!events.length) {
    io.out(`${p[0]}: no demand-response event reported`);
    return 0;
  }
  const iso = (t: number) => (t ? new Date(t * 1000).toISOString().replace('.000Z', 'Z') : 'no-clock');
  const rows = [['SEQ', 'TIME', 'EVENT', 'PHASE']];
  for (const e of events) rows.push([String(e.seq), iso(e.t), String(e.event ?? '-'), String(e.phase ?? '-')]);
  table(io, rows);
  return 0;
}
