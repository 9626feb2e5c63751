/**
 * `batchRun`: AML-compute-style batch scoring of one job (shared/batch/README.md).
 *
 *   resolve the image → provision the pool → plan the inputs, one listing page per activity →
 *   score plan chunk after plan chunk (`batchChunk` sub-orchestrations, ≤ 500 mini-batches each; thresholds
 *   carried across chunks) → finalize (merge in input order + summary.json) → tear the pool down.
 *
 * The pool is torn down on success and on failure (threshold, bad input, activity failure). A *terminated* run
 * executes nothing more, so its pool is removed by the pool sweep (`sweepBatchPools`: the terminate endpoint, every
 * batch API call, and a timer in Azure) — see shared/batch/pools.ts.
 *
 * Ends Completed (output `BatchRunResult`) or Failed with `[Code] message` (BatchThresholdExceeded, InputNotFound,
 * ...); the custom status keeps the counts and the threshold that tripped.
 * Deterministic: no I/O, no clock but `currentUtcDateTime`, payloads by reference (plan chunks and results in blobs).
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import { BATCH, type ActivityResult, type BatchChunkInput, type BatchRunResult, type FinalizeActivityInput, type FinalizeOutput, type ProvisionPoolInput } from '../shared/batch/contract';
import { chunkRanges } from '../shared/batch/layout';
import type { BatchRunStatus as FinalStatus } from '../shared/batch/merge';
import type { PlanCursor, PlanSummary } from '../shared/batch/plan';
import { computeProgress, type BatchPhase } from '../shared/batch/progress';
import { IN_FLIGHT_PER_WORKER, miniBatchesPerCall, scoringCallTimeoutMs } from '../shared/batch/score';
import { chunkInstanceId, type BatchRunCustomStatus } from '../shared/batch/run';
import type { ThresholdBaseline, ThresholdTrip } from '../shared/batch/thresholds';
import { recordedPoolFilesAs } from '../shared/platform/compose';
import type { ErrorInfo } from '../shared/seams';
import { call, callSub, failureOf, inputOf, registerOrchestration } from '../shared/workflow';

class RunFailure extends Error {
  constructor(readonly info: ErrorInfo) {
    super(`[${info.code}] ${info.message}`);
  }
}

function unwrap<T>(r: ActivityResult<T>): T {
  if (!r.ok) throw new RunFailure(r.error);
  return r.value;
}

registerOrchestration(BATCH.run, function* (context: OrchestrationContext): Generator<Task, BatchRunResult, any> {
  const input = inputOf(context, BATCH.run);
  const { runId, job, poolId, poolKind } = input;
  const startedAt = context.df.currentUtcDateTime.toISOString();
  const retry = new df.RetryOptions(1000, 3);
  retry.backoffCoefficient = 2;

  const status: BatchRunCustomStatus = { runId, phase: 'validating', pool: { poolId, kind: poolKind } };
  const publish = (phase: BatchPhase, patch: Partial<BatchRunCustomStatus> = {}) => {
    Object.assign(status, patch, { phase });
    context.df.setCustomStatus(status);
  };

  let plan: PlanSummary | null = null;
  let trip: ThresholdTrip | null = null;
  let error: ErrorInfo | undefined;
  let provisioning = false;
  let final: FinalStatus = 'Succeeded';

  try {
    publish('provisioning');
    const image = unwrap(yield* call(context, BATCH.resolveImage, { runId, jobBlob: input.jobBlob }, retry));
    publish('provisioning', { image: `${image.name}:${image.version}` });
    provisioning = true; // from here on the pool may exist, even if the activity fails half-way
    const provisionInput: ProvisionPoolInput = {
      runId,
      poolId,
      kind: poolKind,
      image,
      nodeCount: job.nodeCount,
      processCountPerNode: job.processCountPerNode,
      runInvocationTimeoutMs: Math.round(job.runInvocationTimeoutSeconds * 1000),
    };
    const pool = unwrap(yield* call(context, BATCH.provisionPool, provisionInput, retry));
    publish('planning', { pool: { poolId, kind: poolKind, nodes: pool.nodeUris.length } });

    let cursor: PlanCursor | undefined;
    for (;;) {
      const page = unwrap(yield* call(context, BATCH.planPage, { runId, jobBlob: input.jobBlob, ...(cursor ? { cursor } : {}) }, retry));
      cursor = page.cursor;
      if (page.done) {
        plan = page.plan!;
        break;
      }
    }

    const scoringStartedAt = context.df.currentUtcDateTime.toISOString();
    let baseline: ThresholdBaseline = { miniBatchesDone: 0, miniBatchesFailed: 0, itemsSucceeded: 0, itemsFailed: 0 };
    const progressOf = (phase: BatchPhase, b: ThresholdBaseline, t: ThresholdTrip | null, allScheduled: boolean) =>
      computeProgress({
        phase,
        counts: { ...b, miniBatchTotal: plan!.miniBatchCount, itemTotal: plan!.itemCount, allScheduled },
        scoringStartedAt,
        now: context.df.currentUtcDateTime,
        threshold: t,
      });
    const workers = job.nodeCount * job.processCountPerNode;
    const chunks = chunkRanges(plan.miniBatchCount);
    const window = Math.max(1, Math.min(500, workers * IN_FLIGHT_PER_WORKER));
    for (const c of chunks) {
      const chunkId = chunkInstanceId(runId, c.chunk);
      publish('scoring', { progress: progressOf('scoring', baseline, null, false), chunk: { index: c.chunk, count: chunks.length, instanceId: chunkId } });
      const chunkInput: BatchChunkInput = {
        runId,
        chunk: c.chunk,
        from: c.from,
        to: c.to,
        isLast: c.chunk === chunks.length - 1,
        totals: { miniBatchCount: plan.miniBatchCount, itemCount: plan.itemCount },
        limits: { errorThreshold: job.errorThreshold, allowedFailedCount: job.allowedFailedCount, allowedFailedPercent: job.allowedFailedPercent },
        baseline,
        nodeUris: pool.nodeUris,
        window,
        runMaxTry: job.runMaxTry,
        scoringStartedAt,
        score: {
          poolId, // the scoring activity reads the pool's keys by id (they never enter the orchestration)
          output: job.output,
          appendRowFileName: job.appendRowFileName,
          timeoutMs: Math.round(job.runInvocationTimeoutSeconds * 1000),
          // The node enforces run_invocation_timeout; the call may also wait for the mini-batches queued before it.
          requestTimeoutMs: scoringCallTimeoutMs(Math.round(job.runInvocationTimeoutSeconds * 1000)),
          keepRows: job.outputAction === 'append_row',
          filesAs: pool.filesAs ?? recordedPoolFilesAs(poolKind), // the pool says how it wants files (a recorded value: replay-safe)
        },
        perCall: miniBatchesPerCall(window),
        groupedResults: true,
      };
      const r = yield* callSub(context, BATCH.chunk, chunkInput, chunkId);
      if (r.notRecorded) throw new RunFailure(r.notRecorded);
      baseline = { miniBatchesDone: r.counts.miniBatchesDone, miniBatchesFailed: r.counts.miniBatchesFailed, itemsSucceeded: r.counts.itemsSucceeded, itemsFailed: r.counts.itemsFailed };
      publish('scoring', { progress: progressOf('scoring', baseline, r.trip, r.counts.allScheduled) });
      if (r.trip) {
        trip = r.trip;
        break;
      }
    }
    status.chunk = undefined;
    if (trip) {
      final = 'Failed';
      error = { code: 'BatchThresholdExceeded', message: trip.message };
      publish('merging', { threshold: { threshold: trip.threshold, limit: trip.limit, observed: trip.observed, message: trip.message } });
    } else {
      publish('merging');
    }
  } catch (e) {
    final = 'Failed';
    error = e instanceof RunFailure ? e.info : failureOf(e, 'InternalError');
    publish('merging', { error });
  }

  // Finalize: merged output + summary.json, also for failed runs (what ran is kept and counted).
  let finalized: FinalizeOutput | undefined;
  try {
    const finalizeInput: FinalizeActivityInput = {
      runId,
      jobBlob: input.jobBlob,
      plan,
      status: final,
      ...(trip ? { threshold: trip } : {}),
      ...(error ? { error } : {}),
      startedAt,
      finishedAt: context.df.currentUtcDateTime.toISOString(),
    };
    finalized = unwrap(yield* call(context, BATCH.finalize, finalizeInput, retry));
  } catch (e) {
    if (final === 'Succeeded') {
      final = 'Failed';
      error = e instanceof RunFailure ? e.info : failureOf(e, 'InternalError');
    }
  }

  // Teardown, always (the equivalent of `finally`; a terminated run is swept instead).
  if (provisioning) {
    publish('tearing_down', error ? { error } : {});
    try {
      yield* call(context, BATCH.teardownPool, { poolId, kind: poolKind, runId }, retry);
    } catch (e) {
      // The pool record stays, so the sweep removes the pool later; the run's own outcome stands.
      const info = failureOf(e, 'InternalError');
      status.error = status.error ?? { code: 'BatchPoolTeardownFailed', message: `The pool could not be removed yet (it will be swept): ${info.message}` };
    }
  }

  const donePhase: BatchPhase = final === 'Succeeded' ? 'completed' : 'failed';
  if (plan && status.progress) status.progress = { ...status.progress, phase: donePhase };
  publish(donePhase, { ...(finalized ? { counts: finalized.counts } : {}), ...(error ? { error } : {}) });
  if (final !== 'Succeeded') throw new Error(`[${error?.code ?? 'BatchRunFailed'}] ${error?.message ?? 'the batch run failed'}`);
  const out: BatchRunResult = {
    runId,
    status: final,
    counts: finalized!.counts,
    output: finalized!.output,
    summary: { container: finalized!.summary.slice(0, finalized!.summary.indexOf('/')), blob: finalized!.summary.slice(finalized!.summary.indexOf('/') + 1) },
  };
  return out;
});
