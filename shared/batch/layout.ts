/**
 * Blob names of one batch run, all under `<output.container>/<output.prefix><runId>/`:
 *
 *   plan/000000.json        mini-batch descriptors 0..499, plan/000001.json 500..999, ... (PLAN_CHUNK_SIZE each)
 *   plan.json               the plan's totals (written when planning completes)
 *   results/00000000.json   one result per mini-batch index (re-running a mini-batch overwrites it): runs whose chunks
 *                           were started before grouped results
 *   results/00000040-00000047a1r0.json
 *                           the results of one scoring call (`batchScoreMiniBatchGroup`): the name lists the call's
 *                           mini-batches with their attempt and run (see `resultGroupName`); the latest (attempt, run)
 *                           of an index is its result
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
  /** The per-index result blob (runs whose chunks were started before grouped results). */
  result(index: number): string;
  /** The result blob of one grouped scoring call (see `resultGroupName`). */
  resultGroup(items: readonly ResultKey[]): string;
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
    resultGroup: (items) => `${root}results/${resultGroupName(items)}.json`,
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

/**
 * One mini-batch of a grouped result blob: its index, attempt (1-based scoring attempt) and run (0-based: runs of
 * that attempt's scoring call after the activity itself failed). The orchestrator schedules an index's (attempt, run)
 * pairs in increasing order and records the last one, so the largest pair found in storage is the recorded result.
 */
export interface ResultKey {
  index: number;
  attempt: number;
  run: number;
}

const pad8 = (n: number) => String(n).padStart(8, '0');

/**
 * The file name (without `.json`) of a grouped result blob: the items in call order, consecutive indexes with the same
 * attempt and run written as one range — `00000040-00000047a1r0`, `00000017a2r0_00000040-00000042a1r0`. A pure
 * function of the call's input, so a call that runs again writes the same blob.
 */
export function resultGroupName(items: readonly ResultKey[]): string {
  if (items.length === 0) throw new Error('a result group needs at least one mini-batch');
  const parts: string[] = [];
  for (let i = 0; i < items.length; ) {
    let j = i;
    while (j + 1 < items.length && items[j + 1].index === items[j].index + 1 && items[j + 1].attempt === items[i].attempt && items[j + 1].run === items[i].run) j++;
    const { index, attempt, run } = items[i];
    parts.push(`${pad8(index)}${j > i ? `-${pad8(items[j].index)}` : ''}a${attempt}r${run}`);
    i = j + 1;
  }
  return parts.join('_');
}

/**
 * What a blob name under `results/` (the part after the prefix) holds: a grouped blob's items, a per-index blob's
 * index (attempt and run 0: older than any grouped result), or null for anything else.
 */
export function parseResultBlobName(name: string): ResultKey[] | null {
  if (!name.endsWith('.json')) return null;
  const base = name.slice(0, -'.json'.length);
  if (/^\d{8}$/.test(base)) return [{ index: Number(base), attempt: 0, run: 0 }];
  const out: ResultKey[] = [];
  for (const part of base.split('_')) {
    const m = /^(\d{8})(?:-(\d{8}))?a(\d{1,6})r(\d{1,6})$/.exec(part);
    if (!m) return null;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from || to - from >= 10_000) return null;
    for (let index = from; index <= to; index++) out.push({ index, attempt: Number(m[3]), run: Number(m[4]) });
  }
  return out;
}
