/** `batchPlanPage`: lists one page of a run's inputs and writes its mini-batch descriptors (idempotent per cursor). */
import * as df from 'durable-functions';
import { asActivityResult, type PlanPageInput, type PlanPageOutput } from '../shared/batch/activity-io';
import { runLayout } from '../shared/batch/layout';
import { planInputsPage } from '../shared/batch/plan';
import { BATCH_ACTIVITIES, readRunJob } from '../shared/batch/run';
import { getStorage } from '../shared/storage';

df.app.activity(BATCH_ACTIVITIES.planPage, {
  handler: (input: PlanPageInput) =>
    asActivityResult(async (): Promise<PlanPageOutput> => {
      const storage = getStorage();
      const job = await readRunJob(storage, input.jobBlob);
      const r = await planInputsPage(storage.blobService, job, runLayout(job, input.runId), input.cursor);
      return { done: r.done, cursor: r.cursor, ...(r.plan ? { plan: r.plan } : {}) };
    }),
});
