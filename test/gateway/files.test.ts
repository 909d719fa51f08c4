// The gateway's data directory holds its identity keys and a store with every device's session key:
// nobody but its owner may read any of it, under the usual umask (022), for a new directory and for
// one an older gridlet left readable.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Body } from '../../firmware/core/wire/bodies.js';
import { pairDevice, startTestGateway, tempDir } from './support.js';

const mode = (p: string) => statSync(p).mode & 0o777;
const umask = process.umask(0o022);

test.after(() => {
  process.umask(umask);
});

/** Every file and directory under `dir` with its rights. */
function rights(dir: string): { [path: string]: number } {
  const out: { [path: string]: number } = { '.': mode(dir) };
  const walk = (d: string, rel: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      out[join(rel, n)] = mode(p);
      if (statSync(p).isDirectory()) walk(p, join(rel, n));
    }
  };
  walk(dir, '');
  return out;
}

test('a new data directory and every file the gateway writes in it are its owner\'s alone', async () => {
  const parent = tempDir();
  const dir = join(parent, 'gw', 'data');
  const t = await startTestGateway({ dataDir: dir });
  try {
    const d = await pairDevice(t);
    await d.send({ type: Body.readings, first: 1, records: [[1_700_000_000, 1, 5]] });
    await d.waitAck(1);
    assert.ok(existsSync(join(dir, 'gridlet.sqlite-wal')), 'the store is in WAL mode');
    const r = rights(dir);
    assert.is(r['.'], 0o700, 'the data directory');
    for (const [p, m] of Object.entries(r)) {
      if (p === '.') continue;
      const dirEntry = statSync(join(dir, p)).isDirectory();
      assert.is(m & 0o077, 0, `${p} is ${m.toString(8)}: readable by others`);
      assert.is(m, dirEntry ? 0o700 : 0o600, p);
    }
    assert.ok(r['gridlet.sqlite'] === 0o600 && r['identity.json'] === 0o600);
  } finally {
    await t.close();
    rmSync(parent, { recursive: true, force: true });
  }
});

test('a data directory an older gridlet left readable is tightened at start', async () => {
  const dir = tempDir();
  const first = await startTestGateway({ dataDir: dir });
  await first.stop();
  chmodSync(dir, 0o755);
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
  const again = await startTestGateway({ dataDir: dir });
  try {
    const r = rights(dir);
    assert.is(r['.'], 0o700);
    for (const [p, m] of Object.entries(r)) assert.is(m & 0o077, 0, `${p} is ${m.toString(8)}`);
  } finally {
    await again.close();
  }
});

test('a store outside the data directory is made 0600 too', async () => {
  const dir = tempDir();
  const elsewhere = join(tempDir(), 'db');
  mkdirSync(elsewhere, { mode: 0o755 });
  const t = await startTestGateway({ dataDir: dir, store: `sqlite:${join(elsewhere, 'g.sqlite')}` });
  try {
    assert.is(mode(join(elsewhere, 'g.sqlite')), 0o600);
    assert.is(mode(elsewhere), 0o755, 'an existing directory of the operator\'s is left as it is');
  } finally {
    await t.close();
    rmSync(join(elsewhere, '..'), { recursive: true, force: true });
  }
});

test.run();
