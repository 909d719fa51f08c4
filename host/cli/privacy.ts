// `gridlet privacy …` and `gridlet audit`: clients of the gateway's privacy routes
// (http/privacy-routes.ts). Exit codes: 0 done, 1 failed (the reason is printed), 2 usage error.

import { readFileSync } from 'node:fs';
import { isDeviceId } from '../../firmware/core/wire/topics.js';
import { LEVELS, PURPOSES } from '../../gateway/privacy/policy.js';
import { parse, processIo, run, table, UsageError, type Io, type Values } from './args.js';
import { api, CLIENT_HELP, CLIENT_OPTIONS, client, errorOf } from './client.js';

const PRIVACY_HELP = `usage: gridlet privacy get <deviceId> [--json]
       gridlet privacy set <deviceId | --label SELECTOR [--priority N]>
                           (--file policy.json | [--operator LEVEL] [--mesh LEVEL] [--peer OPERATOR=LEVEL]…
                            [--channels 1,2] [--purposes billing,grid-operations] [--retention-days N|forever])
       gridlet privacy unset <deviceId | --label SELECTOR>
       gridlet privacy groups [--json]
       gridlet privacy retention --run [--json]

A device's sharing policy says, for each audience, what of its data may leave the gateway:
  --operator LEVEL        this operator's own gateways and API (default: full)
  --peer OPERATOR=LEVEL   the gateways of another named operator; repeatable
  --mesh LEVEL            every other gateway of the mesh (default: none)
  LEVEL is ${LEVELS.join(', ')} (nothing, daily totals, 15-minute aggregates, every record)
  --channels LIST         only these channels (default: all), for every audience set here
  --purposes LIST         what they may use it for: ${PURPOSES.join(', ')} (default: grid-operations)
  --retention-days N      how long raw records are kept (default 396; "forever": until removed by hand)
  --file F                the whole policy as JSON instead ({"operator", "peers", "mesh", "retentionDays"})
A device's own policy wins; else the group policy (--label key=value) of highest --priority that matches
its labels; else the default. \`unset\` removes a device's own or a group's policy.
\`retention --run\` removes expired records and readings messages now (the gateway does it hourly).
${CLIENT_HELP}
  --json            print the gateway's JSON answer`;

const AUDIT_HELP = `usage: gridlet audit [--device ID] [--limit N] [--json]

The audit log: every disclosure of a device's data, newest first — when, to whom (a mesh peer and its
operator, or the HTTP API), what (message CID, kind, seqs, level), for which purposes and how (announced,
served to a peer, read over HTTP).
  --device ID       only this device's disclosures (and live streams of every device, shown as *)
  --limit N         at most N entries (default 100)
${CLIENT_HELP}
  --json            print the entries as JSON`;

function readPolicyFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read policy file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

function level(v: string, flag: string): string {
  if (!(LEVELS as readonly string[]).includes(v)) throw new UsageError(`${flag} "${v}" must be one of ${LEVELS.join(', ')}`);
  return v;
}

function list(v: unknown): string[] {
  return String(v).split(',').map((x) => x.trim()).filter(Boolean);
}

