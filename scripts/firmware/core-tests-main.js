// The Moddable side of the core's tests on Moddable's runtime (scripts/firmware/core-tests.js builds
// it into the `main` of a lin app; test/firmware/core-tests.test.ts runs it). The core is preloaded
// (module gridlet/core, in flash as on a meter); the test files are ordinary modules, loaded one after
// another at run time with import(), so that their tests register in the shared registry then.
//
// Everything it reports is one trace() line each, `@@core-tests <kind> <JSON>`:
//   begin {files, from}   file {f}   load {f, error}   start {f, t, name}
//   result {f, t, name, ok, ms, error?}   end {}
// The Node side reads them; when the runtime dies inside a test (a crash is what this is here to
// find), it starts the app again from the next test: gridlet-sim.json's `coreTestsFrom` "<f>:<t>".

import settings from 'gridlet/settings';
import { errorReport, plan, resetSuites, runEntry } from '../xs/registry.js';

const MARK = '@@core-tests ';
// Long lines are cut into pieces ("more" lines) so that no trace buffer truncates a report.
const PIECE = 480;

function emit(kind, value) {
  const text = JSON.stringify(value);
  let i = 0;
  for (; text.length - i > PIECE; i += PIECE) trace(`${MARK}more ${text.slice(i, i + PIECE)}\n`);
  trace(`${MARK}${kind} ${text.slice(i)}\n`);
}

function startingPoint() {
  const m = /^(\d+):(\d+)$/.exec(String(settings().coreTestsFrom ?? '0:0'));
  return m ? { file: Number(m[1]), test: Number(m[2]) } : { file: 0, test: 0 };
}

/** Runs the tests of every module in `specifiers` (module specifiers, one per test file), in order. */
export async function runAll(specifiers) {
  const from = startingPoint();
  emit('begin', { files: specifiers.length, from });
  for (let f = from.file; f < specifiers.length; f++) {
    resetSuites();
    emit('file', { f });
    try {
      await import(specifiers[f]);
    } catch (e) {
      emit('load', { f, error: errorReport(e, '') });
      continue;
    }
    const suitesStarted = [];
    let t = 0;
    for (const entry of plan()) {
      if (entry.skip) continue;
      if (f === from.file && t < from.test) {
        t++;
        continue;
      }
      // Resuming in the middle of a suite: its `before` hooks have not run in this launch.
      if (suitesStarted.indexOf(entry.suite) < 0) {
        suitesStarted.push(entry.suite);
        entry.first = true;
      }
      emit('start', { f, t, name: entry.name });
      const started = Date.now();
      const r = await runEntry(entry);
      emit('result', { f, t, name: entry.name, ok: r.ok, ms: Date.now() - started, error: r.error ?? undefined });
      t++;
    }
  }
  emit('end', {});
}

/** The app's main: runs them all; a failure of the runner itself is traced (the Node side then times out with it). */
export function start(specifiers) {
  runAll(specifiers).catch((e) => trace(`the core tests' runner failed: ${e?.name}: ${e?.message}\n${e?.stack ?? ''}\n`));
}
