/**
 * Progress of a batch run for the orchestration's custom status and `GET /api/runs/{id}`: totals, done, failed,
 * rows per second and ETA. Pure: the caller passes the times (in an orchestrator, `context.df.currentUtcDateTime`),
 * so replays compute the same status. The JSON stays under the 16 KB custom-status limit.
 */
import type { ErrorInfo } from '../seams';
import { capError } from './results';
import type { ThresholdCounts, ThresholdTrip } from './thresholds';

/** Durable Functions' custom status limit. */
export const CUSTOM_STATUS_LIMIT_BYTES = 16 * 1024;

export type BatchPhase = 'validating' | 'provisioning' | 'planning' | 'scoring' | 'merging' | 'tearing_down' | 'completed' | 'failed' | 'terminated';

export interface BatchProgress {
  phase: BatchPhase;
  miniBatches: { total: number; done: number; failed: number };
  /** Inputs: files for `files`, rows for `tabular`. */
  items: { total: number; done: number; succeeded: number; failed: number };
  /** Inputs (rows or files) finished per second since scoring started. */
  rowsPerSecond: number;
  /** Seconds left at the current rate; null until there is a rate. */
  etaSeconds: number | null;
  percent: number;
  startedAt?: string;
  updatedAt: string;
  threshold?: { threshold: ThresholdTrip['threshold']; limit: number; observed: number; message: string };
  lastError?: ErrorInfo & { miniBatch?: number };
}

export interface ProgressInput {
  phase: BatchPhase;
  counts: ThresholdCounts;
  /** When scoring started (ISO or Date); rate and ETA need it. */
  scoringStartedAt?: string | Date;
  now: string | Date;
  threshold?: ThresholdTrip | null;
  lastError?: (ErrorInfo & { miniBatch?: number }) | null;
}

export function computeProgress(p: ProgressInput): BatchProgress {
  const c = p.counts;
  const now = toDate(p.now);
  const started = p.scoringStartedAt !== undefined ? toDate(p.scoringStartedAt) : undefined;
  const itemsDone = c.itemsSucceeded + c.itemsFailed;
  const elapsedS = started ? (now.getTime() - started.getTime()) / 1000 : 0;
  const rate = elapsedS > 0 ? itemsDone / elapsedS : 0;
  const remaining = Math.max(0, c.itemTotal - itemsDone);
  const eta = remaining === 0 ? 0 : rate > 0 ? Math.ceil(remaining / rate) : null;
  const percent = c.itemTotal > 0 ? Math.floor((1000 * itemsDone) / c.itemTotal) / 10 : c.miniBatchTotal > 0 ? Math.floor((1000 * c.miniBatchesDone) / c.miniBatchTotal) / 10 : 0;

  const status: BatchProgress = {
    phase: p.phase,
    miniBatches: { total: c.miniBatchTotal, done: c.miniBatchesDone, failed: c.miniBatchesFailed },
    items: { total: c.itemTotal, done: itemsDone, succeeded: c.itemsSucceeded, failed: c.itemsFailed },
    rowsPerSecond: Math.round(rate * 100) / 100,
    etaSeconds: started ? eta : null,
    percent,
    ...(started ? { startedAt: started.toISOString() } : {}),
    updatedAt: now.toISOString(),
    ...(p.threshold ? { threshold: { threshold: p.threshold.threshold, limit: p.threshold.limit, observed: p.threshold.observed, message: p.threshold.message } } : {}),
    ...(p.lastError ? { lastError: { ...capError(p.lastError), ...(p.lastError.miniBatch !== undefined ? { miniBatch: p.lastError.miniBatch } : {}) } } : {}),
  };
  return fitCustomStatus(status);
}

/** Byte length of a value's JSON. */
export function jsonBytes(v: unknown): number {
  return Buffer.byteLength(JSON.stringify(v), 'utf8');
}

/**
 * Keeps a status under the custom-status limit: shortens the longest strings until it fits (counts and numbers
 * are never dropped). `limit` defaults to 16 KB minus a margin for the envelope.
 */
export function fitCustomStatus<T>(status: T, limit = CUSTOM_STATUS_LIMIT_BYTES - 512): T {
  if (jsonBytes(status) <= limit) return status;
  let maxLen = 1024;
  let out = status;
  while (jsonBytes(out) > limit && maxLen >= 16) {
    out = truncateStrings(status, maxLen);
    maxLen = Math.floor(maxLen / 2);
  }
  if (jsonBytes(out) > limit) throw new RangeError(`custom status does not fit in ${limit} bytes even with short strings`);
  return out;
}

function truncateStrings<T>(v: T, max: number): T {
  if (typeof v === 'string') return (v.length > max ? `${v.slice(0, max - 1)}…` : v) as T;
  if (Array.isArray(v)) return v.map((x) => truncateStrings(x, max)) as T;
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = truncateStrings(x, max);
    return o as T;
  }
  return v;
}

function toDate(d: string | Date): Date {
  return d instanceof Date ? d : new Date(d);
}
