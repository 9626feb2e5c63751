/**
 * Failure thresholds, evaluated as mini-batch results arrive, with Azure ML's ParallelRunConfig meanings
 * (azureml-pipeline-steps, https://learn.microsoft.com/en-us/python/api/azureml-pipeline-steps/azureml.pipeline.steps.parallelrunconfig):
 *
 * - error_threshold: "The number of record failures for TabularDataset and file failures for FileDataset that
 *   should be ignored during processing. If the error count goes above this value, then the job will be aborted.
 *   Error threshold is for the entire input ... The range is [-1, int.max]. -1 indicates ignore all failures."
 *   → counts failed inputs (files for `files`, rows for `tabular`); trips when failedItems > error_threshold.
 *   Failed items "are counted by the number gap between inputs and returns from each mini-batch"
 *   (https://learn.microsoft.com/en-us/azure/machine-learning/how-to-use-parallel-job-in-pipeline, "item error
 *   threshold"); every input of a mini-batch that failed outright is a failed item.
 * - allowed_failed_count: "The number of failed mini batches that should be ignored during processing. If the
 *   failed count goes above this value, the job will be aborted. ... -1 indicates ignore all failures.
 *   A mini batch may fail on the first time it's processed and then succeed on the second try. Checking between
 *   the first and second time will count it as failed. Checking after the second time won't count it as failed."
 *   → trips when failedMiniBatches > allowed_failed_count; a later outcome of the same index replaces the earlier.
 * - allowed_failed_percent: "The percent of failed mini batches that should be ignored during processing. If the
 *   failed percent goes above this value, then the job will be aborted. ... The range is [0, 100]. 100 or 100.0
 *   indicates ignore all failures during processing. The check starts after all mini batches have been scheduled."
 *   → trips when 100 × failedMiniBatches / totalMiniBatches > allowed_failed_percent, once all are scheduled.
 * - "If more than one specified, the job will be aborted if it exceeds any of them."
 *
 * A mini-batch counts as failed when run() failed or timed out (after its tries), or when it returned fewer
 * elements than it had inputs ("Mini-batch is marked as failed if: the count of return from run() is less than
 * mini-batch input count; catch exceptions in custom run() code." — how-to-use-parallel-job-in-pipeline).
 *
 * Pure and deterministic: safe to use inside an orchestrator (replay rebuilds the same state).
 */

export type ThresholdName = 'error_threshold' | 'allowed_failed_count' | 'allowed_failed_percent';

export interface ThresholdLimits {
  errorThreshold: number;
  allowedFailedCount: number;
  allowedFailedPercent: number;
}

/** What the tracker needs from one mini-batch outcome (see results.ts `MiniBatchOutcome`). */
export interface OutcomeCounts {
  index: number;
  itemCount: number;
  /** Inputs that got a returned element. */
  succeeded: number;
  /** Inputs without one (itemCount - succeeded). */
  failed: number;
  /** run() failed / timed out, or returned fewer elements than inputs. */
  miniBatchFailed: boolean;
}

export interface ThresholdCounts {
  miniBatchTotal: number;
  /** Mini-batches with an outcome (latest outcome per index). */
  miniBatchesDone: number;
  miniBatchesFailed: number;
  itemTotal: number;
  itemsSucceeded: number;
  itemsFailed: number;
  allScheduled: boolean;
}

export interface ThresholdTrip {
  threshold: ThresholdName;
  /** The configured value. */
  limit: number;
  /** The value that went above it (failed items, failed mini-batches, or failed percent). */
  observed: number;
  counts: ThresholdCounts;
  /** Actionable text, e.g. `error_threshold exceeded: 11 failed inputs > 10 allowed`. */
  message: string;
}

/** Counts carried over from other trackers of the same run (see the constructor). */
export type ThresholdBaseline = Pick<ThresholdCounts, 'miniBatchesDone' | 'miniBatchesFailed' | 'itemsSucceeded' | 'itemsFailed'>;

export class ThresholdTracker {
  private readonly outcomes = new Map<number, OutcomeCounts>();
  private failedMb = 0;
  private succeededItems = 0;
  private failedItems = 0;
  private scheduledAll = false;

