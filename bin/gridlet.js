#!/usr/bin/env node
// gridlet's command line. TypeScript sources are loaded through tsx, so there is no build step.
import { register } from 'tsx/esm/api';

if (!Promise.withResolvers) {
  // js-libp2p calls Promise.withResolvers, which Node 20 lacks.
  Promise.withResolvers = function () {
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    return { promise, resolve, reject };
  };
}

register();
const { main } = await import('../host/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
