// XS figures for `npm run bench`: the firmware core's cost per reading processed and per frame
// sealed, and the agent's peak heap, from XS's own meters, against the ESP32's JS heap budget.
// The measuring runs in its own process (scripts/xs/bench-worker.js): @agoric/xsnap's Node API
// needs `@endo/init`, which locks down the realm it runs in, and the rest of the bench must not be.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');

interface OpFigures {
  computrons: number;
  allocatedBytesEsp32: number | null;
  peakLiveBytesEsp32: number | null;
  [key: string]: unknown;
}

interface WorkerReport {
  engine: string;
  meterType: string;
  budgetBytes: number;
  perOp: { [name: string]: OpFigures };
  meterParse?: { [name: string]: OpFigures & { what: string; bytes: number } };
  agent: { peakBytesEsp32?: number | null; budgetShare?: number | null; error?: string; [key: string]: unknown } | null;
  notes: string[];
  [key: string]: unknown;
}

export async function run(): Promise<object> {
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, [join(root, 'scripts', 'xs', 'bench-worker.js'), '--json'], {
      cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`XS bench exited ${code}: ${stderr.trim().slice(-2000)}`))));
  });
  const r = JSON.parse(out) as WorkerReport;
  const pick = (o: OpFigures | undefined) =>
    o && { computrons: o.computrons, heapBytesAllocated: o.allocatedBytesEsp32, heapBytesPeakLive: o.peakLiveBytesEsp32 };
  return {
    what: 'firmware core on XS (xsnap), heap figures for ESP32 (16-byte slots)',
    engine: r.engine,
    meterType: r.meterType,
    budgetBytes: r.budgetBytes,
    perReading: pick(r.perOp.reading),
    perReadingInAgent: pick(r.perOp.agentReading),
    perFrameSealed: pick(r.perOp.frame),
    perBacklogFrame: pick(r.perOp.backlogFrame),
    meterParsePerMessage: Object.fromEntries(Object.entries(r.meterParse ?? {}).map(([name, o]) => [name, { what: o.what, bytes: o.bytes, ...pick(o) }])),
    agentPeakHeapBytes: r.agent?.peakBytesEsp32 ?? null,
    agentPeakHeapShareOfBudgetPercent: r.agent?.budgetShare ?? null,
    detail: r,
  };
}

// `node --import tsx scripts/bench/xs.ts` prints the figures on their own.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  run().then((r) => process.stdout.write(JSON.stringify(r, null, 2) + '\n'), (e: Error) => {
    process.stderr.write(`${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
