// Builds (once, into build/xsnap-meter/) a copy of @agoric/xsnap's worker that reports XS's own
// heap meters with every crank, which the stock worker keeps to itself:
//   chunks, peakChunks  bytes of chunk memory (strings, ArrayBuffers, array storage) in use at
//                       the end of the crank, and the most in use at any moment during it
//   slots, peakSlots    the same for slots (objects, properties, closures), in slots
//   slotSize            bytes per slot on this host (32 on 64-bit; 16 on the ESP32's 32-bit XS)
// The peaks are reset when a crank starts, so each crank reports its own high-water mark.
// It is also built with XS's mxStress and a global `gridletStress(on)`: while on, XS collects
// garbage before every allocation, so the peaks are the largest live set — the heap a device
// needs — rather than everything allocated since the last collection.
// Same XS sources, same compile options as the stock worker; only the reply line and the reset
// differ. Used by scripts/xs/bench-worker.js; nothing in CI depends on it.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { root } from './xsnap.js';

const xsnapDir = join(root, 'node_modules', '@agoric', 'xsnap');
const moddable = join(xsnapDir, 'moddable');
const tls = join(xsnapDir, 'xsnap-native', 'xsnap', 'sources');
const xsDir = join(moddable, 'xs');

const XS_SOURCES = [
  'xsAll', 'xsAPI', 'xsArguments', 'xsArray', 'xsAtomics', 'xsBigInt', 'xsBoolean', 'xsCode', 'xsCommon',
  'xsDataView', 'xsDate', 'xsDebug', 'xsDefaults', 'xsError', 'xsFunction', 'xsGenerator', 'xsGlobal', 'xsJSON',
  'xsLexical', 'xsLockdown', 'xsMapSet', 'xsMarshall', 'xsMath', 'xsMemory', 'xsModule', 'xsNumber', 'xsObject',
  'xsPlatforms', 'xsProfile', 'xsPromise', 'xsProperty', 'xsProxy', 'xsRegExp', 'xsRun', 'xsScope', 'xsScript',
  'xsSnapshot', 'xsSourceMap', 'xsString', 'xsSymbol', 'xsSyntaxical', 'xsTree', 'xsType', 'xsdtoa', 'xsre', 'xsmc',
].map((n) => join(xsDir, 'sources', n + '.c'));

// Compiled against xsAll.h, where the machine's heap counters are visible.
const METER_C = `#include "xsAll.h"
unsigned gridletMeter(txMachine* the, int which) {
\tswitch (which) {
\tcase 0: return (unsigned)the->currentChunksSize;
\tcase 1: return (unsigned)the->peakChunksSize;
\tcase 2: return (unsigned)the->currentHeapCount;
\tcase 3: return (unsigned)the->peakHeapCount;
\tdefault: return (unsigned)sizeof(txSlot);
\t}
}
void gridletResetPeaks(txMachine* the) {
\tthe->peakChunksSize = the->currentChunksSize;
\tthe->peakHeapCount = the->currentHeapCount;
}
extern int gxStress;
void xs_gridletStress(txMachine* the) {
\tgxStress = fxToInteger(the, mxArgv(0)) ? 1 : 0;
}
`;

