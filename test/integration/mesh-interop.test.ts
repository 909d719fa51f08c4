// Three `gridlet gateway` processes of one operator (an operator key made with `gridlet operator init`,
// --operator-key) and a fourth of a partner operator (--trust-operator both ways) form a mesh on loopback
// (--mesh-listen, --peer). The partner's gateway pairs a meter the first operator holds: a conflict. Every
// message they serve is validated by an independent checker written in Python from MESH.md and the
// protocol documents alone (test/interop/mesh_check.py: PyNaCl + cbor2 under /usr/bin/python3, which
// .ci/run installs) — identities with their enrollment and XEdDSA proof, the registry merged by version
// 2's rules and compared with what each gateway reports —, and `gridlet verify` walks a device's history
// from another gateway than the one that accepted it.
import '../../gateway/mesh/polyfill.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useRandom } from '../../firmware/core/crypto.js';
import { Body } from '../../firmware/core/wire/bodies.js';
import { cidOf, cidText, parseCidText } from '../../gateway/mesh/cid.js';
import { WireDevice } from '../gateway/wire-device.js';
import { startGatewayChild, type GatewayChild } from '../../scripts/scale.js';

useRandom({ fill: (b) => randomFillSync(b) });
const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
const PYTHON = '/usr/bin/python3';
const T0 = 1_700_000_000;

function pythonMissing(): string | null {
  const r = spawnSync(PYTHON, ['-c', 'import nacl.signing, cbor2'], { encoding: 'utf8', timeout: 30_000 });
  if (r.error) return `${PYTHON} cannot run: ${r.error.message}`;
  if (r.status !== 0) return `${PYTHON} lacks python3-nacl / python3-cbor2: ${(r.stderr ?? '').trim().split('\n').pop()}`;
  return null;
}

type Gw = GatewayChild & { mesh: string };

async function startGateway(peers: string[], trust: string[]): Promise<Gw> {
  const g = await startGatewayChild({ extra: ['--mesh-listen', '/ip4/127.0.0.1/tcp/0', ...peers.flatMap((p) => ['--peer', p]), ...trust] });
  if (!g.mesh) throw new Error(`gateway's ready line names no mesh address:\n${g.output()}`);
  return Object.assign(g, { mesh: g.mesh });
}

