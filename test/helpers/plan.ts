/** Test helper: plans all of a job's inputs in one call, page after page (the app plans one page per activity). */
import type { BlobServiceClient } from '@azure/storage-blob';
import type { BatchJob } from '../../shared/batch/job';
import type { RunLayout } from '../../shared/batch/layout';
import { planInputsPage, type PlanOptions, type PlanSummary } from '../../shared/batch/plan';

export async function planInputs(
  service: Pick<BlobServiceClient, 'getContainerClient'>,
  job: BatchJob,
  layout: RunLayout,
  opts: PlanOptions = {},
): Promise<PlanSummary> {
  let r = await planInputsPage(service, job, layout, undefined, opts);
  while (!r.done) r = await planInputsPage(service, job, layout, r.cursor, opts);
  return r.plan!;
}
