/**
 * `batchChunk`: scores the mini-batches [from, to) of one plan chunk (at most 500, so its history stays small).
 *
 * Mini-batches are scored by the `batchScoreMiniBatchGroup` activity, `perCall` at a time (one call, one completion,
 * one share of an episode and one result blob for several mini-batches; chunks started before it existed use
 * `batchScoreMiniBatches` — one result blob per mini-batch — or, older still, one `batchScoreMiniBatch` call per
 * mini-batch), each mini-batch re-run up to run_max_try times when it failed in a
 * retryable way (run() raised, timed out, the node was unreachable). The window counts mini-batches. At most `window` are in flight (a few per pool
 * worker, queued on its node), as a sliding window refilled in halves: whenever half the window is free, the
 * next mini-batches (re-tries first) are scheduled, while the other half keeps the nodes busy during the
 * orchestrator's turn-around. The durable SDK constrains how: a task that was already yielded must never go into a
 * new `Task.any`/`Task.all` (the SDK would emit its action again and the host would schedule the activity twice —
 * azure-functions-durable-js#574), so each yield is either `Task.any` over never-yielded tasks (schedules them) or
 * one already-scheduled task on its own (the oldest in flight; schedules nothing). After every resume, all finished
 * tasks are recorded in scheduling order. Outcomes feed a ThresholdTracker that starts from the counts of the
 * earlier chunks (`baseline`), so error_threshold / allowed_failed_count / allowed_failed_percent trip exactly where
 * they would over the whole run; when one trips, nothing more is scheduled, what is already running is still
 * waited for and recorded (the summary counts what really ran) and the chunk returns the trip.
 * The custom status is the whole run's progress (earlier chunks included).
 *
 * Deterministic: no I/O, no clock but `currentUtcDateTime`.
 */
import type { OrchestrationContext, Task } from 'durable-functions';
import { BATCH, type BatchChunkResult, type ScoreMiniBatchesInput, type ScoreMiniBatchGroupInput, type ScoreMiniBatchInput } from '../shared/batch/contract';
import { computeProgress } from '../shared/batch/progress';
import { ThresholdTracker, type ThresholdTrip } from '../shared/batch/thresholds';
import { failureOf, inputOf, outputOf, registerOrchestration, schedule } from '../shared/workflow';

/**
 * Runs of one mini-batch whose activity itself failed (storage unreachable after the SDK's own retries) before the
 * chunk gives up. Re-run by the loop below like scoring re-tries, not with callActivityWithRetry: durable retry
 * options are meant for a few calls, not for every call of a large fan-out (the local engine keeps their state
 * for the life of the instance).
 */
const ACTIVITY_MAX_RUNS = 3;

interface Slot {
  index: number;
  attempt: number;
  /** Runs of this attempt whose activity failed (see ACTIVITY_MAX_RUNS). */
  faults: number;
}

/** One scoring call in flight: one mini-batch (`batchScoreMiniBatch`) or several (`batchScoreMiniBatches`). */
interface InFlight {
  slots: Slot[];
  task: Task;
}

/**
 * Free slots that trigger a refill: half the window. Refilling one slot at a time would make the orchestrator
 * wait for the newest task (the only thing a new Task.any may hold), i.e. for the whole window to drain.
 */
export function refillThreshold(window: number): number {
  return Math.max(1, Math.ceil(window / 2));
}

