/**
 * Inputs and outputs of the batch activities (activities/batch-*.ts), and how they report errors:
 * - a problem the user must fix (an AppError with a 4xx status: missing inputs, unknown model...) comes back as
 *   `{ ok: false, error }` — retrying would not help, so the activity does not throw;
 * - anything else is thrown as `[Code] message`, so durable retries apply and the orchestrator can still tell the
 *   code (`errorInfoOfTask`).
 */
import { AppError, toErrorInfo } from '../errors';
import type { BatchPool, ErrorInfo, FilesAs } from '../seams';
import type { ThresholdTrip } from './thresholds';
import type { BatchCounts, BatchRunStatus } from './merge';
import type { BatchImage } from './run';
import type { BatchPoolKind } from './pools';
import type { PlanCursor, PlanSummary } from './plan';

export type ActivityResult<T> = { ok: true; value: T } | { ok: false; error: ErrorInfo };

/** Runs `fn`: user errors → `{ ok: false }`, other errors thrown with their code in the message. */
export async function asActivityResult<T>(fn: () => Promise<T>): Promise<ActivityResult<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    if (e instanceof AppError && e.httpStatus < 500) return { ok: false, error: e.toInfo() };
    throw asThrowable(e);
  }
}

/** An Error whose message carries the code: `[Code] message` (secrets removed). */
export function asThrowable(e: unknown): Error {
  const info = toErrorInfo(e);
  return new Error(`[${info.code}] ${info.message}`);
}

/** The `{ code, message }` of a failed task / thrown error (`[Code] message` → code), for orchestrators. */
export function errorInfoOfTask(e: unknown, fallbackCode = 'InternalError'): ErrorInfo {
  const message = e instanceof Error ? e.message : String(e);
  const m = /\[([A-Z][A-Za-z]+)\] ([\s\S]*)$/.exec(message);
  return m ? { code: m[1], message: m[2].slice(0, 1000) } : { code: fallbackCode, message: message.slice(0, 1000) };
}

export interface ResolveImageInput {
  runId: string;
  jobBlob: string;
}

export interface ProvisionPoolInput {
  runId: string;
  poolId: string;
  kind: BatchPoolKind;
  image: BatchImage;
  nodeCount: number;
  processCountPerNode: number;
  runInvocationTimeoutMs: number;
}
export interface ProvisionPoolOutput extends BatchPool {
  /**
   * How the pool wants files passed to run() (its provider's `filesAs`). Absent in results recorded before pools
   * reported it: `recordedPoolFilesAs(kind)` (shared/platform/compose.ts) answers for those.
   */
  filesAs?: FilesAs;
}

export interface PlanPageInput {
  runId: string;
  jobBlob: string;
  cursor?: PlanCursor;
}
export interface PlanPageOutput {
  done: boolean;
  cursor: PlanCursor;
  plan?: PlanSummary;
}

export interface ScoreMiniBatchInput {
  runId: string;
  /** The pool whose keys the call sends (read from its record by the activity; absent: no key is sent). */
  poolId?: string;
  output: { container: string; prefix: string };
  appendRowFileName: string;
  index: number;
  /** 1-based. */
  attempt: number;
  nodeUri: string;
  /** run_invocation_timeout (ms), enforced by the node. */
  timeoutMs: number;
  /** Bound on the whole call, queueing for a free worker included. */
  requestTimeoutMs: number;
  keepRows: boolean;
  /** Files reach run() as local paths (pool on this machine) or inline content (remote pools): the pool's `filesAs`. */
  filesAs: FilesAs;
}

export interface FinalizeActivityInput {
  runId: string;
  jobBlob: string;
  plan: PlanSummary | null;
  status: BatchRunStatus;
  threshold?: ThresholdTrip;
  error?: ErrorInfo;
  startedAt: string;
  finishedAt: string;
}
export interface FinalizeOutput {
  counts: BatchCounts;
  output: { container: string; blob: string; rows: number; bytes: number } | null;
  /** `container/blob` of summary.json. */
  summary: string;
}

export interface TeardownPoolInput {
  poolId: string;
  kind: BatchPoolKind;
}
