// Argument parsing shared by the commands: node:util parseArgs with clear errors and --help.

import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {}

export type Options = NonNullable<ParseArgsConfig['options']>;

export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

export function parse(argv: string[], options: Options, help: string, allowPositionals = false):
  { values: Values; positionals: string[] } | undefined {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
    if ((r.values as Values).help) {
      console.log(help);
      return undefined;
    }
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${help}`);
  }
}

/** Runs a command body, turning UsageError and plain errors into a message and an exit code. */
export async function run(body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`gridlet: ${e.message}`);
      return 2;
    }
    console.error(`gridlet: ${(e as Error).message}`);
    return 1;
  }
}
