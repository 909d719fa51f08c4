// The policy on the meter: a host agent paired with a gateway gets its sharing policy as
// config key `privacy` at pairing and on every change; a technician reads it with `config get privacy`
// through `gridlet console` on the agent's pty.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough, Readable } from 'node:stream';
import { join } from 'node:path';
import { consoleMain, type ConsoleIo } from '../../host/cli/console.js';
import { createHostAgent, type HostAgent } from '../../host/agent-host.js';
import { sleep, startTestGateway, type TestGateway } from './support.js';

let t: TestGateway;
let host: HostAgent;

test.before(async () => {
  t = await startTestGateway();
  host = createHostAgent({ dataDir: join(t.dir, 'agent'), brokers: [t.gw.mqttUrl], topicPrefix: t.prefix, consolePty: true, meter: 'sim', intervalMs: 200 });
  host.agent.start();
});

test.after(async () => {
  host.stop();
  await t.close();
});

async function consoleLine(line: string): Promise<{ code: number; out: string }> {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (b) => (out += b));
  const io: ConsoleIo = { stdin: Readable.from([line + '\n']), stdout, stderr: new PassThrough(), env: {} };
  const code = await consoleMain([host.consolePty!.path], io);
  return { code, out };
}

/** `config get privacy` on the console until it prints `want` (the config travels as a kept downlink). */
async function privacyOnConsole(want: string, ms = 15_000): Promise<string> {
  const end = Date.now() + ms;
  let last = '';
  for (;;) {
    const r = await consoleLine('config get privacy');
    last = r.out;
    if (r.code === 0 && r.out === `privacy = ${want}\nOK\n`) return r.out;
    if (Date.now() > end) throw new Error(`the console never showed "${want}"; last: ${JSON.stringify(last)}`);
    await sleep(200);
  }
}

test('at pairing the meter gets the default policy; a policy set over HTTP reaches `config get privacy`', async () => {
  const before = await consoleLine('config get privacy');
  assert.is(before.code, 1);
  assert.match(before.out, /^ERR notfound config privacy is not set/);

  const a = host.agent;
  for (const end = Date.now() + 15_000; ;) {
    const r = await t.api('POST', '/api/pairings', { deviceId: a.deviceId, code: a.identity.pairCode });
    if (r.status === 201) break;
    if (Date.now() > end) throw new Error(`pairing failed: ${r.status} ${r.text}`);
    await sleep(200);
  }
  await privacyOnConsole('operator=full(grid-operations,billing) peers=none mesh=none retention=396d');

  const put = await t.api('PUT', `/api/devices/${a.deviceId}/privacy`, {
    operator: 'full', peers: { 'community-grid': { level: '15min', purposes: ['research'] } }, mesh: 'daily', retentionDays: 90,
  });
  assert.is(put.status, 200, put.text);
  const want = 'operator=full(grid-operations) peers=community-grid:15min(research) mesh=daily(grid-operations) retention=90d';
  assert.is(put.json.summary, want);
  assert.is(await privacyOnConsole(want), `privacy = ${want}\nOK\n`);

  // Back to the default: the technician sees that too.
  assert.is((await t.api('DELETE', `/api/devices/${a.deviceId}/privacy`, {})).status, 200);
  await privacyOnConsole('operator=full(grid-operations,billing) peers=none mesh=none retention=396d');
});

test.run();