/** The policy JSON the flags describe (checked again, and in full, by the gateway). */
export function policyFromFlags(v: Values): { [k: string]: unknown } {
  const channels = v.channels === undefined ? undefined : list(v.channels).map((c) => {
    if (!/^\d{1,5}$/.test(c)) throw new UsageError(`--channels: "${c}" is not a channel number`);
    return Number(c);
  });
  const purposes = v.purposes === undefined ? undefined : list(v.purposes);
  for (const p of purposes ?? []) if (!(PURPOSES as readonly string[]).includes(p)) throw new UsageError(`--purposes: "${p}" is not one of ${PURPOSES.join(', ')}`);
  const share = (lv: string) => ({
    level: lv, ...(lv !== 'none' && channels ? { channels } : {}), ...(lv !== 'none' && purposes ? { purposes } : {}),
  });
  const policy: { [k: string]: unknown } = {};
  if (v.operator !== undefined) policy.operator = share(level(String(v.operator), '--operator'));
  if (v.mesh !== undefined) policy.mesh = share(level(String(v.mesh), '--mesh'));
  const peers: { [k: string]: unknown } = {};
  for (const p of (v.peer as string[] | undefined) ?? []) {
    const eq = p.lastIndexOf('=');
    if (eq <= 0) throw new UsageError(`--peer "${p}" must be OPERATOR=LEVEL, e.g. community-grid=daily`);
    peers[p.slice(0, eq)] = share(level(p.slice(eq + 1), `--peer ${p.slice(0, eq)}`));
  }
  if (Object.keys(peers).length) policy.peers = peers;
  if (v['retention-days'] !== undefined) {
    const r = String(v['retention-days']);
    if (r === 'forever') policy.retentionDays = null;
    else if (/^\d+(\.\d+)?$/.test(r)) policy.retentionDays = Number(r);
    else throw new UsageError(`--retention-days "${r}" must be a number of days or "forever"`);
  }
  return policy;
}

function printPolicy(io: Io, j: { deviceId: string; source: string; summary: string; removed?: boolean }): void {
  io.out(`${j.deviceId}: ${j.summary}`);
  io.out(`  from: ${j.source === 'device' ? "the device's own policy" : j.source === 'default' ? 'the default policy' : `group policy ${j.source.slice(6)}`}`);
}

export async function privacyMain(argv: string[], io: Io = processIo): Promise<number> {
  return run('privacy', PRIVACY_HELP, io, async () => {
    const { values: v, positionals: p } = parse(argv, {
      ...CLIENT_OPTIONS, label: { type: 'string' }, priority: { type: 'string' }, file: { type: 'string' },
      operator: { type: 'string' }, mesh: { type: 'string' }, peer: { type: 'string', multiple: true }, channels: { type: 'string' },
      purposes: { type: 'string' }, 'retention-days': { type: 'string' }, run: { type: 'boolean' },
    }, true);
    if (v.help) {
      io.out(PRIVACY_HELP);
      return 0;
    }
    const [sub, ...rest] = p;
    const { base, token } = client(v);
    const call = async (method: string, path: string, body?: unknown) => {
      const r = await api(base, token, method, path, body);
      if (r.status >= 300) throw new Error(errorOf(r.json, r.status));
      return r.json as any;
    };
    const deviceArg = (): string | undefined => {
      if (v.label !== undefined) {
        if (rest.length) throw new UsageError('give either a device id or --label SELECTOR, not both');
        return undefined;
      }
      if (rest.length !== 1) throw new UsageError(`${sub}: expected one device id (or --label SELECTOR)`);
      if (!isDeviceId(rest[0])) throw new UsageError(`"${rest[0]}" is not a device id (16 characters a-z, 2-7)`);
      return rest[0];
    };
    switch (sub) {
      case 'get': {
        if (rest.length !== 1 || !isDeviceId(rest[0])) throw new UsageError('get: expected one device id (16 characters a-z, 2-7)');
        const j = await call('GET', `api/devices/${rest[0]}/privacy`);
        if (v.json) io.out(JSON.stringify(j, null, 2));
        else printPolicy(io, j);
        return 0;
      }
      case 'set': {
        const id = deviceArg();
        const flagged = ['operator', 'mesh', 'peer', 'channels', 'purposes', 'retention-days'].some((k) => v[k] !== undefined);
        if (v.file !== undefined && flagged) throw new UsageError('give either --file or the policy flags, not both');
        if (v.file === undefined && !flagged) throw new UsageError('set: give the policy: --file F, or --operator/--mesh/--peer/--retention-days …');
        const policy = v.file !== undefined ? readPolicyFile(String(v.file)) : policyFromFlags(v);
        if (id) {
          const j = await call('PUT', `api/devices/${id}/privacy`, policy);
          if (v.json) io.out(JSON.stringify(j, null, 2));
          else printPolicy(io, j);
        } else {
          const priority = v.priority === undefined ? undefined : Number(v.priority);
          if (priority !== undefined && !Number.isSafeInteger(priority)) throw new UsageError(`--priority "${v.priority}" must be an integer`);
          const j = await call('PUT', 'api/privacy/groups', { selector: v.label, ...(priority === undefined ? {} : { priority }), policy });
          if (v.json) io.out(JSON.stringify(j, null, 2));
          else io.out(`group ${j.selector} (priority ${j.priority}): ${j.summary}`);
        }
        return 0;
      }
      case 'unset': {
        const id = deviceArg();
        if (id) {
          const j = await call('DELETE', `api/devices/${id}/privacy`, {});
          if (v.json) io.out(JSON.stringify(j, null, 2));
          else {
            if (!j.removed) io.out(`${id} had no policy of its own`);
            printPolicy(io, j);
          }
        } else {
          const j = await call('DELETE', `api/privacy/groups?${new URLSearchParams({ selector: String(v.label) })}`, {});
          if (v.json) io.out(JSON.stringify(j, null, 2));
          else io.out(`group policy ${j.removed} removed`);
        }
        return 0;
      }
      case 'groups': {
        if (rest.length) throw new UsageError('groups takes no arguments');
        const j = await call('GET', 'api/privacy/groups');
        if (v.json) io.out(JSON.stringify(j, null, 2));
        else if (!j.groups.length) io.out('no group policies: devices without their own policy get the default');
        else table(io, [['SELECTOR', 'PRIORITY', 'POLICY'], ...j.groups.map((g: any) => [g.selector, String(g.priority), g.summary])]);
        return 0;
      }
      case 'retention': {
        if (!v.run || rest.length) throw new UsageError('retention: give --run to remove expired data now');
        const j = await call('POST', 'api/privacy/retention/run', {});
        if (v.json) io.out(JSON.stringify(j, null, 2));
        else if (!j.devices.length) io.out('nothing past its retention');
        else {
          for (const d of j.devices) {
            io.out(`${d.deviceId}: removed seqs up to ${d.through} (${d.recordsDeleted} record row(s), ${d.blocksDeleted} message(s)); tombstone ${d.tombstone}`);
          }
        }
        return 0;
      }
      default:
        throw new UsageError(sub === undefined ? 'expected a subcommand: get, set, unset, groups or retention' : `unknown subcommand "${sub}"`);
    }
  });
}

