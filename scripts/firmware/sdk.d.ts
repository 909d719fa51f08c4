// Types of sdk.js for the TypeScript tests that use it.
export const root: string;
export function sdkSource(): string | undefined;
export function wasm3Source(): string | undefined;
export function missingSystemTools(): string[];
export function contentHash(dir: string): string;
export interface Sdk { moddable: string; bin: string; env: NodeJS.ProcessEnv }
export function ensureSdk(o?: { log?: (line: string) => void }): Sdk;
export function buildImage(o: { manifest: string; out: string; config?: Record<string, string | number>; instrument?: boolean; debug?: boolean; wasm3?: string | false; log?: (line: string) => void }):
  { so: string; seconds: number; warnings: string[]; log: string };
export class SimImage {
  constructor(o: { so: string; dir: string; settings?: Record<string, unknown>; env?: NodeJS.ProcessEnv; sdk?: Sdk });
  readonly dir: string;
  readonly lines: string[];
  exitCode: number | null | undefined;
  signal: NodeJS.Signals | null | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  tail(n?: number): string;
  waitFor(pattern: RegExp | string, o?: { timeoutMs?: number; from?: number }): Promise<RegExpExecArray | null>;
  aborts(): string[];
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}
