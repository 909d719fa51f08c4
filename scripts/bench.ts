// `npm run bench`: runs every benchmark module in scripts/bench/ (or those named on the command line)
// and prints one JSON document: the machine it ran on and what each benchmark measured.
//   npm run bench                 all
//   npm run bench -- flash-log    only scripts/bench/flash-log.ts

import { readdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';

const dir = join(fileURLToPath(import.meta.url), '..', 'bench');
const only = process.argv.slice(2);
const names = readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort()
  .filter((n) => !only.length || only.includes(n));

const out: Record<string, unknown> = {
  machine: { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30) },
  started: new Date().toISOString(),
  results: {} as Record<string, unknown>,
};
let failed = 0;
for (const name of names) {
  const t0 = Date.now();
  process.stderr.write(`bench ${name} …\n`);
  try {
    const mod = await import(pathToFileURL(join(dir, name + '.ts')).href);
    const result = await mod.run();
    (out.results as Record<string, unknown>)[name] = { ...result, seconds: (Date.now() - t0) / 1000 };
  } catch (e) {
    failed++;
    (out.results as Record<string, unknown>)[name] = { error: (e as Error).stack ?? String(e) };
  }
}
console.log(JSON.stringify(out, null, 2));
process.exit(failed ? 1 : 0);
