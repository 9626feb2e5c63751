import { percentAbove, ThresholdTracker, type OutcomeCounts } from '../../../shared/batch/thresholds';

const none = { errorThreshold: -1, allowedFailedCount: -1, allowedFailedPercent: 100 };
const ok = (index: number, items = 10): OutcomeCounts => ({ index, itemCount: items, succeeded: items, failed: 0, miniBatchFailed: false });
const failedMb = (index: number, items = 10): OutcomeCounts => ({ index, itemCount: items, succeeded: 0, failed: items, miniBatchFailed: true });
const partial = (index: number, missing: number, items = 10): OutcomeCounts => ({ index, itemCount: items, succeeded: items - missing, failed: missing, miniBatchFailed: true });

describe('error_threshold (failed inputs: files or rows)', () => {
  const limit = 5;
  // Failed items: boundary-1 = 4, boundary = 5 (both allowed: "goes above this value"), boundary+1 = 6 trips.
  test.each([
    [limit - 1, false],
    [limit, false],
    [limit + 1, true],
  ])('%i failed inputs with error_threshold 5 → trips: %s', (failedItems, trips) => {
    const t = new ThresholdTracker({ ...none, errorThreshold: limit }, { miniBatchCount: 10, itemCount: 100 });
    let trip = t.record(ok(0));
    expect(trip).toBeNull();
    trip = t.record(partial(1, failedItems));
    if (trips) {
      expect(trip).toMatchObject({ threshold: 'error_threshold', limit: 5, observed: failedItems });
      expect(trip!.counts).toMatchObject({ itemsFailed: failedItems, itemsSucceeded: 10 + 10 - failedItems, miniBatchesDone: 2 });
      expect(trip!.message).toBe(`error_threshold exceeded: ${failedItems} failed inputs > 5 allowed`);
    } else {
      expect(trip).toBeNull();
    }
  });

  test('0 trips at the first failed input; a whole failed mini-batch counts all its inputs', () => {
    const t = new ThresholdTracker({ ...none, errorThreshold: 0 }, { miniBatchCount: 3, itemCount: 30 });
    expect(t.record(ok(0))).toBeNull();
    expect(t.record(partial(1, 1))?.threshold).toBe('error_threshold');
    const t2 = new ThresholdTracker({ ...none, errorThreshold: 9 }, { miniBatchCount: 3, itemCount: 30 });
    expect(t2.record(failedMb(0, 10))?.observed).toBe(10);
  });
});

describe('allowed_failed_count (failed mini-batches)', () => {
  const limit = 2;
  test.each([
    [limit - 1, false],
    [limit, false],
    [limit + 1, true],
  ])('%i failed mini-batches with allowed_failed_count 2 → trips: %s', (n, trips) => {
    const t = new ThresholdTracker({ ...none, allowedFailedCount: limit }, { miniBatchCount: 10, itemCount: 100 });
    let trip = null;
    for (let i = 0; i < n; i++) trip = t.record(i % 2 ? failedMb(i) : partial(i, 1));
    expect(trip === null ? null : trip.threshold).toBe(trips ? 'allowed_failed_count' : null);
    if (trip) expect(trip).toMatchObject({ limit: 2, observed: 3, counts: { miniBatchesFailed: 3 } });
  });

  test('a mini-batch that fails, then succeeds on a retry, no longer counts', () => {
    const t = new ThresholdTracker({ ...none, allowedFailedCount: 1 }, { miniBatchCount: 5, itemCount: 50 });
    expect(t.record(failedMb(0))).toBeNull();
    expect(t.counts().miniBatchesFailed).toBe(1);
    expect(t.record(ok(0))).toBeNull(); // second try of index 0 succeeded
    expect(t.counts()).toMatchObject({ miniBatchesFailed: 0, itemsFailed: 0, itemsSucceeded: 10, miniBatchesDone: 1 });
    expect(t.record(failedMb(1))).toBeNull();
    expect(t.record(failedMb(2))?.threshold).toBe('allowed_failed_count');
  });
});

