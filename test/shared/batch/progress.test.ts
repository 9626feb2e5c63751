import { computeProgress, fitCustomStatus, jsonBytes, CUSTOM_STATUS_LIMIT_BYTES } from '../../../shared/batch/progress';
import { ThresholdTracker } from '../../../shared/batch/thresholds';

const counts = (done: number, failed: number, total = 1000) => ({
  miniBatchTotal: 100,
  miniBatchesDone: Math.floor((done + failed) / 10),
  miniBatchesFailed: failed > 0 ? 1 : 0,
  itemTotal: total,
  itemsSucceeded: done,
  itemsFailed: failed,
  allScheduled: false,
});

describe('progress', () => {
  test('rate and ETA from items done since scoring started', () => {
    const p = computeProgress({ phase: 'scoring', counts: counts(190, 10), scoringStartedAt: '2024-01-01T00:00:00.000Z', now: '2024-01-01T00:00:10.000Z' });
    expect(p).toMatchObject({
      phase: 'scoring',
      miniBatches: { total: 100, done: 20, failed: 1 },
      items: { total: 1000, done: 200, succeeded: 190, failed: 10 },
      rowsPerSecond: 20,
      etaSeconds: 40, // 800 left at 20/s
      percent: 20,
      startedAt: '2024-01-01T00:00:00.000Z',
      updatedAt: '2024-01-01T00:00:10.000Z',
    });
  });

  test('no rate yet: ETA null; finished: ETA 0', () => {
    expect(computeProgress({ phase: 'planning', counts: counts(0, 0), now: new Date(0) }).etaSeconds).toBeNull();
    const t0 = '2024-01-01T00:00:00.000Z';
    expect(computeProgress({ phase: 'scoring', counts: counts(0, 0), scoringStartedAt: t0, now: t0 }).etaSeconds).toBeNull();
    expect(computeProgress({ phase: 'completed', counts: counts(1000, 0), scoringStartedAt: t0, now: '2024-01-01T00:01:00.000Z' }).etaSeconds).toBe(0);
  });

  test('threshold trip and last error are included and kept small', () => {
    const t = new ThresholdTracker({ errorThreshold: 0, allowedFailedCount: -1, allowedFailedPercent: 100 }, { miniBatchCount: 2, itemCount: 20 });
    const trip = t.record({ index: 0, itemCount: 10, succeeded: 9, failed: 1, miniBatchFailed: true });
    const p = computeProgress({
      phase: 'failed',
      counts: t.counts(),
      now: new Date(0),
      threshold: trip,
      lastError: { code: 'RunFailed', message: 'x'.repeat(100_000), miniBatch: 0 },
    });
    expect(p.threshold).toMatchObject({ threshold: 'error_threshold', limit: 0, observed: 1 });
    expect(p.lastError!.code).toBe('RunFailed');
    expect(p.lastError!.miniBatch).toBe(0);
    expect(jsonBytes(p)).toBeLessThan(CUSTOM_STATUS_LIMIT_BYTES);
  });

  test('fitCustomStatus shortens strings, keeps numbers; throws if it cannot fit', () => {
    const big = { n: 123456, notes: Array.from({ length: 10 }, () => 'y'.repeat(5000)) };
    const fitted = fitCustomStatus(big);
    expect(fitted.n).toBe(123456);
    expect(jsonBytes(fitted)).toBeLessThanOrEqual(CUSTOM_STATUS_LIMIT_BYTES - 512);
    expect(() => fitCustomStatus({ many: Array.from({ length: 5000 }, (_, i) => i) })).toThrow(RangeError);
  });
});