registerOrchestration(BATCH.chunk, function* (context: OrchestrationContext): Generator<Task, BatchChunkResult, any> {
  const input = inputOf(context, BATCH.chunk);
  const tracker = new ThresholdTracker(input.limits, input.totals, input.baseline);
  const retryQueue: Slot[] = [];
  /** Scheduled and not yet recorded, in scheduling order. */
  const inFlight: InFlight[] = [];
  let inFlightCount = 0;
  const refillAt = refillThreshold(input.window);
  // Chunks started before grouped calls existed have no perCall: one batchScoreMiniBatch per mini-batch, as then.
  const perCall = input.perCall !== undefined && input.perCall > 1 ? input.perCall : 0;
  // Chunks started before grouped results call batchScoreMiniBatches (one result blob per mini-batch), as then.
  const grouped = input.groupedResults === true;
  const nodeUriOf = (index: number, attempt: number) => input.nodeUris[(index + attempt - 1) % input.nodeUris.length];
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
  // The run fails: reported as data (the parent reads the code), not as a failed sub-orchestration.
  const notRecorded = (e: unknown): BatchChunkResult => ({
    counts: tracker.counts(),
    trip,
    ...(lastError ? { lastError } : {}),
    retries,
    notRecorded: { code: 'MiniBatchNotRecorded', message: `A mini-batch could not be scored or recorded: ${failureOf(e, 'MiniBatchNotRecorded').message}` },
  });

  publish();
  for (;;) {
    // 1. Record every finished mini-batch, in scheduling order (task states are a pure function of the history
    //    replayed so far, so this is the same on every replay and thresholds trip at the same mini-batch).
    let recorded = false;
    for (let k = 0; k < inFlight.length; ) {
      const f = inFlight[k];
      if (!f.task.isCompleted && !f.task.isFaulted) {
        k++;
        continue;
      }
      inFlight.splice(k, 1);
      inFlightCount -= f.slots.length;
      recorded = true;
      if (f.task.isFaulted) {
        if (f.slots.some((x) => x.faults + 1 >= ACTIVITY_MAX_RUNS)) return notRecorded(f.task.result);
        // Same attempts again, ahead of new work (also after a trip: what was started must be recorded).
        retryQueue.unshift(...f.slots.map((x) => ({ index: x.index, attempt: x.attempt, faults: x.faults + 1 })));
        continue;
      }
      const outcomes = !perCall ? [outputOf(BATCH.scoreMiniBatch, f.task)] : grouped ? outputOf(BATCH.scoreMiniBatchGroup, f.task) : outputOf(BATCH.scoreMiniBatches, f.task);
      for (let j = 0; j < f.slots.length; j++) {
        const x = f.slots[j];
        const o = outcomes[j];
        if (o?.index !== x.index) return notRecorded(new Error(`the scoring call returned no outcome for mini-batch ${x.index}`));
        if (o.status === 'failed' && o.retryable && x.attempt < input.runMaxTry && !trip) {
          retries++;
          retryQueue.push({ index: o.index, attempt: x.attempt + 1, faults: 0 });
          continue;
        }
        if (o.status !== 'succeeded' && o.error) lastError = { ...o.error, miniBatch: o.index };
        const t = tracker.record(o);
        if (t && !trip) trip = t;
      }
    }
    if (recorded) publish();

    // 2. Refill the window (re-tries first) once at least `refillAt` slots are free, or with whatever is left.
    // After a trip only activity re-runs (faults) are still scheduled.
    const pending = trip ? retryQueue.filter((r) => r.faults > 0).length : retryQueue.length + (input.to - next);
    const free = input.window - inFlightCount;
    if (pending > 0 && free >= Math.min(refillAt, pending)) {
      const picked: Slot[] = [];
      while (picked.length < free && picked.length < pending) {
        picked.push(retryQueue.length > 0 ? retryQueue.shift()! : { index: next++, attempt: 1, faults: 0 });
      }
      const fresh: InFlight[] = [];
      for (let g = 0; g < picked.length; g += perCall || 1) {
        const slots = picked.slice(g, g + (perCall || 1));
        if (perCall && grouped) {
          // The run number (activity faults of this attempt so far) names a newer result blob when a call runs again.
          const items = slots.map((x) => ({ index: x.index, attempt: x.attempt, nodeUri: nodeUriOf(x.index, x.attempt), run: x.faults }));
          const callInput: ScoreMiniBatchGroupInput = { ...input.score, runId: input.runId, items };
          fresh.push({ slots, task: schedule(context, BATCH.scoreMiniBatchGroup, callInput) });
        } else if (perCall) {
          const items = slots.map((x) => ({ index: x.index, attempt: x.attempt, nodeUri: nodeUriOf(x.index, x.attempt) }));
          const callInput: ScoreMiniBatchesInput = { ...input.score, runId: input.runId, items };
          fresh.push({ slots, task: schedule(context, BATCH.scoreMiniBatches, callInput) });
        } else {
          const { index, attempt } = slots[0];
          const activityInput: ScoreMiniBatchInput = { ...input.score, runId: input.runId, index, attempt, nodeUri: nodeUriOf(index, attempt) };
          fresh.push({ slots, task: schedule(context, BATCH.scoreMiniBatch, activityInput) });
        }
      }
      inFlight.push(...fresh);
      inFlightCount += picked.length;
      if (input.isLast && next >= input.to && !allScheduledMarked) {
        allScheduledMarked = true;
        const t = tracker.markAllScheduled();
        if (t && !trip) trip = t;
      }
      // Only never-yielded tasks go into a new Task.any: that schedules exactly these (an already scheduled task
      // in a new Task.any/Task.all would be scheduled a second time by the SDK). It resumes when the first of
      // them finishes; the older ones, queued before them on the nodes, have usually finished by then.
      yield context.df.Task.any(fresh.map((f) => f.task));
    } else if (inFlight.length > 0) {
      // Window full (or draining after a trip / at the end): wait for the oldest; yielding an already
      // scheduled task on its own schedules nothing.
      try {
        yield inFlight[0].task;
      } catch {
        // The activity itself failed (e.g. storage unreachable): step 1 sees the faulted task and runs it again,
        // up to ACTIVITY_MAX_RUNS, exactly as for a fault noticed through Task.any.
      }
    } else {
      break;
    }
  }
  const result: BatchChunkResult = { counts: tracker.counts(), trip, ...(lastError ? { lastError } : {}), retries };
  return result;
});
