// Types for sdk.js (the Moddable SDK, lin images and the simulator) for the TypeScript tests and scripts.

export const root: string;
export function sdkSource(): string | undefined;
export function wasm3Source(): string | undefined;
export function missingSystemTools(): string[];
export function contentHash(dir: string): string;
export interface Sdk { moddable: string; bin: string; env: NodeJS.ProcessEnv }
export function ensureSdk(options?: { log?: (line: string) => void }): Sdk;
export function buildImage(options: {
  manifest: string;
  out: string;
  config?: Record<string, string | number | boolean>;
  instrument?: boolean;
  debug?: boolean;
  wasm3?: string | false;
  log?: (line: string) => void;
}): { so: string; seconds: number; warnings: string[]; log: string };
export class SimImage {
  constructor(options: { so: string; dir: string; settings?: unknown; env?: NodeJS.ProcessEnv; sdk?: Sdk });
  readonly dir: string;
  readonly lines: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitCode: number | null | undefined;
  signal: NodeJS.Signals | null | undefined;
  tail(n?: number): string;
  waitFor(pattern: RegExp | string, options?: { timeoutMs?: number; from?: number }): Promise<RegExpExecArray>;
  aborts(): string[];
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}
