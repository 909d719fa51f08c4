// `gridlet console` (host/cli/console.ts) against a host agent's pty: the script modes a technician's
// tooling uses, the text splitter behind the interactive mode, and tab-completion.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough, Readable } from 'node:stream';
import { completer, consoleMain, keptInHistory, TextReplies, type ConsoleIo } from '../../host/cli/console.js';
import { createHostAgent, type HostAgent } from '../../host/agent-host.js';

let host: HostAgent;

test.before(() => {
  host = createHostAgent({ brokers: ['mqtt://127.0.0.1:1'], consolePty: true, meter: 'sim', intervalMs: 50 });
  host.agent.start();
});

test.after(() => {
  host.stop();
});

async function runConsole(args: string[], input: string): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (b) => (out += b));
  stderr.on('data', (b) => (err += b));
  const io: ConsoleIo = { stdin: Readable.from([input]), stdout, stderr, env: {} };
  const code = await consoleMain(args, io);
  return { code, out, err };
}

test('script mode: one command per stdin line, the meter\'s replies without prompts, exit 1 after an ERR', async () => {
  const r = await runConsole([host.consolePty!.path], 'id\n# a comment\n\nrelay 1 on\nbuffer\n');
  assert.is(r.code, 1);
  const lines = r.out.split('\n');
  assert.equal(lines.slice(0, 4), [`id    ${host.agent.deviceId}`, `code  ${host.agent.identity.pairCode}`, 'OK',
    'ERR auth relay is a technician command: `auth <pin>` first']);
  assert.match(r.out, /capacity  \d+ bytes\n[\s\S]*dropped   0 readings\nOK\n$/);
  assert.not.match(r.out, /gridlet> /);
  const ok = await runConsole([host.consolePty!.path], 'id\n');
  assert.is(ok.code, 0);
});

test('--json: the session is switched to json and the meter\'s JSON lines pass through', async () => {
  const r = await runConsole([host.consolePty!.path, '--json'], 'id\nlink\n');
  assert.is(r.code, 0, r.err);
  const objs = r.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(objs[0], { data: { id: host.agent.deviceId, code: host.agent.identity.pairCode, model: 'gridlet-host', firmware: '0.1.0' } });
  assert.equal(objs[1], { ok: true });
  assert.is(objs[2].data.name, 'primary');
  assert.equal(objs[3], { ok: true });
  // A text-mode client after it switches the session back.
  const t = await runConsole([host.consolePty!.path], 'id\n');
  assert.is(t.out.split('\n')[2], 'OK');
});

test('the history keeps commands but not the PIN or a meter key typed with them', () => {
  assert.ok(keptInHistory('config set meter.type dlms'));
  assert.ok(keptInHistory('config get meter.key'));
  assert.ok(keptInHistory('readings 5'));
  assert.not.ok(keptInHistory('auth 90210'));
  assert.not.ok(keptInHistory('config set meter.key 00112233445566778899aabbccddeeff'));
  assert.not.ok(keptInHistory('config  set  meter.auth_key 00112233445566778899aabbccddeeff'));
});

test('a wrong path is reported with a hint, not a stack trace', async () => {
  const r = await runConsole(['/dev/does-not-exist'], 'id\n');
  assert.is(r.code, 1);
});

test('the reply splitter: prompts at line starts end a reply, streamed text passes at once', () => {
  const got: string[] = [];
  const t = new TextReplies((s) => got.push(`text:${s}`), (l) => got.push(`line:${l}`), () => got.push('prompt'));
  t.push('id    abc\r\nOK\r\ngrid');
  t.push('let> ');
  t.push('The answer ');
  t.push('is 42.\r\nOK\r\ngridlet> ');
  t.push('gridlet is a word\r\ngridlet> ');
  assert.equal(got, ['line:id    abc', 'line:OK', 'prompt', 'text:The answer ', 'text:is 42.', 'line:', 'line:OK', 'prompt',
    'line:gridlet is a word', 'prompt']);
});

test('tab-completion of command names and their first word', () => {
  assert.equal(completer('st'), [['status '], 'st']);
  assert.equal(completer('gu'), [['guests ', 'guest '], 'gu']);
  assert.equal(completer('json o'), [['on ', 'off '], 'o']);
  assert.equal(completer('relay l'), [['lock '], 'l']);
  assert.ok(completer('')[0].includes('reboot '));
});

test.run();