describe('allowed_failed_percent (percent of failed mini-batches, checked once all are scheduled)', () => {
  // 20 mini-batches, 10% allowed → boundary is 2 failed (exactly 10%).
  test.each([
    [1, false],
    [2, false],
    [3, true],
  ])('%i of 20 failed with 10%% allowed → trips: %s', (n, trips) => {
    const t = new ThresholdTracker({ ...none, allowedFailedPercent: 10 }, { miniBatchCount: 20, itemCount: 200 });
    for (let i = 0; i < n; i++) expect(t.record(failedMb(i))).toBeNull(); // not all scheduled yet: no check
    const trip = t.markAllScheduled();
    expect(trip === null ? null : trip.threshold).toBe(trips ? 'allowed_failed_percent' : null);
    if (trip) expect(trip).toMatchObject({ limit: 10, observed: 15, message: 'allowed_failed_percent exceeded: 3 of 20 mini-batches failed (15%) > 10% allowed' });
  });

  test('after all are scheduled, each new result is checked', () => {
    const t = new ThresholdTracker({ ...none, allowedFailedPercent: 10 }, { miniBatchCount: 20, itemCount: 200 });
    expect(t.markAllScheduled()).toBeNull();
    expect(t.record(failedMb(0))).toBeNull();
    expect(t.record(failedMb(1))).toBeNull();
    expect(t.record(failedMb(2))?.threshold).toBe('allowed_failed_percent');
  });

  test('fractional percents are exact (no float rounding at the boundary)', () => {
    // 1 of 3 = 33.333...% : above 33.3, not above 33.333334
    expect(percentAbove(1, 3, 33.3)).toBe(true);
    expect(percentAbove(1, 3, 33.333334)).toBe(false);
    // 7 of 100 = 7% exactly: not above 7, above 6.99
    expect(percentAbove(7, 100, 7)).toBe(false);
    expect(percentAbove(7, 100, 6.99)).toBe(true);
    // 0.1 + 0.2 style trap: 3 of 10 = 30%
    expect(percentAbove(3, 10, 0.1 * 300)).toBe(false);
  });

  test('0% trips at the first failure once scheduled; 100% never trips', () => {
    const zero = new ThresholdTracker({ ...none, allowedFailedPercent: 0 }, { miniBatchCount: 4, itemCount: 40 });
    zero.markAllScheduled();
    expect(zero.record(ok(0))).toBeNull();
    expect(zero.record(failedMb(1))?.threshold).toBe('allowed_failed_percent');
    const hundred = new ThresholdTracker({ ...none, allowedFailedPercent: 100 }, { miniBatchCount: 4, itemCount: 40 });
    hundred.markAllScheduled();
    for (let i = 0; i < 4; i++) expect(hundred.record(failedMb(i))).toBeNull();
  });
});

describe('-1 never aborts; several limits', () => {
  test('-1 / -1 / 100 ignore every failure', () => {
    const t = new ThresholdTracker(none, { miniBatchCount: 50, itemCount: 500 });
    for (let i = 0; i < 50; i++) expect(t.record(failedMb(i))).toBeNull();
    expect(t.markAllScheduled()).toBeNull();
    expect(t.counts()).toMatchObject({ miniBatchesFailed: 50, itemsFailed: 500, miniBatchesDone: 50, allScheduled: true });
  });

  test('with several limits the job stops at the first exceeded, reported in a fixed order', () => {
    const t = new ThresholdTracker({ errorThreshold: 5, allowedFailedCount: 0, allowedFailedPercent: 0 }, { miniBatchCount: 4, itemCount: 40 });
    t.markAllScheduled();
    const trip = t.record(failedMb(0)); // 10 failed items > 5, 1 failed mb > 0, 25% > 0%
    expect(trip?.threshold).toBe('error_threshold');
    const t2 = new ThresholdTracker({ errorThreshold: 100, allowedFailedCount: 0, allowedFailedPercent: 0 }, { miniBatchCount: 4, itemCount: 40 });
    expect(t2.record(partial(0, 1))?.threshold).toBe('allowed_failed_count');
  });

  test('limits out of range are rejected', () => {
    expect(() => new ThresholdTracker({ ...none, errorThreshold: -2 }, { miniBatchCount: 1, itemCount: 1 })).toThrow(RangeError);
    expect(() => new ThresholdTracker({ ...none, allowedFailedPercent: 101 }, { miniBatchCount: 1, itemCount: 1 })).toThrow(RangeError);
  });
});
