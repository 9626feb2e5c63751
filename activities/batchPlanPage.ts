/** `batchPlanPage`: lists one page of a run's inputs and writes its mini-batch descriptors (idempotent per cursor). */
import { BATCH, type PlanPageOutput } from '../shared/batch/contract';
import { runLayout } from '../shared/batch/layout';
import { planInputsPage } from '../shared/batch/plan';
import { readRunJob } from '../shared/batch/run';
import { getStorage } from '../shared/storage';
import { registerActivity } from '../shared/workflow';

registerActivity(BATCH.planPage, async (input): Promise<PlanPageOutput> => {
  const storage = getStorage();
  const job = await readRunJob(storage, input.jobBlob);
  const r = await planInputsPage(storage.blobService, job, runLayout(job, input.runId), input.cursor);
  return { done: r.done, cursor: r.cursor, ...(r.plan ? { plan: r.plan } : {}) };
});
