/**
 * The end of a batch run: merge the mini-batch results (`readResultsInOrder`: the latest result of each index, grouped
 * or per-index blobs) in input order into one append_row output file and write the summary blob. Each index is handed
 * out exactly once, so a mini-batch that ran twice (retries, a host restart) contributes its rows once; re-running the
 * merge rewrites the same output (same blocks, same order).
 *
 * ParallelRunConfig.output_action: "'append_row' – All values output by run() method invocations will be
 * aggregated into one unique file which is created in the output location. 'summary_only' – User script is
 * expected to store the output itself. An output row is still expected for each successful input item
 * processed. The system uses this output only for error threshold calculation."
 * (https://learn.microsoft.com/en-us/python/api/azureml-pipeline-steps/azureml.pipeline.steps.parallelrunconfig)
 */
import type { BlobServiceClient } from '@azure/storage-blob';
import type { ErrorInfo } from '../seams';
import { getJson, putJson } from './blobs';
import type { BatchJob } from './job';
import type { RunLayout } from './layout';
import type { PlanSummary } from './plan';
import { capError, readResultsInOrder } from './results';
import type { ThresholdTrip } from './thresholds';

/** Failure entries kept in the summary (the rest are counted in `failuresOmitted`). */
export const MAX_SUMMARY_FAILURES = 100;
/** Input references kept per failure entry. */
export const MAX_INPUTS_PER_FAILURE = 20;
/** Output block size: rows are staged in blocks of about this many bytes. */
const BLOCK_BYTES = 4 * 1024 * 1024;

export type BatchRunStatus = 'Succeeded' | 'Failed' | 'Terminated';

export interface FailureEntry {
  miniBatch: number;
  status: 'partial' | 'failed' | 'not_run';
  failedItems: number;
  inputs: string[];
  inputsOmitted?: number;
  error: ErrorInfo;
}

export interface BatchCounts {
  miniBatches: { total: number; succeeded: number; partial: number; failed: number; notRun: number };
  /** Inputs: files for `files`, rows for `tabular`. Items of mini-batches that never ran are `notRun`. */
  items: { total: number; succeeded: number; failed: number; notRun: number };
  /** Elements run() returned in all (append_row writes them all). */
  returned: number;
}

export interface BatchSummary {
  runId: string;
  status: BatchRunStatus;
  /** The threshold that stopped the run, with its counts. */
  threshold?: ThresholdTrip;
  error?: ErrorInfo;
  counts: BatchCounts;
  failures: FailureEntry[];
  failuresOmitted: number;
  timings: {
    startedAt: string;
    finishedAt: string;
    durationMs: number;
    /** Sum of mini-batch durations (scoring work). */
    scoringMs: number;
    miniBatchMs: { min: number; mean: number; max: number } | null;
  };
  /** The merged output (append_row), as container/blob with its row count. */
  output: { container: string; blob: string; rows: number; bytes: number } | null;
  plan: PlanSummary;
  job: BatchJob;
}

export interface FinalizeInput {
  runId: string;
  job: BatchJob;
  plan: PlanSummary;
  /** The run's final status, as the orchestrator decided it. */
  status: BatchRunStatus;
  threshold?: ThresholdTrip;
  error?: ErrorInfo;
  /** ISO times (the orchestrator's `currentUtcDateTime` values, for determinism). */
  startedAt: string;
  finishedAt: string;
  /** Result reads in flight (default 16). */
  concurrency?: number;
}

/**
 * Merges the results of mini-batches 0..plan.miniBatchCount-1 (append_row) and writes `summary.json`.
 * Missing results count as `not_run` (the run stopped before scheduling them). Returns the summary.
 */
