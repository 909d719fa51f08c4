// `gridlet revoke` and `gridlet labels`: the dashboard's revocation and label editing, as clients of the
// gateway's HTTP API (DELETE /api/devices/:id, PUT /api/devices/:id/labels). Exit codes: 0 done,
// 1 failed (the reason is printed), 2 usage error.

import { pool, Progress } from './progress.js';
import { parse, processIo, run, UsageError, type Io } from './args.js';
import { api, CLIENT_HELP, CLIENT_OPTIONS, client, errorOf } from './client.js';

// ------------------------------------------------------------------ gridlet revoke

const REVOKE_HELP = `usage: gridlet revoke <deviceId>... [--concurrency N] [--gateway URL] [--api-token-file FILE] [--json]

Revokes paired devices: the gateway refuses their frames from now on and sends each an unpair (kept
until the device has it); on a mesh every gateway refuses them within seconds. A revoked device can
be paired again with its code. Several ids are revoked a few at a time, with a progress bar.

  --concurrency N   revocations at once (1 to 64, default 8)
${CLIENT_HELP}
  --json            print one result per device: {"deviceId", "status", "state"?, "error"?}`;

interface RevokeResult { deviceId: string; status: number; state?: string; error?: string }

export async function revokeMain(argv: string[], io: Io = processIo): Promise<number> {
  return run('revoke', REVOKE_HELP, io, async () => {
    const { values: v, positionals: ids } = parse(argv, { ...CLIENT_OPTIONS, concurrency: { type: 'string' } }, true);
    if (v.help) {
      io.out(REVOKE_HELP);
      return 0;
    }
    if (!ids.length) throw new UsageError('expected one or more device ids');
    const concurrency = v.concurrency === undefined ? 8 : Number(v.concurrency);
    if (!/^\d+$/.test(String(v.concurrency ?? '8')) || concurrency < 1 || concurrency > 64) {
      throw new UsageError(`--concurrency must be a whole number from 1 to 64, not "${v.concurrency}"`);
    }
    const { base, token } = client(v);
    const unique = [...new Set(ids)];
    const progress = new Progress({ label: 'revoking', total: unique.length, sink: unique.length > 1 ? io.progress : undefined, quiet: v.json === true });
    const results = await pool(unique, concurrency, async (id): Promise<RevokeResult> => {
      const r = await api(base, token, 'DELETE', `api/devices/${encodeURIComponent(id)}`);
      const res: RevokeResult = r.status === 200
        ? { deviceId: id, status: 200, state: (r.json as { state: string }).state }
        : { deviceId: id, status: r.status, error: errorOf(r.json, r.status) };
      progress.tick(r.status === 200);
      if (!v.json) {
        const line = res.error ? `gridlet revoke: ${id}: ${res.error}` : undefined;
        if (line && !progress.note(line)) io.err(line);
      }
      return res;
    });
    progress.finish();
    if (v.json) io.out(JSON.stringify(results, null, 2));
    else {
      for (const r of results) if (!r.error) io.out(`revoked ${r.deviceId}`);
      if (results.length > 1) io.out(`revoked ${results.filter((r) => !r.error).length} of ${results.length}`);
    }
    return results.every((r) => r.status === 200) ? 0 : 1;
  });
}

// ------------------------------------------------------------------ gridlet labels

const LABELS_HELP = `usage: gridlet labels <deviceId> [key=value | key-]... [--replace] [--gateway URL] [--api-token-file FILE] [--json]

Shows or edits a paired device's labels; groups of devices are label selectors (--label key=value in
gridlet devices, guest deploy and dr send). key=value sets a label, key- removes one; the others stay
unless --replace is given. Without edits, prints the labels.

  --replace         the device's labels become exactly those given
${CLIENT_HELP}
  --json            print the labels as a JSON object`;

export async function labelsMain(argv: string[], io: Io = processIo): Promise<number> {
  return run('labels', LABELS_HELP, io, async () => {
    const { values: v, positionals: p } = parse(argv, { ...CLIENT_OPTIONS, replace: { type: 'boolean' } }, true);
    if (v.help) {
      io.out(LABELS_HELP);
      return 0;
    }
    const [id, ...edits] = p;
    if (!id) throw new UsageError('expected <deviceId> [key=value | key-]...');
    const set: { [k: string]: string } = {};
    const remove: string[] = [];
    for (const e of edits) {
      const eq = e.indexOf('=');
      if (eq > 0) set[e.slice(0, eq)] = e.slice(eq + 1);
      else if (e.endsWith('-') && e.length > 1) remove.push(e.slice(0, -1));
      else throw new UsageError(`"${e}" is neither key=value (set a label) nor key- (remove one)`);
    }
    if (v.replace && remove.length) throw new UsageError('--replace sets the labels given; key- does not apply');
    const { base, token } = client(v);
    const path = `api/devices/${encodeURIComponent(id)}`;
    const cur = await api(base, token, 'GET', path);
    if (cur.status !== 200) throw new Error(errorOf(cur.json, cur.status));
    let labels = (cur.json as { labels: { [k: string]: string } }).labels;
    if (edits.length || v.replace) {
      const next: { [k: string]: string } = v.replace ? { ...set } : { ...labels, ...set };
      for (const k of remove) {
        if (!(k in next)) throw new Error(`device ${id} has no label "${k}"`);
        delete next[k];
      }
      const r = await api(base, token, 'PUT', `${path}/labels`, { labels: next });
      if (r.status !== 200) throw new Error(errorOf(r.json, r.status));
      labels = (r.json as { labels: { [k: string]: string } }).labels;
    }
    if (v.json) io.out(JSON.stringify(labels, null, 2));
    else {
      const text = Object.entries(labels).map(([k, x]) => `${k}=${x}`).join(' ');
      io.out(text ? `${id}: ${text}` : `${id}: no labels`);
    }
    return 0;
  });
}
