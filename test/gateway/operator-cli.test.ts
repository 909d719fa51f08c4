// `gridlet operator` and the gateway's keys (docs/operator.md "Operators and trust"): an operator key and
// its public file, a gateway enrolled offline by certificate (it never holds the operator key), a mesh
// key rotated (same gateway id, new peer id; a certificate for the old key is refused with the fix),
// and the errors a wrong combination gets.
import '../../gateway/mesh/polyfill.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Io } from '../../host/cli/args.js';
import { gatewayMain } from '../../host/cli/gateway.js';
import { operatorMain } from '../../host/cli/operator.js';
import { startGateway } from '../../gateway/gateway.js';
import { startTestGateway, tempDir } from './support.js';

function capture(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
}

const dir = tempDir();

test('operator init makes a key (600) and a public file, prints the id, never overwrites; show reads either', async () => {
  const key = join(dir, 'acme.key');
  const io = capture();
  assert.is(await operatorMain(['init', '--out', key], io), 0, io.stderr.join('\n'));
  const m = /^operator (op[a-z2-7]{52}) name=acme$/.exec(io.stdout[0]);
  assert.ok(m, io.stdout[0]);
  assert.is(statSync(key).mode & 0o777, 0o600);
  assert.equal(JSON.parse(readFileSync(`${key}.pub`, 'utf8')), { gridlet: 'operator', version: 1, id: m![1], name: 'acme' });
  assert.not.match(readFileSync(`${key}.pub`, 'utf8'), /seed/);
  const again = capture();
  assert.is(await operatorMain(['init', '--out', key], again), 1);
  assert.match(again.stderr[0], /already exists; an operator key is never overwritten/);
  for (const f of [key, `${key}.pub`]) {
    const show = capture();
    assert.is(await operatorMain(['show', f, '--json'], show), 0);
    assert.equal(JSON.parse(show.stdout[0]), { id: m![1], name: 'acme' });
  }
  const badName = capture();
  assert.is(await operatorMain(['init', '--out', join(dir, 'x.key'), '--name', 'no spaces'], badName), 2);
  assert.match(badName.stderr[0], /operator name "no spaces" must be/);
  const none = capture();
  assert.is(await operatorMain(['enroll', 'req'], none), 2);
  assert.match(none.stderr[0], /give --key FILE/);
});

