// Stands in for `uvu` inside the XS bundles: the same `test` / `suite` API (hooks, context,
// only, skip, run), recording tests in the harness's registry instead of running them at once.
// The Node runner then runs them one by one over the worker's command channel.

import { registerSuite } from './registry.js';

export function suite(name = '', context = {}) {
  const fresh = () => ({
    name, context: { ...context, __suite__: name }, tests: [], only: [], skipped: [],
    before: [], after: [], beforeEach: [], afterEach: [],
  });
  let state = fresh();
  const it = (testName, fn) => {
    state.tests.push({ name: testName, fn });
  };
  it.only = (testName, fn) => {
    state.only.push({ name: testName, fn });
  };
  it.skip = (testName) => {
    state.skipped.push(state.name ? `${state.name} › ${testName}` : testName);
  };
  it.before = (fn) => {
    state.before.push(fn);
  };
  it.after = (fn) => {
    state.after.push(fn);
  };
  it.before.each = (fn) => {
    state.beforeEach.push(fn);
  };
  it.after.each = (fn) => {
    state.afterEach.push(fn);
  };
  // As uvu does: run() queues what was declared so far and starts the suite afresh, so the shared
  // `test` serves the next file too (the Moddable runner loads every test file into one VM).
  it.run = () => {
    registerSuite(state);
    state = fresh();
  };
  return it;
}

export const test = suite();

export function exec() {
  return Promise.resolve(true);
}
