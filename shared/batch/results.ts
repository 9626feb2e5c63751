/**
 * Mini-batch results: one blob per mini-batch index (`results/00000042.json`; re-running overwrites, never
 * appends), counted as ParallelRunConfig does — one returned element per input is one success, inputs without
 * a returned element are failed inputs (see thresholds.ts for the doc references).
 */
import type { ContainerClient } from '@azure/storage-blob';
import type { ErrorInfo } from '../seams';
import { putJson } from './blobs';
import type { RunLayout } from './layout';
import type { MiniBatch } from './plan';
import type { OutcomeCounts } from './thresholds';

export type MiniBatchStatus = 'succeeded' | 'partial' | 'failed';

/** The stored result of one mini-batch (its latest attempt). */
export interface MiniBatchResult {
  index: number;
  /** `succeeded`: one element per input; `partial`: fewer elements; `failed`: run() failed, timed out, or inputs unreadable. */
  status: MiniBatchStatus;
  /** 1-based attempt number, when the caller counts attempts. */
  attempt?: number;
  itemCount: number;
  /** Elements run() returned (may exceed itemCount: AML appends every returned row). */
  returned: number;
  succeeded: number;
  failed: number;
  /** Whether another try may help (false for changed/unreadable inputs). */
  retryable: boolean;
  error?: ErrorInfo;
  /** The inputs, described for people (only when some failed): `container/blob` or `container/blob rows 1-100`. */
  failedInputs?: string[];
  /** append_row output lines, in the order run() returned them (absent for summary_only and failures). */
  rows?: string[];
  node?: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
}

/** The compact outcome an activity returns to the orchestrator (no rows, bounded error text). */
export interface MiniBatchOutcome extends OutcomeCounts {
  status: MiniBatchStatus;
  retryable: boolean;
  durationMs: number;
  error?: ErrorInfo;
}

/** Longest error message kept in results, outcomes and the summary. */
export const MAX_ERROR_MESSAGE = 500;

export function outcomeOf(r: MiniBatchResult): MiniBatchOutcome {
  return {
    index: r.index,
    status: r.status,
    itemCount: r.itemCount,
    succeeded: r.succeeded,
    failed: r.failed,
    miniBatchFailed: r.status !== 'succeeded',
    retryable: r.retryable,
    durationMs: r.durationMs,
    ...(r.error ? { error: capError(r.error) } : {}),
  };
}

/** Writes (overwrites) the result blob of `r.index` and returns the compact outcome. */
export async function writeMiniBatchResult(container: ContainerClient, layout: RunLayout, r: MiniBatchResult): Promise<MiniBatchOutcome> {
  await putJson(container, layout.result(r.index), r);
  return outcomeOf(r);
}

/**
 * Counts a run() return against a mini-batch: `min(returned, inputs)` successes, the rest failed inputs.
 * `keepRows` converts the elements to output lines (append_row).
 */
export function countReturn(mb: MiniBatch, elements: unknown[], keepRows: boolean): Pick<MiniBatchResult, 'status' | 'returned' | 'succeeded' | 'failed' | 'rows' | 'failedInputs' | 'error'> {
  const succeeded = Math.min(elements.length, mb.itemCount);
  const failed = mb.itemCount - succeeded;
  return {
    status: failed === 0 ? 'succeeded' : 'partial',
    returned: elements.length,
    succeeded,
    failed,
    ...(keepRows ? { rows: elements.map(toLine) } : {}),
    ...(failed > 0
      ? {
          failedInputs: describeInputs(mb),
          error: {
            code: 'MissingResults',
            message: `run() returned ${elements.length} element(s) for ${mb.itemCount} input(s); ${failed} input(s) counted as failed`,
          },
        }
      : {}),
  };
}

/**
 * The result of a mini-batch none of whose inputs got scored (run() failed or timed out, inputs unreadable, or the
 * activity itself failed after its tries — write it with `writeMiniBatchResult` so the summary counts it).
 */
export function failedResult(
  mb: MiniBatch,
  error: ErrorInfo,
  at: { startedAt: string; finishedAt: string; attempt?: number; node?: string; retryable?: boolean },
): MiniBatchResult {
  return {
    index: mb.index,
    status: 'failed',
    ...(at.attempt !== undefined ? { attempt: at.attempt } : {}),
    itemCount: mb.itemCount,
    returned: 0,
    succeeded: 0,
    failed: mb.itemCount,
    retryable: at.retryable ?? false,
    error: capError(error),
    failedInputs: describeInputs(mb),
    ...(at.node !== undefined ? { node: at.node } : {}),
    startedAt: at.startedAt,
    finishedAt: at.finishedAt,
    durationMs: Date.parse(at.finishedAt) - Date.parse(at.startedAt),
  };
}

/** One output line per returned element: strings as they are (JSON-quoted if multi-line), anything else as JSON. */
export function toLine(el: unknown): string {
  if (typeof el === 'string') return /[\r\n]/.test(el) ? JSON.stringify(el) : el;
  const s = JSON.stringify(el);
  return s === undefined ? 'null' : s;
}

/** People-readable references to a mini-batch's inputs. */
export function describeInputs(mb: MiniBatch): string[] {
  if (mb.kind === 'files') return mb.files.map((f) => `${f.container}/${f.blob}`);
  return [`${mb.file.container}/${mb.file.blob} rows ${mb.firstRow + 1}-${mb.firstRow + mb.itemCount}`];
}

export function capError(e: ErrorInfo): ErrorInfo {
  return { code: e.code, message: e.message.length > MAX_ERROR_MESSAGE ? `${e.message.slice(0, MAX_ERROR_MESSAGE - 1)}…` : e.message };
}