export async function finalizeRun(service: Pick<BlobServiceClient, 'getContainerClient'>, layout: RunLayout, input: FinalizeInput): Promise<BatchSummary> {
  const { job, plan } = input;
  const container = service.getContainerClient(layout.container);
  const output = container.getBlockBlobClient(layout.output);
  const appendRow = job.outputAction === 'append_row';

  const counts: BatchCounts = {
    miniBatches: { total: plan.miniBatchCount, succeeded: 0, partial: 0, failed: 0, notRun: 0 },
    items: { total: plan.itemCount, succeeded: 0, failed: 0, notRun: 0 },
    returned: 0,
  };
  const failures: FailureEntry[] = [];
  let failuresOmitted = 0;
  let scoringMs = 0;
  let minMs = Infinity;
  let maxMs = 0;
  let timed = 0;

  const blockIds: string[] = [];
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let rows = 0;
  let bytes = 0;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const id = Buffer.from(`block-${String(blockIds.length).padStart(8, '0')}`).toString('base64');
    const body = Buffer.concat(pending);
    await output.stageBlock(id, body, body.length);
    blockIds.push(id);
    pending = [];
    pendingBytes = 0;
  };
  const addFailure = (f: FailureEntry) => {
    if (failures.length >= MAX_SUMMARY_FAILURES) {
      failuresOmitted++;
      return;
    }
    const inputs = f.inputs.slice(0, MAX_INPUTS_PER_FAILURE);
    failures.push({ ...f, inputs, ...(f.inputs.length > inputs.length ? { inputsOmitted: f.inputs.length - inputs.length } : {}), error: capError(f.error) });
  };

  for await (const r of readResultsInOrder(container, layout, plan.miniBatchCount, input.concurrency ?? 16)) {
    if (!r) {
      counts.miniBatches.notRun++;
      continue; // item counts of not-run mini-batches are derived below from the plan total
    }
    counts.miniBatches[r.status]++;
    counts.items.succeeded += r.succeeded;
    counts.items.failed += r.failed;
    counts.returned += r.returned;
    scoringMs += r.durationMs;
    minMs = Math.min(minMs, r.durationMs);
    maxMs = Math.max(maxMs, r.durationMs);
    timed++;
    if (r.status !== 'succeeded') {
      addFailure({
        miniBatch: r.index,
        status: r.status,
        failedItems: r.failed,
        inputs: r.failedInputs ?? [],
        error: r.error ?? { code: 'RunFailed', message: 'mini-batch failed' },
      });
    }
    if (appendRow && r.rows && r.rows.length > 0) {
      const chunk = Buffer.from(r.rows.join('\n') + '\n');
      pending.push(chunk);
      pendingBytes += chunk.length;
      rows += r.rows.length;
      bytes += chunk.length;
      if (pendingBytes >= BLOCK_BYTES) await flush();
    }
  }
  counts.items.notRun = Math.max(0, plan.itemCount - counts.items.succeeded - counts.items.failed);

  let outputRef: BatchSummary['output'] = null;
  if (appendRow) {
    await flush();
    if (blockIds.length > 0) {
      await output.commitBlockList(blockIds, { blobHTTPHeaders: { blobContentType: 'text/plain; charset=utf-8' } });
    } else {
      await output.upload(Buffer.alloc(0), 0, { blobHTTPHeaders: { blobContentType: 'text/plain; charset=utf-8' } });
    }
    outputRef = { container: layout.container, blob: layout.output, rows, bytes };
  }

  const summary: BatchSummary = {
    runId: input.runId,
    status: input.status,
    ...(input.threshold ? { threshold: input.threshold } : {}),
    ...(input.error ? { error: capError(input.error) } : {}),
    counts,
    failures,
    failuresOmitted,
    timings: {
      startedAt: input.startedAt,
      finishedAt: input.finishedAt,
      durationMs: Date.parse(input.finishedAt) - Date.parse(input.startedAt),
      scoringMs,
      miniBatchMs: timed > 0 ? { min: minMs, mean: Math.round(scoringMs / timed), max: maxMs } : null,
    },
    output: outputRef,
    plan,
    job,
  };
  await putJson(container, layout.summary, summary);
  return summary;
}

/** The summary blob of a run, or null before the run finished. */
export function readSummary(service: Pick<BlobServiceClient, 'getContainerClient'>, layout: RunLayout): Promise<BatchSummary | null> {
  return getJson<BatchSummary>(service.getContainerClient(layout.container), layout.summary);
}