test('a gateway enrolled offline: its request, the certificate, and the gateway running on it without the key', async () => {
  const key = join(dir, 'utility.key');
  assert.is(await operatorMain(['init', '--out', key, '--name', 'utility'], capture()), 0);
  const id = JSON.parse(readFileSync(`${key}.pub`, 'utf8')).id;
  const data = join(dir, 'gw1');
  const req = join(dir, 'gw1.req');
  const r = capture();
  assert.is(await gatewayMain(['identity', '--data', data, '--out', req], r), 0, r.stderr.join('\n'));
  const request = JSON.parse(readFileSync(req, 'utf8'));
  assert.match(r.stdout[0], new RegExp(`^gateway ${request.gateway} peer ${request.peer} \\(enrollment request: `));
  assert.not.match(readFileSync(req, 'utf8'), /secret|seed/i, 'a request holds public names only');
  const cert = join(dir, 'gw1.cert');
  const e = capture();
  assert.is(await operatorMain(['enroll', req, '--key', key, '--out', cert], e), 0, e.stderr.join('\n'));
  assert.match(e.stdout[0], new RegExp(`enrolled gateway ${request.gateway} .* for operator ${id} name=utility`));
  const t = await startTestGateway({ dataDir: data, operatorCert: cert });
  try {
    assert.is(t.gw.operator, id);
    const mesh = (await t.api('GET', '/api/mesh')).json;
    assert.equal([mesh.operator, mesh.operatorName], [id, 'utility']);
    assert.equal(mesh.gateways.map((g: { gateway: string; operator: string }) => [g.gateway, g.operator]), [[request.gateway, id]]);
  } finally {
    await t.stop();
  }
  // The certificate of another gateway is refused, naming the fix.
  const other = join(dir, 'gw2');
  assert.is(await gatewayMain(['identity', '--data', other, '--json'], capture()), 0);
  const err = await startGateway({ dataDir: other, mqttListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', operatorCert: cert }).catch((x: Error) => x);
  assert.match(String(err), new RegExp(`--operator-cert .* enrols gateway ${request.gateway} .* not this gateway .* enrol it again`));
  // A tampered certificate does not hold.
  const bad = join(dir, 'bad.cert');
  writeFileSync(bad, readFileSync(cert, 'utf8').replace('"name": "utility"', '"name": "u2"'));
  const err2 = await startGateway({ dataDir: data, mqttListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', operatorCert: bad }).catch((x: Error) => x);
  assert.match(String(err2), /does not hold: the operator's signature does not verify/);
  // Key and certificate together, or a name that contradicts the key: refused.
  const both = await startGateway({ dataDir: data, operatorKey: key, operatorCert: cert }).catch((x: Error) => x);
  assert.match(String(both), /either --operator-key FILE .* or --operator-cert FILE/);
  const renamed = await startGateway({ dataDir: data, operatorKey: key, operator: 'other' }).catch((x: Error) => x);
  assert.match(String(renamed), /--operator other differs from the operator's name in its operator key \(utility\)/);

  // Rotation: a new mesh key and peer id, the same gateway id; the old certificate no longer fits.
  const rot = capture();
  assert.is(await gatewayMain(['rotate-key', '--data', data, '--json'], rot), 0, rot.stderr.join('\n'));
  const after = JSON.parse(rot.stdout[0]);
  assert.is(after.gateway, request.gateway);
  assert.is.not(after.peer, request.peer);
  const stale = await startGateway({ dataDir: data, mqttListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', operatorCert: cert }).catch((x: Error) => x);
  assert.match(String(stale), /not this gateway .* mesh key/);
  const req2 = join(dir, 'gw1b.req');
  assert.is(await gatewayMain(['identity', '--data', data, '--out', req2], capture()), 0);
  const cert2 = join(dir, 'gw1b.cert');
  assert.is(await operatorMain(['enroll', req2, '--key', key, '--out', cert2], capture()), 0);
  const t2 = await startTestGateway({ dataDir: data, operatorCert: cert2 });
  try {
    const mesh = (await t2.api('GET', '/api/mesh')).json;
    assert.is(mesh.peer, after.peer);
    assert.is(mesh.gateway, request.gateway);
  } finally {
    await t2.close();
  }
});

test('trust list entries: an id, a public file, NAME=…; anything else is refused with what it should be', async () => {
  const { parseTrust } = await import('../../gateway/mesh/operator.js');
  const key = join(dir, 'coop.key');
  assert.is(await operatorMain(['init', '--out', key, '--name', 'coop'], capture()), 0);
  const pub = JSON.parse(readFileSync(`${key}.pub`, 'utf8'));
  assert.equal(parseTrust(`${key}.pub`).name, 'coop');
  assert.equal(parseTrust(pub.id).name, undefined);
  assert.equal(parseTrust(`partner=${pub.id}`).name, 'partner');
  assert.equal(parseTrust(`partner=${key}.pub`), { id: pub.id, publicKey: parseTrust(pub.id).publicKey, name: 'partner' });
  assert.throws(() => parseTrust('coop'), /neither an operator id .* nor a file/);
  assert.throws(() => parseTrust(`op${'a'.repeat(51)}`), /neither an operator id/);
  const usage = capture();
  assert.is(await gatewayMain(['--data', join(dir, 'gw3'), '--mqtt-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--trust-operator', 'nobody'], usage), 1);
  assert.match(usage.stderr[0], /--trust-operator "nobody" is neither an operator id/);
});

test.run();
