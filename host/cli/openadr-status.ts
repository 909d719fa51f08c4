// `gridlet dr vtn`: the OpenADR 3 VTNs a gateway is a VEN of (GET /api/openadr), their link and events.

import { parse, table, UsageError, type Io } from './args.js';
import { api, client, errorOf } from './client.js';

interface EventView {
  key: string; id: string | null; name: string | null; program: string | null; programID: string; state: string;
  start: string | null; end: string | null; devices: string[]; error: string | null;
  report: { id: string | null; intervals: number; missing: number } | null;
}
interface VtnView {
  vtn: string; version: string; venName: string; venId: string | null; link: string; lastPoll: string | null; resources: number;
  webhook: { state: string }; failing: { kind: string; count: number; message: string }[]; events: EventView[];
}

export async function drVtn(argv: string[], io: Io, help: string): Promise<number> {
  const { values: v, positionals: p } = parse(argv, { gateway: { type: 'string' }, 'api-token': { type: 'string' }, json: { type: 'boolean' } }, true);
  if (v.help) {
    io.out(help);
    return 0;
  }
  if (p.length) throw new UsageError(`unexpected "${p[0]}"; gridlet dr vtn takes no arguments`);
  const { base, token } = client(v);
  const r = await api(base, token, 'GET', 'api/openadr');
  if (r.status === 404) throw new Error('this gateway has no OpenADR VEN (GET /api/openadr); update it');
  if (r.status !== 200) throw new Error(errorOf(r.json, r.status));
  if (v.json) {
    io.out(JSON.stringify(r.json, null, 2));
    return 0;
  }
  const vtns = (r.json as { vtns: VtnView[] }).vtns;
  if (!vtns.length) {
    io.out('this gateway is not connected to a VTN (start it with --openadr-vtn URL --openadr-client-id ID)');
    return 0;
  }
  for (const x of vtns) {
    io.out(`${x.vtn}  OpenADR ${x.version}  VEN ${x.venName}${x.venId ? ` (${x.venId})` : ''}  link ${x.link}  resources ${x.resources}  webhook ${x.webhook.state}  last poll ${x.lastPoll ?? '-'}`);
    for (const f of x.failing) io.out(`  failing: ${f.kind} ×${f.count}: ${f.message}`);
    if (!x.events.length) {
      io.out('  (no events)');
      continue;
    }
    const rows = [['  EVENT', 'PROGRAM', 'STATE', 'START', 'END', 'METERS', 'REPORT']];
    for (const e of x.events) {
      rows.push([`  ${e.id ?? e.key}${e.name ? ` ${e.name}` : ''}`, e.program ?? e.programID, e.error ? `invalid: ${e.error}` : e.state, e.start ?? '-', e.end ?? '-',
        String(e.devices.length), e.report ? `${e.report.intervals} interval(s)${e.report.missing ? `, ${e.report.missing} missing` : ''}` : '-']);
    }
    table(io, rows);
  }
  return 0;
}
