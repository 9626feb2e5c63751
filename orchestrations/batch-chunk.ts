/**
 * `batchChunk`: scores the mini-batches [from, to) of one plan chunk (at most 500, so its history stays small).
 *
 * Mini-batches go out in waves of `window` (about two per pool worker: each worker has the next one queued on its
 * node); each is the `batchScoreMiniBatch` activity, re-run (in the next wave) up to run_max_try times when it
 * failed in a retryable way (run() raised, timed out, the node was unreachable). Waves, not a sliding window over
 * `Task.any`: a task that was already yielded must never be yielded again inside a new `Task.any`/`Task.all` —
 * the SDK would emit its action a second time and the host would schedule the activity twice. Outcomes feed a ThresholdTracker that starts from the counts
 * of the earlier chunks (`baseline`), so error_threshold / allowed_failed_count / allowed_failed_percent trip exactly
 * where they would over the whole run. Outcomes are recorded in index order within a wave; when a threshold trips,
 * nothing more is scheduled, the rest of the wave (already running) is still recorded (the summary counts what really
 * ran) and the chunk returns the trip.
 * The custom status is the whole run's progress (earlier chunks included).
 *
 * Deterministic: no I/O, no clock but `currentUtcDateTime`.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task } from 'durable-functions';
import type { ErrorInfo } from '../shared/seams';
import { computeProgress } from '../shared/batch/progress';
import type { MiniBatchOutcome } from '../shared/batch/results';
import { BATCH_ACTIVITIES, BATCH_CHUNK_ORCHESTRATION } from '../shared/batch/run';
import type { ScoreMiniBatchInput } from '../shared/batch/activity-io';
import { ThresholdTracker, type ThresholdBaseline, type ThresholdCounts, type ThresholdLimits, type ThresholdTrip } from '../shared/batch/thresholds';

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
}

export interface BatchChunkResult {
  counts: ThresholdCounts;
  trip: ThresholdTrip | null;
  lastError?: ErrorInfo & { miniBatch: number };
  /** Mini-batch re-runs (attempts after the first). */
  retries: number;
}

/** Infrastructure retries of one activity call (storage hiccups); scoring failures are retried by the loop below. */
function infraRetry(): df.RetryOptions {
  const r = new df.RetryOptions(500, 3);
  r.backoffCoefficient = 2;
  return r;
}

df.app.orchestration(BATCH_CHUNK_ORCHESTRATION, function* (context: OrchestrationContext) {
  const input = context.df.getInput() as BatchChunkInput;
  const tracker = new ThresholdTracker(input.limits, input.totals, input.baseline);
  const retry = infraRetry();
  const retryQueue: Array<{ index: number; attempt: number }> = [];
  let next = input.from;
  let trip: ThresholdTrip | null = null;
  let lastError: BatchChunkResult['lastError'];
  let retries = 0;
  let allScheduledMarked = false;

  const publish = () =>
    context.df.setCustomStatus(
      computeProgress({
        phase: 'scoring',
        counts: tracker.counts(),
        scoringStartedAt: input.scoringStartedAt,
        now: context.df.currentUtcDateTime,
        threshold: trip,
        lastError: lastError ?? null,
      }),
    );

  publish();
  while (!trip && (next < input.to || retryQueue.length > 0)) {
    // One wave: re-tries first, then new mini-batches, at most `window`.
    const wave = retryQueue.splice(0, input.window);
    while (wave.length < input.window && next < input.to) wave.push({ index: next++, attempt: 1 });
    if (input.isLast && next >= input.to && !allScheduledMarked) {
      allScheduledMarked = true;
      trip = tracker.markAllScheduled();
    }
    const tasks: Task[] = wave.map(({ index, attempt }) => {
      const nodeUri = input.nodeUris[(index + attempt - 1) % input.nodeUris.length];
      const activityInput: ScoreMiniBatchInput = { ...input.score, runId: input.runId, index, attempt, nodeUri };
      return context.df.callActivityWithRetry(BATCH_ACTIVITIES.scoreMiniBatch, retry, activityInput);
    });
    let outcomes: MiniBatchOutcome[];
    try {
      outcomes = (yield context.df.Task.all(tasks)) as MiniBatchOutcome[];
    } catch (e) {
      throw new Error(`[MiniBatchNotRecorded] A mini-batch could not be scored or recorded: ${(e as Error)?.message ?? 'activity failed'}`);
    }
    // In wave (= index) order, so a threshold trips at the same mini-batch on every replay.
    outcomes.forEach((o, k) => {
      if (o.status === 'failed' && o.retryable && wave[k].attempt < input.runMaxTry && !trip) {
        retries++;
        retryQueue.push({ index: o.index, attempt: wave[k].attempt + 1 });
        return;
      }
      if (o.status !== 'succeeded' && o.error) lastError = { ...o.error, miniBatch: o.index };
      const t = tracker.record(o);
      if (t && !trip) trip = t;
    });
    publish();
  }
  const result: BatchChunkResult = { counts: tracker.counts(), trip, ...(lastError ? { lastError } : {}), retries };
  return result;
});
