// `gridlet guest build` for C and Rust: a missing compiler is named with the Debian packages that
// provide it (the checked-in guests/dist is what everything else runs; the staleness of the C and Rust
// guests is checked in guests-engine.test.ts when the compilers that built them are here).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cNeedsWasi } from '../../guests/toolchains.js';

const out = mkdtempSync(join(tmpdir(), 'gridlet-build-'));

function build(env: Record<string, string>, ...names: string[]) {
  const r = spawnSync(process.execPath, ['bin/gridlet.js', 'guest', 'build', '--out', out, ...names], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('a missing C or Rust compiler is named, with the packages to install; other guests are not held up by it', () => {
  const c = build({ GRIDLET_CLANG: '/nonexistent/clang' }, 'load-shed', 'tamper-watch');
  assert.is(c.code, 1);
  assert.match(c.err, /load-shed: no clang \(\/nonexistent\/clang: .*\): apt-get install clang lld, or set GRIDLET_CLANG/);
  assert.not.match(c.err, /tamper-watch:/);
  const rust = build({ GRIDLET_RUSTC: '/nonexistent/rustc' }, 'tariff-opt');
  assert.is(rust.code, 1);
  assert.match(rust.err, /tariff-opt: no rustc for wasm32-unknown-unknown \(\/nonexistent\/rustc: not found\): apt-get install rustc libstd-rust-dev-wasm32/);
  const world = build({ GRIDLET_RUSTC: '/nonexistent/rustc' }, 'shed-world');
  assert.match(world.err, /shed-world: no rustc/, 'a world with a Rust member needs rustc too');
  const unknown = build({}, 'no-such-guest');
  assert.match(unknown.err, /no-such-guest: no guest or world of that name \(guests: .*load-shed.*; worlds: shed-world\)/);
});

test('C sources: freestanding unless they have a main (a WASI job) or include a libc header', () => {
  assert.equal(cNeedsWasi('#include "gridlet.h"\nint tick(void) { return 0; }'), { wasi: false, command: false });
  assert.equal(cNeedsWasi('#include "gridlet.h"\n#include <time.h>\nint main(void) { return 0; }'), { wasi: true, command: true });
  assert.equal(cNeedsWasi('#include <string.h>\nint tick(void) { return 0; }'), { wasi: true, command: false });
});

test.after(() => rmSync(out, { recursive: true, force: true }));

test.run();
