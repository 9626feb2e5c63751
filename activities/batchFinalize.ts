/** `batchFinalize`: merges the results in input order (append_row) and writes summary.json (re-running rewrites the same). */
import { BATCH, type FinalizeOutput } from '../shared/batch/contract';
import { runLayout } from '../shared/batch/layout';
import { finalizeRun } from '../shared/batch/merge';
import { emptyPlan, readRunJob } from '../shared/batch/run';
import { getStorage } from '../shared/storage';
import { registerActivity } from '../shared/workflow';

registerActivity(BATCH.finalize, async (input): Promise<FinalizeOutput> => {
  const storage = getStorage();
  const job = await readRunJob(storage, input.jobBlob);
  const layout = runLayout(job, input.runId);
  const s = await finalizeRun(storage.blobService, layout, {
    runId: input.runId,
    job,
    plan: input.plan ?? emptyPlan(job),
    status: input.status,
    ...(input.threshold ? { threshold: input.threshold } : {}),
    ...(input.error ? { error: input.error } : {}),
    startedAt: input.startedAt,
    finishedAt: input.finishedAt,
  });
  return { counts: s.counts, output: s.output, summary: `${layout.container}/${layout.summary}` };
});
