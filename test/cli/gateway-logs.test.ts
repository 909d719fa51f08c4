// `gridlet gateway` as a service manager runs it: stdout carries only the ready line, stderr one JSON
// object per log entry, from start to a clean stop.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { type Io } from '../../host/cli/args.js';
import { gatewayMain } from '../../host/cli/gateway.js';
import { tempDir } from '../gateway/support.js';

test('logs are JSON lines on stderr, from "gateway ready" to "gateway stopped"; stdout has only the ready line', async () => {
  const dir = tempDir();
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/gateway/gateway-cli-child.ts',
      '--data', dir, '--mqtt-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (b) => (out += b));
    child.stderr!.on('data', (b) => (err += b));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const deadline = Date.now() + 30_000;
    while (!out.includes('\n') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /^gateway ready mqtt=\S+ http=\S+ id=[a-z2-7]{16}\n$/, err);
    child.kill('SIGTERM');
    assert.is(await exited, 0, err);
    assert.is(out.split('\n').length, 2, out);
    const entries = err.trim().split('\n').map((l) => JSON.parse(l) as { level: string; time: string; msg: string });
    const msgs = entries.map((e) => e.msg);
    assert.ok(msgs.includes('gateway ready'), msgs.join(' | '));
    assert.ok(msgs.includes('embedded MQTT broker listening'), msgs.join(' | '));
    assert.is(msgs[msgs.length - 1], 'gateway stopped');
    assert.ok(msgs.indexOf('closing') < msgs.indexOf('gateway stopped'));
    for (const e of entries) {
      assert.ok(['debug', 'info', 'warn', 'error'].includes(e.level), e.level);
      assert.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--log-format takes json or pretty', async () => {
  const lines: string[] = [];
  const io: Io = { out: (l) => lines.push(l), err: (l) => lines.push(l) };
  assert.is(await gatewayMain(['--log-format', 'xml'], io), 2);
  assert.match(lines[0], /--log-format must be json or pretty, not "xml"/);
});

test.run();
