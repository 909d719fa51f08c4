// Stands in for `uvu` inside the XS bundles: the same `test` / `suite` API (hooks, context,
// only, skip, run), recording tests in the harness's registry instead of running them at once.
// The Node runner then runs them one by one over the worker's command channel.

import { registerSuite } from './harness.js';

export function suite(name = '', context = {}) {
  const state = {
    name, context: { ...context, __suite__: name }, tests: [], only: [], skipped: [],
    before: [], after: [], beforeEach: [], afterEach: [], ran: false,
  };
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
  it.run = () => {
    if (state.ran) return;
    state.ran = true;
    registerSuite(state);
  };
  return it;
}

export const test = suite();

export function exec() {
  return Promise.resolve(true);
}
