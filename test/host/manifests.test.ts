// The Moddable manifests and partition tables are only exercised by mcconfig on a developer's
// machine; these checks catch what would otherwise surface there: broken JSON, a path that moved,
// a partition table without the log, overlapping or misaligned partitions.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');
const dir = join(root, 'manifests');
const targets = ['esp32', 'esp32c3', 'esp32s3', 'lin'];

function manifest(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

/** Local paths a manifest names (not $(MODDABLE)/… ones); module paths are given without extension. */
function localPaths(m: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const inc of (m.include as string[] | undefined) ?? []) if (inc.startsWith('.')) out.push(inc);
  for (const v of Object.values((m.modules as Record<string, string | string[]> | undefined) ?? {})) {
    for (const p of Array.isArray(v) ? v : [v]) if (p.startsWith('.')) out.push(p);
  }
  const partitions = (m.build as Record<string, string> | undefined)?.PARTITIONS_FILE;
  if (partitions?.startsWith('.')) out.push(partitions);
  return out;
}

test('every target manifest parses, includes the common one, and names files that exist', () => {
  const files = [join(dir, 'manifest_gridlet.json'), ...targets.map((t) => join(dir, t, 'manifest.json'))];
  for (const file of files) {
    const m = manifest(file);
    for (const p of localPaths(m)) {
      const full = resolve(dirname(file), p);
      if (full === join(root, 'build', 'firmware', 'main')) continue; // made by npm run build:firmware
      const found = existsSync(full) || ['.js', '.c', '.json'].some((ext) => existsSync(full + ext));
      assert.ok(found, `${file.slice(root.length + 1)} names ${p}, which does not exist`);
    }
  }
  for (const t of targets) {
    const m = manifest(join(dir, t, 'manifest.json'));
    assert.ok((m.include as string[]).includes('../manifest_gridlet.json'), `${t} includes manifest_gridlet.json`);
    const creation = m.creation as { static: number; chunk: { initial: number }; heap: { initial: number }; stack: number; main: string };
    assert.is(creation.main, 'main');
    assert.is(creation.static, 0, `${t}: fixed chunk and slot heaps`);
    assert.ok(creation.chunk.initial > 0 && creation.heap.initial > 0 && creation.stack >= 256);
  }
});

test('the ESP32 creation stays inside the 154 KB JS heap budget', () => {
  const c = manifest(join(dir, 'esp32', 'manifest.json')).creation as { chunk: { initial: number }; heap: { initial: number }; stack: number };
  const bytes = c.chunk.initial + c.heap.initial * 16 + c.stack * 16;
  assert.ok(bytes <= 154 * 1024, `esp32 creation is ${bytes} bytes`);
});

test('partition tables have the gridlog data partition, aligned, without overlaps, within the flash', () => {
  const tables = readdirSync(dir).filter((f) => /^partitions-\d+MB\.csv$/.test(f));
  assert.ok(tables.length >= 2);
  for (const name of tables) {
    const flashBytes = Number(/(\d+)MB/.exec(name)![1]) * 1024 * 1024;
    const rows = readFileSync(join(dir, name), 'utf8').split('\n')
      .map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(',').map((c) => c.trim()));
    let end = 0x9000;
    for (const [label, type, , offset, size] of rows) {
      const o = Number(offset);
      const s = Number(size);
      assert.ok(o >= end, `${name}: ${label} overlaps the partition before it`);
      assert.is(o % (type === 'app' ? 0x10000 : 0x1000), 0, `${name}: ${label} offset alignment`);
      end = o + s;
    }
    assert.ok(end <= flashBytes, `${name}: partitions end at 0x${end.toString(16)}, beyond the flash`);
    const log = rows.find((r) => r[0] === 'gridlog');
    assert.ok(log, `${name} has a gridlog partition`);
    assert.is(log![1], 'data');
    assert.is(Number(log![4]) % 4096, 0);
    assert.ok(Number(log![4]) / 4096 >= 3, 'the flash log needs at least 3 blocks');
  }
});

test.run();