async function api(g: Gw, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(g.httpUrl + path, {
    method, headers: body === undefined && method === 'GET' ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

async function eventually(f: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function pair(g: Gw): Promise<WireDevice> {
  const d = new WireDevice('gl');
  await d.connect(g.mqttUrl);
  await d.hello();
  await eventually(async () => (await api(g, 'GET', `/api/devices/${d.id}`)).status === 200, 5000, 'Hello seen');
  const r = await api(g, 'POST', '/api/pairings', { deviceId: d.id, code: d.code });
  assert.is(r.status, 201, JSON.stringify(r.json));
  await d.close();
  await d.connect(g.mqttUrl, { credentials: true });
  return d;
}

function run(cmd: string, args: string[]): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    p.stderr.setEncoding('utf8').on('data', (c: string) => { out += c; });
    const t = setTimeout(() => p.kill('SIGKILL'), 120_000);
    p.on('close', (status) => { clearTimeout(t); resolve({ status, out }); });
  });
}

const missing = pythonMissing();
const maybe = missing ? test.skip : test;
if (missing) console.log(`skipping the Python mesh checker: ${missing}`);

maybe('every message four meshed gateways of two operators serve passes the independent Python checker; gridlet verify agrees', async () => {
  const gws: Gw[] = [];
  const devices: WireDevice[] = [];
  const keys = mkdtempSync(join(tmpdir(), 'gridlet-operators-'));
  try {
    for (const name of ['utility', 'coop']) {
      const r = await run(process.execPath, ['bin/gridlet.js', 'operator', 'init', '--out', join(keys, `${name}.key`)]);
      assert.is(r.status, 0, r.out);
      assert.match(r.out, new RegExp(`^operator op[a-z2-7]{52} name=${name}$`, 'm'));
    }
    const utility = ['--operator-key', join(keys, 'utility.key'), '--trust-operator', join(keys, 'coop.key.pub')];
    const a = await startGateway([], utility);
    gws.push(a);
    const b = await startGateway([a.mesh], utility);
    gws.push(b);
    const c = await startGateway([a.mesh, b.mesh], utility);
    gws.push(c);
    const d4 = await startGateway([a.mesh, b.mesh, c.mesh], ['--operator-key', join(keys, 'coop.key'), '--trust-operator', join(keys, 'utility.key.pub')]);
    gws.push(d4);
    for (const g of gws) await eventually(async () => (await api(g, 'GET', '/api/mesh')).json.gateways.length === 4, 20_000, 'identities');

    const d = await pair(a);
    devices.push(d);
    await d.send({ type: Body.readings, first: 1, records: [[T0, 1, 5000], [T0, 3, -20], [0, 5, 230_000]] });
    await d.send({ type: Body.event, seq: 4, t: T0 + 5, kind: 'tamper', data: { why: 'cover opened', raw: new Uint8Array([1, 2, 3]), n: 7 } });
    await d.send({ type: Body.gap, first: 5, last: 9, reason: 'full' });
    await d.send({ type: Body.readings, first: 10, records: [[T0 + 10, 2, 42]] });
    await d.waitAck(10);
    const gone = await pair(b);
    devices.push(gone);
    await gone.send({ type: Body.readings, first: 1, records: [[T0, 1, 1]] });
    await gone.waitAck(1);
    assert.is((await api(c, 'DELETE', `/api/devices/${gone.id}`)).status, 200);
    // The partner's gateway pairs a meter the utility holds (a clone of it Hellos there): a conflict.
    const clone = new WireDevice('gl');
    Object.assign(clone, { keys: d.keys, id: d.id, secret: d.secret, code: d.code });
    devices.push(clone);
    await clone.connect(d4.mqttUrl);
    await clone.hello();
    await eventually(async () => (await api(d4, 'GET', `/api/devices/${d.id}`)).status === 200, 5000, 'Hello seen at the partner');
    assert.is((await api(d4, 'POST', '/api/pairings', { deviceId: d.id, code: d.code })).status, 201);
    for (const g of gws) {
      await eventually(async () => {
        const x = (await api(g, 'GET', `/api/devices/${d.id}`)).json;
        return x?.state === 'paired' && x.gateway === a.id && x.conflicts?.length === 1 && x.conflicts[0].gateway === d4.id;
      }, 15_000, `the conflict shown at ${g.id}, the meter still the utility's`);
    }

    const headsAt = async (g: Gw, id: string) => (await api(g, 'GET', `/api/mesh/heads/${id}`)).json?.cid;
    await eventually(async () => {
      // The utility's gateways hold the chain; the partner none of it (the meter's policy gives it nothing).
      const h = await Promise.all([a, b, c].map((g) => headsAt(g, d.id)));
      const s = await Promise.all(gws.map(async (g) => (await api(g, 'GET', `/api/devices/${gone.id}`)).json?.state));
      return h.every((x) => x && x === h[0]) && s.every((x) => x === 'revoked') && (await headsAt(d4, d.id)) === undefined;
    }, 15_000, 'chains and registry everywhere');

    const check = await run(PYTHON, ['test/interop/mesh_check.py', ...gws.map((g) => g.httpUrl)]);
    assert.is(check.status, 0, check.out);
    assert.match(check.out, /mesh check: \d+ messages verified from 4 gateway\(s\), \d+ device registries merged, 0 problem\(s\)/);
    console.log(check.out.trim());

    const v = await run(process.execPath, ['bin/gridlet.js', 'verify', d.id, '--gateway', c.httpUrl]);
    assert.is(v.status, 0, v.out);
    assert.match(v.out, /seqs covered: 1-10; declared lost by the meter: 5-9; holes: none/);
    assert.match(v.out, /^ok: /m);
    // The partner holds no readings of the utility's meter (its policy shares nothing with it).
    const vp = await run(process.execPath, ['bin/gridlet.js', 'verify', d.id, '--gateway', d4.httpUrl]);
    assert.match(vp.out, /no history/);

    // The checker is not vacuous: a block whose signature was changed (served under its new CID) fails it.
    const index = (await api(a, 'GET', '/api/mesh')).json;
    const real = new Uint8Array(await (await fetch(`${a.httpUrl}/api/mesh/blocks/${index.identity}`)).arrayBuffer());
    const forged = new Uint8Array(real);
    forged[forged.length - 1] ^= 1;
    const forgedCid = cidText(cidOf(forged));
    assert.ok(parseCidText(forgedCid));
    const fake = createServer((req, res) => {
      if (req.url === '/api/mesh') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ...index, gateways: [{ ...index.gateways[0], cid: forgedCid }], registry: [], heads: {} }));
      } else if (req.url === `/api/mesh/blocks/${forgedCid}`) {
        res.writeHead(200, { 'content-type': 'application/cbor' });
        res.end(forged);
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
    const port = (fake.address() as { port: number }).port;
    const bad = await run(PYTHON, ['test/interop/mesh_check.py', `http://127.0.0.1:${port}`]);
    fake.close();
    assert.is(bad.status, 1, bad.out);
    assert.match(bad.out, /signature does not verify/);
  } finally {
    for (const d of devices) await d.close().catch(() => {});
    for (const g of gws) await g.stop();
    rmSync(keys, { recursive: true, force: true });
  }
});

test.run();
