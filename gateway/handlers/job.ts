// Body 4, job: offloaded work (LLM inference). No offload backend exists yet, so every job is
// answered at once with a job-result error: a device never waits for an answer that cannot come.

import { Body, type Job } from '../../firmware/core/wire/bodies.js';
import type { UplinkHandler } from './handler.js';

export const job: UplinkHandler<Job> = {
  async apply(frame, b, gw) {
    await frame.commit();
    if (b.kind === 'job.cancel') return;
    await gw.downlink.send(frame.device, {
      type: Body.jobResult, job: b.job, index: 0, text: '', final: true, error: 'no offload backend configured',
    });
  },
};
