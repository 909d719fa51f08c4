// Runs the uvu suites of one test file, then exits even if the file left a handle open
// (the runner reports the result; a leaked socket must not turn into a hang).
import { pathToFileURL } from 'node:url';

globalThis.UVU_DEFER = 1;
globalThis.UVU_QUEUE = [[null]];
globalThis.UVU_INDEX = 0;
const { exec } = await import('uvu');
await import(pathToFileURL(process.argv[2]).href);
await exec();
setTimeout(() => process.exit(process.exitCode ?? 0), 50).unref?.();
process.exit(process.exitCode ?? 0);
