// `gridlet pair` (one meter, or a CSV of many) and `gridlet devices` (ARCHITECTURE.md "Operator interface").

import { readFileSync } from 'node:fs';
import { isoTime } from '../../firmware/core/console/text.js';
import { channelName, channelUnit } from '../../firmware/core/wire/constants.js';
import { parse, processIo, run, table, UsageError, type Io, type Values } from './args.js';
import { api, CLIENT_HELP, CLIENT_OPTIONS, client, errorOf } from './client.js';
import { pool, Progress } from './progress.js';
import { parsePairCsv } from '../../gateway/web/pair-csv.js';

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