  /**
   * `baseline`: counts of mini-batches recorded elsewhere (earlier plan chunks of the same run, scored by other
   * sub-orchestrations), so thresholds over the whole run trip exactly where they would with a single tracker.
   */
  constructor(
    private readonly limits: ThresholdLimits,
    private readonly totals: { miniBatchCount: number; itemCount: number },
    private readonly baseline: ThresholdBaseline = { miniBatchesDone: 0, miniBatchesFailed: 0, itemsSucceeded: 0, itemsFailed: 0 },
  ) {
    checkLimits(limits);
    this.failedMb = baseline.miniBatchesFailed;
    this.succeededItems = baseline.itemsSucceeded;
    this.failedItems = baseline.itemsFailed;
  }

  /** Records (or replaces, for a retried index) an outcome; returns the trip, if any threshold is now exceeded. */
  record(o: OutcomeCounts): ThresholdTrip | null {
    const prev = this.outcomes.get(o.index);
    if (prev) this.apply(prev, -1);
    this.outcomes.set(o.index, o);
    this.apply(o, +1);
    return this.check();
  }

  /** Marks that every mini-batch has been scheduled (starts the allowed_failed_percent check). */
  markAllScheduled(): ThresholdTrip | null {
    this.scheduledAll = true;
    return this.check();
  }

  /** The first exceeded threshold (error_threshold, then allowed_failed_count, then allowed_failed_percent), or null. */
  check(): ThresholdTrip | null {
    const { errorThreshold, allowedFailedCount, allowedFailedPercent } = this.limits;
    const counts = this.counts();
    if (errorThreshold !== -1 && this.failedItems > errorThreshold) {
      return trip('error_threshold', errorThreshold, this.failedItems, counts, `${this.failedItems} failed inputs > ${errorThreshold} allowed`);
    }
    if (allowedFailedCount !== -1 && this.failedMb > allowedFailedCount) {
      return trip('allowed_failed_count', allowedFailedCount, this.failedMb, counts, `${this.failedMb} failed mini-batches > ${allowedFailedCount} allowed`);
    }
    const total = this.totals.miniBatchCount;
    if (this.scheduledAll && total > 0 && percentAbove(this.failedMb, total, allowedFailedPercent)) {
      const observed = Math.round((10000 * this.failedMb) / total) / 100;
      return trip(
        'allowed_failed_percent',
        allowedFailedPercent,
        observed,
        counts,
        `${this.failedMb} of ${total} mini-batches failed (${observed}%) > ${allowedFailedPercent}% allowed`,
      );
    }
    return null;
  }

  counts(): ThresholdCounts {
    return {
      miniBatchTotal: this.totals.miniBatchCount,
      miniBatchesDone: this.baseline.miniBatchesDone + this.outcomes.size,
      miniBatchesFailed: this.failedMb,
      itemTotal: this.totals.itemCount,
      itemsSucceeded: this.succeededItems,
      itemsFailed: this.failedItems,
      allScheduled: this.scheduledAll,
    };
  }

  private apply(o: OutcomeCounts, sign: 1 | -1): void {
    this.succeededItems += sign * o.succeeded;
    this.failedItems += sign * o.failed;
    if (o.miniBatchFailed) this.failedMb += sign;
  }
}

/** True when 100 × failed / total > percent, computed exactly (percent may have up to 6 decimals). */
export function percentAbove(failed: number, total: number, percent: number): boolean {
  const scale = 1_000_000n;
  const p = BigInt(Math.round(percent * 1_000_000));
  return BigInt(failed) * 100n * scale > p * BigInt(total);
}

function trip(threshold: ThresholdName, limit: number, observed: number, counts: ThresholdCounts, detail: string): ThresholdTrip {
  return { threshold, limit, observed, counts, message: `${threshold} exceeded: ${detail}` };
}

function checkLimits(l: ThresholdLimits): void {
  const intMin = (n: number, min: number) => Number.isInteger(n) && n >= min;
  if (!intMin(l.errorThreshold, -1) || !intMin(l.allowedFailedCount, -1) || !(l.allowedFailedPercent >= 0 && l.allowedFailedPercent <= 100)) {
    throw new RangeError(`threshold limits out of range: ${JSON.stringify(l)}`);
  }
}
