// The host agent's console on a real pseudo-terminal (`gridlet agent --console-pty`): a program that
// opens the pty at 115200 — the serialport package, or a plain Python script — gets CONSOLE.md's replies.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { SerialPort } from 'serialport';
import { createHostAgent, type HostAgent } from '../../host/agent-host.js';

let host: HostAgent;

test.before(() => {
  host = createHostAgent({ brokers: ['mqtt://127.0.0.1:1'], consolePty: true, meter: 'sim', intervalMs: 50 });
  host.agent.start();
});

test.after(() => {
  host.stop();
});

/** A serialport client that sends lines and reads replies. */
async function client(path: string) {
  const port = new SerialPort({ path, baudRate: 115200, autoOpen: false });
  await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
  await new Promise<void>((res) => port.flush(() => res()));
  let buf = '';
  port.on('data', (b: Buffer) => (buf += b.toString('utf8')));
  const until = async (pred: (s: string) => boolean, ms = 3000) => {
    const end = Date.now() + ms;
    while (!pred(buf)) {
      if (Date.now() > end) throw new Error(`no reply; got ${JSON.stringify(buf)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const out = buf;
    buf = '';
    return out;
  };
  return {
    port,
    /** Sends bytes and returns everything up to and including the prompt (text) or the final line (json). */
    async send(bytes: string | Buffer, json = false): Promise<string> {
      port.write(bytes);
      return until((s) => (json ? /\{"ok":(true|false)[^\n]*\r\n$/.test(s) : s.endsWith('gridlet> ')));
    },
    close: () => new Promise<void>((res) => port.close(() => res())),
  };
}

test('the pty is a character device that prints its path; the agent prints it in `agent ready`', () => {
  assert.match(host.consolePty!.path, /^\/dev\/(pts\/\d+|ttys\d+)$/);
  assert.ok(existsSync(host.consolePty!.path));
  assert.match(host.factoryPin!, /^\d{8}$/);
});

test('serialport at 115200: id, ERR for refused lines, json mode', async () => {
  const c = await client(host.consolePty!.path);
  try {
    assert.is(await c.send('\x03'), '^C\r\ngridlet> ');
    assert.is(await c.send('id\r\n'), `id    ${host.agent.deviceId}\r\ncode  ${host.agent.identity.pairCode}\r\nOK\r\ngridlet> `);
    assert.is(await c.send('relay 1 on\n'), 'ERR auth relay is a technician command: `auth <pin>` first\r\ngridlet> ');
    assert.is(await c.send('x'.repeat(300) + '\n'), 'ERR usage line longer than 256 bytes\r\ngridlet> ');
    assert.is(await c.send(Buffer.from([0x69, 0x64, 0xff, 0x0a])), 'ERR usage line is not valid UTF-8\r\ngridlet> ');
    assert.is(await c.send('json on\n', true), '{"ok":true}\r\n');
    const status = await c.send('status\n', true);
    const [data, final] = status.trim().split('\r\n').map((l) => JSON.parse(l));
    assert.is(data.data.firmware, '0.1.0');
    assert.is(data.data.paired, false);
    assert.equal(final, { ok: true });
    const readings = (await c.send('readings 3\n', true)).trim().split('\r\n').map((l) => JSON.parse(l));
    assert.is(readings.length, 4);
    assert.ok(readings[0].data.seq > 0);
    assert.is((await c.send('json off\n')), 'OK\r\ngridlet> ');
    // The factory PIN unlocks tech commands on this never-paired host agent.
    assert.is(await c.send(`auth ${host.factoryPin}\n`), 'technician commands unlocked for 10 min (factory PIN)\r\nOK\r\ngridlet> ');
  } finally {
    await c.close();
  }
});

test('clients come and go: a cable pulled mid-line does not spoil the next session', async () => {
  const a = await client(host.consolePty!.path);
  a.port.write('rebo'); // unplugged mid-line
  await new Promise((r) => setTimeout(r, 100));
  await a.close();
  const b = await client(host.consolePty!.path);
  try {
    // A client starts with Ctrl-C, which discards the half line (as `gridlet console` does).
    assert.is(await b.send('\x03'), '^C\r\ngridlet> ');
    assert.match(await b.send('buffer\r\n'), /^capacity  \d+ bytes\r\n[\s\S]*\r\nOK\r\ngridlet> $/);
  } finally {
    await b.close();
  }
});

const python = spawnSync('python3', ['--version']).status === 0;

/** Runs a Python client asynchronously (the agent answering it runs in this process). */
function runPython(code: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('python3', ['-c', code, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (err += b));
    const timer = setTimeout(() => p.kill(), 10_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`python client exited ${code}: ${err}`));
    });
  });
}

const PY_READ = `
import os, sys, time, select
def reply(fd, end):
    out = b""
    deadline = time.time() + 5
    while not out.endswith(end) and time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r: out += os.read(fd, 4096)
    return out
`;

test('a plain Python program (termios raw at 115200) gets the documented replies', async () => {
  if (!python) {
    console.log('skipped: python3 is not installed');
    return;
  }
  const out = await runPython(`${PY_READ}
import termios, tty
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)
a = termios.tcgetattr(fd); a[4] = a[5] = termios.B115200; termios.tcsetattr(fd, termios.TCSANOW, a)
termios.tcflush(fd, termios.TCIOFLUSH)
os.write(fd, b"\\x03"); reply(fd, b"gridlet> ")
os.write(fd, b"json on\\n"); reply(fd, b"}\\r\\n")
os.write(fd, b"id\\n"); sys.stdout.write(reply(fd, b'{"ok":true}\\r\\n').decode())
os.write(fd, b"json off\\n"); reply(fd, b"gridlet> ")
`, host.consolePty!.path);
  assert.is(out, `{"data":{"id":"${host.agent.deviceId}","code":"${host.agent.identity.pairCode}","model":"gridlet-host","firmware":"0.1.0"}}\r\n{"ok":true}\r\n`);
});

test('even a program that sets no termios at all sees only the console (the pty starts raw: no echo)', async () => {
  if (!python) {
    console.log('skipped: python3 is not installed');
    return;
  }
  const out = await runPython(`${PY_READ}
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
os.write(fd, b"\\x03"); reply(fd, b"gridlet> ")
os.write(fd, b"link\\r"); sys.stdout.write(reply(fd, b"gridlet> ").decode())
`, host.consolePty!.path);
  assert.match(out, /^primary  (down|connecting)[^\r\n]*\r\nOK\r\ngridlet> $/);
});

test.run();