export async function auditMain(argv: string[], io: Io = processIo): Promise<number> {
  return run('audit', AUDIT_HELP, io, async () => {
    const { values: v, positionals: p } = parse(argv, { ...CLIENT_OPTIONS, device: { type: 'string' }, limit: { type: 'string' } }, false);
    if (v.help) {
      io.out(AUDIT_HELP);
      return 0;
    }
    void p;
    if (v.device !== undefined && !isDeviceId(String(v.device))) throw new UsageError(`--device "${v.device}" is not a device id (16 characters a-z, 2-7)`);
    if (v.limit !== undefined && !/^\d{1,5}$/.test(String(v.limit))) throw new UsageError(`--limit "${v.limit}" must be a whole number`);
    const q = new URLSearchParams();
    if (v.device !== undefined) q.set('device', String(v.device));
    if (v.limit !== undefined) q.set('limit', String(v.limit));
    const { base, token } = client(v);
    const r = await api(base, token, 'GET', `api/audit${q.size ? `?${q}` : ''}`);
    if (r.status !== 200) throw new Error(errorOf(r.json, r.status));
    const entries = (r.json as { entries: any[] }).entries;
    if (v.json) io.out(JSON.stringify(entries, null, 2));
    else if (!entries.length) io.out('no disclosures recorded');
    else {
      table(io, [['TIME', 'DEVICE', 'TO', 'VIA', 'WHAT', 'LEVEL', 'PURPOSES'], ...entries.map((e) => [
        e.at, e.deviceId, e.operator ? `${e.audience} (${e.operator})` : e.audience, e.via,
        [e.kind, e.seq ? `${e.seq[0]}-${e.seq[1]}` : '', e.cid ?? ''].filter(Boolean).join(' '), e.level, e.purposes.join(',') || '-',
      ])]);
    }
    return 0;
  });
}
