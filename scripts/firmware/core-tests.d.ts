// Types of core-tests.js for the TypeScript test that uses it.
export const NOT_ON_MODDABLE: Record<string, string>;
export function coreTestFiles(): { run: string[]; notRun: string[] };

export interface TestError { name: string; message: string; stack: string; actual?: string; expects?: string; operator?: string; where?: string }
export interface TestResult { name: string; ok: boolean; ms?: number; error?: TestError }
export interface FileResult { rel: string; loadError: TestError | undefined; tests: (TestResult | undefined)[] }
export interface Bundle { specifier: string; outfile: string; map: unknown }
export interface CoreTestApp { so: string; files: { rel: string; specifier: string }[]; bundles: Bundle[]; seconds: number; buildSeconds: number; warnings: string[] }
export interface CoreTestRun { files: FileResult[]; launches: number; seconds: number; output: string[] }

export function buildCoreTests(o?: { out?: string; files?: string[]; debug?: boolean; log?: (line: string) => void }): Promise<CoreTestApp>;
export function runCoreTests(o: { app: CoreTestApp; dir: string; testTimeoutMs?: number; maxLaunches?: number }): Promise<CoreTestRun>;
export function parseReport(lines: string[]): ({ kind: string } & Record<string, unknown>)[];
export function mapStack(stack: string | undefined, bundles: Bundle[]): string;
export function coreTestsOnModdable(o: { dir: string; out?: string; log?: (line: string) => void }):
  Promise<CoreTestRun & { buildSeconds: number; debugSeconds: number }>;
