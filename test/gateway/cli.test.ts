import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Io } from '../../host/cli/args.js';
import { devicesMain, pairMain } from '../../host/cli/devices.js';
import { gatewayMain } from '../../host/cli/gateway.js';
import { WireDevice } from './wire-device.js';
import { tempDir } from './support.js';

function capture(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
}

let child: ChildProcess;
let dir: string;
let ready: { mqtt: string; http: string; id: string };
const childErr: string[] = [];

test.before(async () => {
  dir = tempDir();
  child = spawn(process.execPath, ['--import', 'tsx', join('test/gateway/gateway-cli-child.ts'),
    '--data', dir, '--mqtt-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.on('data', (b) => childErr.push(String(b)));
  const line = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (b) => {
      buf += b;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(buf.slice(0, nl));
    });
    child.once('exit', (code) => reject(new Error(`gateway exited ${code}: ${childErr.join('')}`)));
  });
  const m = /^gateway ready mqtt=(mqtt:\/\/127\.0\.0\.1:\d+) http=(http:\/\/127\.0\.0\.1:\d+) id=([a-z2-7]{16})$/.exec(line);
  if (!m) throw new Error(`unexpected ready line: ${line}`);
  ready = { mqtt: m[1], http: m[2], id: m[3] };
});

test.after(async () => {
  if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('gridlet pair pairs a device and prints one line; a wrong code fails with the reason', async () => {
  const d = new WireDevice('gl');
  await d.connect(ready.mqtt);
  await d.hello();
  await new Promise((r) => setTimeout(r, 200));
  const bad = capture();
  const wrong = d.secret.startsWith('a') ? 'BBBBB-BBBBB' : 'AAAAA-AAAAA';
  assert.is(await pairMain([d.id, wrong, '--gateway', ready.http], bad), 1);
  assert.equal(bad.stderr, [`gridlet pair: pair code does not match device ${d.id.slice(0, 4)}…; check the label`]);
  const ok = capture();
  assert.is(await pairMain([d.id, d.code, '--gateway', ready.http], ok), 0, ok.stderr.join('\n'));
  assert.equal(ok.stdout, [`paired ${d.id} (wire-test 0.0.1-test) with gateway ${ready.id}`]);
  const again = capture();
  assert.is(await pairMain([d.id, d.code, '--gateway', ready.http, '--json'], again), 1);
  assert.match(JSON.parse(again.stdout.join('\n')).error, /already paired/);

  const list = capture();
  assert.is(await devicesMain(['--gateway', ready.http, '--json'], list), 0);
  const devices = JSON.parse(list.stdout.join('\n'));
  assert.is(devices.length, 1);
  assert.is(devices[0].id, d.id);
  assert.is(devices[0].state, 'paired');
  for (const k of ['id', 'state', 'gateway', 'labels', 'model', 'firmware', 'lastSeen', 'ackedSeq']) assert.ok(k in devices[0], k);
  const table = capture();
  assert.is(await devicesMain(['--gateway', ready.http], table), 0);
  assert.match(table.stdout[0], /^ID\s+STATE\s+ONLINE\s+LAST READING/);
  assert.match(table.stdout[1], new RegExp(`^${d.id}\\s+paired\\s+(yes|no)\\s+-`));
  await d.close();
});

test('gridlet pair --csv pairs each line and reports failures', async () => {
  const a = new WireDevice('gl');
  await a.connect(ready.mqtt);
  await a.hello();
  await new Promise((r) => setTimeout(r, 200));
  const csv = join(dir, 'pairs.csv');
  writeFileSync(csv, `deviceId,code\n${a.id},${a.code}\nabcdefghijklmnop,AAAAA-AAAAA\n`);
  const io = capture();
  assert.is(await pairMain(['--csv', csv, '--gateway', ready.http], io), 1);
  assert.equal(io.stdout, ['paired 1, refused 0 (403), unknown 1 (404), timeout 0']);
  assert.match(io.stderr[0], /pairs\.csv:3: abcdefghijklmnop: unknown \(404\): no Hello seen from device abcdefghijklmnop/);
  await a.close();
});

test('usage errors exit 2 with help; an unreachable gateway is named', async () => {
  const u = capture();
  assert.is(await pairMain(['onlyone'], u), 2);
  assert.match(u.stderr.join('\n'), /expected <deviceId> <code>[\s\S]*usage: gridlet pair/);
  const h = capture();
  assert.is(await pairMain(['--help'], h), 0);
  assert.match(h.stdout[0], /^usage: gridlet pair/);
  const down = capture();
  assert.is(await devicesMain(['--gateway', 'http://127.0.0.1:1'], down), 1);
  assert.match(down.stderr[0], /cannot reach the gateway at http:\/\/127\.0\.0\.1:1/);
  const pg = capture();
  assert.is(await gatewayMain(['--data', join(dir, 'x'), '--store', 'postgres://127.0.0.1:1/gridlet'], pg), 1);
  assert.match(pg.stderr[0], /cannot connect to PostgreSQL at postgres:\/\/127\.0\.0\.1:1\/gridlet/);
  const mesh = capture();
  assert.is(await gatewayMain(['--data', join(dir, 'm'), '--mqtt-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0',
    '--peer', '/ip4/127.0.0.1/tcp/1'], mesh), 1);
  assert.match(mesh.stderr[0], /--peer "\/ip4\/127\.0\.0\.1\/tcp\/1" is not a multiaddr ending in \/p2p\/<peer id>/);
  for (const bad of ['500', '1.5', 'lots']) {
    const headroom = capture();
    assert.is(await gatewayMain(['--data', join(dir, 'h'), '--heap-headroom', bad], headroom), 2, bad);
    assert.match(headroom.stderr[0], new RegExp(`--heap-headroom must be a whole number of percent from 0 to 300, not "${bad.replace('.', '\\.')}"`));
  }
  const unknown = capture();
  assert.is(await gatewayMain(['--frobnicate'], unknown), 2);
  const wide = capture();
  assert.is(await gatewayMain(['--data', join(dir, 'y'), '--mqtt-listen', '127.0.0.1:0', '--http-listen', '0.0.0.0:0'], wide), 1);
  assert.match(wide.stderr[0], /give --api-token-file/);
});

/** Starts `gridlet gateway` in a child with `args`; resolves with the child, its HTTP URL and its stderr. */
async function gatewayChild(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ c: ChildProcess; http: string; err: string[] }> {
  const err: string[] = [];
  const c = spawn(process.execPath, ['--import', 'tsx', join('test/gateway/gateway-cli-child.ts'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  c.stderr!.on('data', (b) => err.push(String(b)));
  const http = await new Promise<string>((resolve, reject) => {
    let buf = '';
    c.stdout!.on('data', (b) => {
      buf += b;
      const m = / http=(\S+) /.exec(buf);
      if (m) resolve(m[1]);
    });
    c.once('exit', (code) => reject(new Error(`gateway exited ${code}: ${err.join('')}`)));
  });
  return { c, http, err };
}

test('--api-token-file keeps the token out of the process list; --api-token warns that it is in it', async () => {
  const token = 'file-token-0123456789abcdef';
  const file = join(dir, 'token');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  const g = await gatewayChild(['--data', join(dir, 'tf'), '--mqtt-listen', '127.0.0.1:0', '--http-listen', '0.0.0.0:0', '--api-token-file', file, '--log-level', 'warn']);
  try {
    const cmdline = readFileSync(`/proc/${g.c.pid}/cmdline`, 'utf8');
    assert.not.ok(cmdline.includes(token), 'the token is not in /proc/PID/cmdline');
    const port = new URL(g.http).port;
    assert.is((await fetch(`http://127.0.0.1:${port}/api/devices`)).status, 401);
    assert.is((await fetch(`http://127.0.0.1:${port}/api/devices`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    assert.not.match(g.err.join(''), /warning/);
  } finally {
    g.c.kill('SIGKILL');
  }
  const inline = capture();
  const { apiToken } = await import('../../host/cli/client.js');
  assert.is(apiToken({ 'api-token': 'abc' }, inline.err), 'abc');
  assert.match(inline.stderr[0], /--api-token puts the token in the process list.*use --api-token-file FILE/);
  const both = capture();
  assert.is(await gatewayMain(['--api-token', 'a', '--api-token-file', file], both), 2);
  assert.match(both.stderr[0], /either --api-token-file FILE or --api-token TOKEN/);
  const empty = join(dir, 'empty');
  writeFileSync(empty, '\n');
  const e = capture();
  assert.is(await gatewayMain(['--api-token-file', empty], e), 2);
  assert.match(e.stderr[0], /is empty: put the token on its first line/);
  const missingFile = capture();
  assert.is(await gatewayMain(['--api-token-file', join(dir, 'nope')], missingFile), 2);
  assert.match(missingFile.stderr[0], /cannot be read \(ENOENT\)/);
});

test('SIGTERM closes the gateway cleanly (exit 0)', async () => {
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  assert.is(await exited, 0, childErr.join(''));
});

test.run();