function patchWorker(src) {
  const fmtOld = '"\\"allocate\\":%u,"';
  const callOld = 'meterIndex, the->allocatedSpace, tsbuf);';
  const crankOld = "\t\t\tcase 'e':\n\t\t\t\txsBeginCrank(machine, gxCrankMeteringLimit);";
  const includeOld = '#include "xsnap.h"';
  const gcOld = 'xsDefine(xsGlobal, xsID("gc"), xsResult, xsDontEnum);';
  for (const anchor of [fmtOld, callOld, crankOld, includeOld, gcOld]) {
    if (!src.includes(anchor)) throw new Error(`xsnap-worker.c changed (no "${anchor.trim()}"); update scripts/xs/meter-worker.js`);
  }
  return src
    .replace(includeOld, `${includeOld}\nextern unsigned gridletMeter(xsMachine* the, int which);\nextern void gridletResetPeaks(xsMachine* the);\nextern void xs_gridletStress(xsMachine* the);`)
    .replace(gcOld, `${gcOld}\n\txsResult = xsNewHostFunction(xs_gridletStress, 1);\n\txsDefine(xsGlobal, xsID("gridletStress"), xsResult, xsDontEnum);`)
    .replace(fmtOld, `${fmtOld}\n\t\t\t\t  "\\"chunks\\":%u,\\"peakChunks\\":%u,\\"slots\\":%u,\\"peakSlots\\":%u,\\"slotSize\\":%u,"`)
    .replace(callOld, 'meterIndex, the->allocatedSpace, gridletMeter(the, 0), gridletMeter(the, 1), gridletMeter(the, 2), gridletMeter(the, 3), gridletMeter(the, 4), tsbuf);')
    .replace(crankOld, `${crankOld}\n\t\t\t\tgridletResetPeaks(machine);`);
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.slice(0, 2).join(' ')} …: exit ${code}\n${err.slice(0, 2000)}`))));
  });
}

/** Returns the path of the metered worker, building it first if needed (about a minute). */
export async function ensureMeterWorker({ log = () => {} } = {}) {
  const workerSrc = readFileSync(join(tls, 'xsnap-worker.c'), 'utf8');
  const patched = patchWorker(workerSrc);
  const version = JSON.parse(readFileSync(join(xsnapDir, 'package.json'), 'utf8')).version;
  const key = createHash('sha256').update(version).update(patched).update(METER_C).update('mxStress').digest('hex').slice(0, 12);
  const out = join(root, 'build', 'xsnap-meter', key);
  const bin = join(out, 'xsnap-worker');
  if (existsSync(bin)) return bin;
  log(`building the metered xsnap worker in ${out} …`);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'xsnap-worker.c'), patched);
  writeFileSync(join(out, 'gridlet-meter.c'), METER_C);
  const options = [
    '-fno-common', '-DINCLUDE_XSPLATFORM', '-DXSPLATFORM="xsnapPlatform.h"', `-DXSNAP_VERSION="${version}"`,
    '-DXSNAP_TEST_RECORD=0', '-DmxLockdown=1', '-DmxMetering=1', '-DmxDebug=1', '-UmxInstrument', '-DmxNoConsole=1',
    '-DmxBoundsCheck=1', '-DmxParse=1', '-DmxRun=1', '-DmxSloppy=1', '-DmxSnapshot=1', '-DmxStress=1',
    '-DmxRegExpUnicodePropertyEscapes=1', '-DmxStringNormalize=1', '-DmxMinusZero=1',
    `-I${join(xsDir, 'includes')}`, `-I${join(xsDir, 'platforms')}`, `-I${join(xsDir, 'sources')}`, `-I${tls}`,
    '-Wno-misleading-indentation', '-Wno-implicit-fallthrough', '-O2', '-w', '-D__has_builtin(x)=1',
  ];
  const sources = [
    ...XS_SOURCES,
    join(moddable, 'modules', 'data', 'text', 'decoder', 'textdecoder.c'),
    join(moddable, 'modules', 'data', 'text', 'encoder', 'textencoder.c'),
    join(moddable, 'modules', 'data', 'base64', 'modBase64.c'),
    join(tls, 'xsnapPlatform.c'),
    join(out, 'xsnap-worker.c'),
    join(out, 'gridlet-meter.c'),
  ];
  const objects = sources.map((s, i) => join(out, `${i}.o`));
  let next = 0;
  await Promise.all(Array.from({ length: Math.max(1, cpus().length) }, async () => {
    while (next < sources.length) {
      const i = next++;
      await run('cc', [sources[i], ...options, '-c', '-o', objects[i]]);
    }
  }));
  await run('cc', ['-rdynamic', ...objects, '-ldl', '-lm', '-lpthread', '-o', bin]);
  for (const old of readdirSync(dirname(out))) if (old !== key) rmSync(join(dirname(out), old), { recursive: true, force: true });
  return bin;
}

/** A `spawn` for @agoric/xsnap's `xsnap()` that starts the metered worker instead of the stock one. */
export function spawnWith(bin) {
  return (command, args, options) => spawn(/xsnap-worker$/.test(command) ? bin : command, args, options);
}
