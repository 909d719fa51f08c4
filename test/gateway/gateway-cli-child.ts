// Runs `gridlet gateway` in a child process for cli.test.ts (signals and stdout as a user sees them).
import { gatewayMain } from '../../gateway/cli.js';

process.exitCode = await gatewayMain(process.argv.slice(2));
