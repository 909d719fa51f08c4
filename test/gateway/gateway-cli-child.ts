// Runs `gridlet gateway` in a child process for cli.test.ts (signals and stdout as a user sees them).
import { gatewayMain } from '../../host/cli/gateway.js';

process.exitCode = await gatewayMain(process.argv.slice(2));
