// Reads a job's answer off a WireDevice and checks it against WIRE.md body 22: chunk indexes from 0
// without gaps, only the last one final, each text at most 200 bytes of whole characters.

import * as assert from 'uvu/assert';
import { Body, type JobResult } from '../../firmware/core/wire/bodies.js';
import { utf8Length } from '../../gateway/offload/chunker.js';
import { sleep } from './support.js';
import type { WireDevice } from './wire-device.js';

/** The job's job-result bodies once its final one is in. */
export async function answer(d: WireDevice, job: number, ms = 5000): Promise<{ parts: JobResult[]; text: string; error?: string }> {
  const of = () => (d.bodies(Body.jobResult) as JobResult[]).filter((b) => b.job === job);
  await d.until(() => of().some((b) => b.final), ms, `the final job-result of job ${job}`);
  await sleep(30); // nothing may follow the final one
  const parts = of().sort((a, b) => a.index - b.index);
  parts.forEach((p, i) => {
    assert.is(p.index, i, 'chunk indexes run from 0 without gaps or repeats');
    assert.is(p.final, i === parts.length - 1, 'only the last chunk is final');
    assert.ok(utf8Length(p.text) <= 200, `chunk ${i} is ${utf8Length(p.text)} bytes`);
    assert.ok(!/[\ud800-\udfff]/u.test(p.text.replace(/[\ud800-\udbff][\udc00-\udfff]/g, '')), 'no chunk ends or starts inside a character');
    if (i < parts.length - 1) assert.is(p.error, undefined);
  });
  const last = parts[parts.length - 1];
  return { parts, text: parts.map((p) => p.text).join(''), error: last.error };
}
