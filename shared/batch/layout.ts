/**
 * Blob names of one batch run, all under `<output.container>/<output.prefix><runId>/`:
 *
 *   plan/000000.json        mini-batch descriptors 0..499, plan/000001.json 500..999, ... (PLAN_CHUNK_SIZE each)
 *   plan.json               the plan's totals (written when planning completes)
 *   results/00000000.json   one result per mini-batch index (re-running a mini-batch overwrites it)
 *   <append_row_file_name>  the merged output (append_row), rows in input order
 *   summary.json            counts, failures (capped), timings, the job definition
 *
 * Every name is a pure function of the run id and the index, so activities that run twice write the same blobs.
 */
import { AppError } from '../errors';
import { blobNameReason, checkRunId } from '../manifest/names';
import type { BatchJob } from './job';

/** Mini-batch descriptors per plan chunk; also the natural size of one fan-out sub-orchestration. */
export const PLAN_CHUNK_SIZE = 500;

export interface RunLayout {
  container: string;
  /** `<prefix><runId>/` */
  root: string;
  planSummary: string;
  planChunk(chunk: number): string;
  result(index: number): string;
  resultsPrefix: string;
  /** The merged append_row output (present only for output_action append_row). */
  output: string;
  summary: string;
}

export function runLayout(job: Pick<BatchJob, 'output' | 'appendRowFileName'>, runId: string): RunLayout {
  checkRunId(runId, 'Batch run id');
  const root = `${job.output.prefix}${runId}/`;
  const why = blobNameReason(root, { prefix: true });
  if (why) throw new AppError('InvalidJobDefinition', `Invalid batch job definition: output.prefix "${job.output.prefix}" ${why}`, 400);
  return {
    container: job.output.container,
    root,
    planSummary: `${root}plan.json`,
    planChunk: (chunk) => `${root}plan/${String(chunk).padStart(6, '0')}.json`,
    result: (index) => `${root}results/${String(index).padStart(8, '0')}.json`,
    resultsPrefix: `${root}results/`,
    output: `${root}${job.appendRowFileName}`,
    summary: `${root}summary.json`,
  };
}

/** The plan chunk that holds mini-batch `index`. */
export function chunkOf(index: number): number {
  return Math.floor(index / PLAN_CHUNK_SIZE);
}

/** The plan chunks of a run as index ranges [from, to): one fan-out sub-orchestration each. */
export function chunkRanges(miniBatchCount: number): Array<{ chunk: number; from: number; to: number }> {
  const out: Array<{ chunk: number; from: number; to: number }> = [];
  for (let from = 0, chunk = 0; from < miniBatchCount; from += PLAN_CHUNK_SIZE, chunk++) {
    out.push({ chunk, from, to: Math.min(miniBatchCount, from + PLAN_CHUNK_SIZE) });
  }
  return out;
}
