// Body 4, job: offloaded work (LLM inference). The frame is committed first (its counter is spent),
// then the job goes to the offload queue, which answers with job-result bodies — the answer in chunks,
// or an error — without holding up the frames behind it. `job.cancel` stops a job of the same device.

import type { Job } from '../../firmware/core/wire/bodies.js';
import type { UplinkHandler } from './handler.js';

export const job: UplinkHandler<Job> = {
  async apply(frame, b, gw) {
    await frame.commit();
    gw.offload.submit(frame.device.id, b.job, b.kind, b.input);
  },
};
