// The bulk commands' progress: a bar with count, rate and ETA on a terminal, a plain line every few
// seconds otherwise, nothing when quiet (--json).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatDuration, pool, Progress } from '../../host/cli/progress.js';

function sink(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, isTTY, columns: 100, write: (s: string) => void writes.push(s) };
}

test('on a terminal: a redrawn bar with count, rate and ETA, failures above it, cleared at the end', () => {
  let now = 0;
  const s = sink(true);
  const p = new Progress({ label: 'pairing', total: 4, sink: s, now: () => now });
  now = 1000;
  p.tick();
  assert.match(s.writes.at(-1)!, /^\r\x1b\[K\[#+-+\] pairing 1\/4 1\.0\/s ETA 3s$/);
  now = 1050; // within the redraw interval: no redraw
  p.tick(false);
  assert.is(s.writes.filter((w) => w.includes('pairing 2/4')).length, 0);
  assert.ok(p.note('line 7: refused'));
  assert.is(s.writes.at(-2), '\r\x1b[Kline 7: refused\n');
  assert.match(s.writes.at(-1)!, /pairing 2\/4 \(1 failed\)/);
  assert.ok(p.note('paired x', true), 'a routine line is left to the bar');
  assert.ok(!s.writes.some((w) => w.includes('paired x')));
  now = 2000;
  p.tick();
  p.tick();
  assert.match(s.writes.at(-1)!, /\[#{10,}\] pairing 4\/4 \(1 failed\) 2\.0\/s in 2s$/);
  p.finish();
  assert.is(s.writes.at(-1), '\r\x1b[K');
});

test('not a terminal: a line every interval, none for a run shorter than that; quiet and no sink print nothing', () => {
  let now = 0;
  const s = sink(false);
  const p = new Progress({ label: 'deploying', total: 100, sink: s, now: () => now, lineIntervalMs: 5000 });
  for (let i = 0; i < 10; i++) { now += 100; p.tick(); }
  assert.equal(s.writes, []);
  now = 5000;
  p.tick();
  assert.equal(s.writes, ['deploying 11/100 2.2/s ETA 40s\n']);
  now = 6000;
  p.tick();
  assert.is(s.writes.length, 1);
  now = 10_000;
  p.tick();
  assert.is(s.writes.length, 2);
  assert.ok(p.note('device x: refused'));
  assert.is(s.writes.at(-1), 'device x: refused\n');
  p.finish();
  assert.match(s.writes.at(-1)!, /^deploying 13\/100 /);

  const short = sink(false);
  const q = new Progress({ label: 'x', total: 2, sink: short, now: () => 0 });
  q.tick();
  q.tick();
  q.finish();
  assert.equal(short.writes, []);

  const tty = sink(true);
  const quiet = new Progress({ label: 'x', total: 2, sink: tty, quiet: true });
  quiet.tick();
  assert.ok(!quiet.note('a failure'), 'the caller prints it');
  quiet.finish();
  assert.equal(tty.writes, []);
  assert.ok(!new Progress({ label: 'x', total: 1 }).note('y'));
});

test('formatDuration and pool (bounded, in order)', async () => {
  assert.is(formatDuration(5), '5s');
  assert.is(formatDuration(125), '2m05s');
  assert.is(formatDuration(7300), '2h01m');
  assert.is(formatDuration(Infinity), '?');
  let running = 0;
  let most = 0;
  const out = await pool([5, 1, 4, 2, 3, 0, 6], 3, async (x, i) => {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, x));
    running--;
    return x * 10 + i;
  });
  assert.equal(out, [50, 11, 42, 23, 34, 5, 66]);
  assert.is(most, 3);
  assert.equal(await pool([], 4, async () => 1), []);
});

test.run();
