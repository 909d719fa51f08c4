// The one argument kit of every gridlet command: node:util parseArgs with clear errors, an Io that tests
// can capture, and exit codes 0 done, 1 failed (the reason is printed), 2 usage error (with the help).

import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { ProgressSink } from './progress.js';

export interface Io {
  out(line: string): void;
  err(line: string): void;
  /** Where bulk commands draw their progress (stderr); none: no progress is shown. */
  progress?: ProgressSink;
}

export const processIo: Io = {
  // Through console, where every command's output has always gone (and where tests capture it).
  out: (l) => console.log(l),
  err: (l) => console.error(l),
  progress: process.stderr,
};

export class UsageError extends Error {}

export type Options = NonNullable<ParseArgsConfig['options']>;

export type Values = { [flag: string]: string | boolean | string[] | undefined };

export function parse(argv: string[], options: Options, positionals: boolean): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: positionals, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export async function run(command: string, help: string, io: Io, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`gridlet ${command}: ${e.message}\n\n${help}`);
      return 2;
    }
    io.err(`gridlet ${command}: ${(e as Error).message}`);
    return 1;
  }
}

/** Prints rows as a table with padded columns (the last one unpadded). */
export function table(io: Io, rows: string[][]): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows) io.out(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]))).join('  '));
}
