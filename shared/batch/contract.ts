/**
 * The batch scoring workflow's contract: the `batchRun` orchestration, its `batchChunk` sub-orchestrations and the
 * batch activities — names (as they appear in durable histories: never rename one, running and finished instances
 * replay by name) and the types of what goes in and comes out. Orchestrators call through
 * `call(context, BATCH.x, …)`, activities register with `registerActivity(BATCH.x, …)` (shared/workflow.ts).
 *
 * How the activities report errors (`registerActivity`, shared/workflow.ts, as for the deploy activities): a problem
 * the user must fix comes back as `ActivityResult` `{ ok: false, error }`; anything retryable is thrown (its code in
 * the failure details) so durable retries apply.
 */
import type { BatchPool, ErrorInfo, FilesAs, RuntimeKind } from '../seams';
import { activity, orchestration, resultActivity, type ActivityResult } from '../workflow';
import type { BatchInputs, BatchJob } from './job';
import type { BatchCounts, BatchRunStatus, BatchSummary } from './merge';
import type { PlanCursor, PlanSummary } from './plan';
import type { BatchPoolKind } from './pools';
import type { MiniBatchOutcome } from './results';
import type { ThresholdBaseline, ThresholdCounts, ThresholdLimits, ThresholdTrip } from './thresholds';

export type { ActivityResult };

// ---------------------------------------------------------------- the run

/** The job as the orchestration carries it: an explicit input list is replaced by its length (it can be long). */
export type BatchJobSettings = Omit<BatchJob, 'inputs'> & { inputs: Extract<BatchInputs, { kind: 'prefix' }> | { kind: 'blobs'; count: number } };

export interface BatchRunSource {
  kind: 'http' | 'blob' | 'servicebus';
  /** The triggering event (blob path + ETag, message id, request id). */
  eventId: string;
  /** Where the job came from (a blob path), for people. */
  location?: string;
}

export interface BatchRunInput {
  runId: string;
  job: BatchJobSettings;
  /** `container/blob` of the full job definition (`<root>job.json`). */
  jobBlob: string;
  poolKind: BatchPoolKind;
  poolId: string;
  source: BatchRunSource;
  /** HTTP: SHA-256 of the request body, compared when the same Idempotency-Key comes again. */
  requestDigest?: string;
  /**
   * The caller's W3C `traceparent` (HTTP header; Service Bus message's `Diagnostic-Id` / `traceparent` property),
   * checked (`checkedTraceparent`: a malformed one is dropped, never an error): the run's root span links to it
   * (shared/telemetry.ts). A run started by a deployment (training message) links to that deployment's step. Absent for blob-triggered runs and runs started before it existed.
   */
  traceparent?: string;
}

/** `batchRun`'s output (Completed runs). */
export interface BatchRunResult {
  runId: string;
  status: BatchSummary['status'];
  counts: BatchCounts;
  output: BatchSummary['output'];
  summary: { container: string; blob: string };
}

/** The image a run's pool runs (`BatchPoolRequest.image`). */
export interface BatchImage {
  name: string;
  version: number;
  imageRef: string;
  runtime: RuntimeKind;
  contextBlob: string;
}

// ---------------------------------------------------------------- activity payloads

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
  /** Files reach run() as local paths (pool on this machine) or inline content (remote pools). */
  filesAs: FilesAs;
}

/** Several mini-batches in one activity call (`batchScoreMiniBatches`): scored concurrently, outcomes in this order. */
export interface ScoreMiniBatchesInput extends Omit<ScoreMiniBatchInput, 'index' | 'attempt' | 'nodeUri'> {
  items: Array<Pick<ScoreMiniBatchInput, 'index' | 'attempt' | 'nodeUri'>>;
}

/**
 * `batchScoreMiniBatchGroup`: several mini-batches in one activity call, scored concurrently, their results written as
 * one blob (`RunLayout.resultGroup`: the name lists each item's index, attempt and run), outcomes in this order.
 */
export interface ScoreMiniBatchGroupInput extends Omit<ScoreMiniBatchInput, 'index' | 'attempt' | 'nodeUri'> {
  items: Array<Pick<ScoreMiniBatchInput, 'index' | 'attempt' | 'nodeUri'> & {
    /** 0-based: runs of this attempt whose call failed as a whole before this one (a re-run writes a newer blob). */
    run: number;
  }>;
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
  /**
   * The run this step belongs to: its span joins the run's trace (shared/telemetry.ts). Telemetry only — an
   * activity scheduled before the field existed (an in-flight run's history) has none and works the same, traced on its own.
   */
  runId?: string;
}

// ---------------------------------------------------------------- the chunk sub-orchestration

export interface BatchChunkInput {
  runId: string;
  chunk: number;
  from: number;
  to: number;
  /** This is the run's last chunk: once everything in it is scheduled, allowed_failed_percent is checked. */
  isLast: boolean;
  totals: { miniBatchCount: number; itemCount: number };
  limits: ThresholdLimits;
  baseline: ThresholdBaseline;
  nodeUris: string[];
  window: number;
  runMaxTry: number;
  scoringStartedAt: string;
  score: Omit<ScoreMiniBatchInput, 'runId' | 'index' | 'attempt' | 'nodeUri'>;
  /**
   * Mini-batches per scoring activity call (`batchScoreMiniBatches`). Absent in chunks started before it existed:
   * one `batchScoreMiniBatch` call per mini-batch, so their histories replay unchanged.
   */
  perCall?: number;
  /**
   * The calls are `batchScoreMiniBatchGroup` (one result blob per call). Absent in chunks started before it existed:
   * `batchScoreMiniBatches` (one result blob per mini-batch), so their histories replay unchanged.
   */
  groupedResults?: boolean;
}

export interface BatchChunkResult {
  counts: ThresholdCounts;
  trip: ThresholdTrip | null;
  lastError?: ErrorInfo & { miniBatch: number };
  /** Mini-batch re-runs (attempts after the first). */
  retries: number;
  /** A mini-batch's activity kept failing (`MiniBatchNotRecorded`): the run fails with this error. */
  notRecorded?: ErrorInfo;
}

// ---------------------------------------------------------------- names

export const BATCH = {
  /** One batch run (orchestrations/batchRun.ts). */
  run: orchestration<BatchRunInput, BatchRunResult>('batchRun'),
  /** One plan chunk of a run (orchestrations/batchChunk.ts). */
  chunk: orchestration<BatchChunkInput, BatchChunkResult>('batchChunk'),

  resolveImage: resultActivity<ResolveImageInput, BatchImage>('batchResolveImage'),
  provisionPool: resultActivity<ProvisionPoolInput, ProvisionPoolOutput>('batchProvisionPool'),
  planPage: resultActivity<PlanPageInput, PlanPageOutput>('batchPlanPage'),
  scoreMiniBatch: activity<ScoreMiniBatchInput, MiniBatchOutcome>('batchScoreMiniBatch'),
  scoreMiniBatches: activity<ScoreMiniBatchesInput, MiniBatchOutcome[]>('batchScoreMiniBatches'),
  scoreMiniBatchGroup: activity<ScoreMiniBatchGroupInput, MiniBatchOutcome[]>('batchScoreMiniBatchGroup'),
  finalize: resultActivity<FinalizeActivityInput, FinalizeOutput>('batchFinalize'),
  teardownPool: activity<TeardownPoolInput, { poolId: string }>('batchTeardownPool'),
} as const;

/** The orchestration names on their own (clients start runs and read statuses by name). */
export const BATCH_RUN_ORCHESTRATION = BATCH.run.name;
export const BATCH_CHUNK_ORCHESTRATION = BATCH.chunk.name;
