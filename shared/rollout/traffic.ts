/**
 * Per-slot traffic figures of a service's front, and the arithmetic of a step window. The front keeps cumulative
 * counters (requests, 5xx, a latency histogram; for a shadow slot the comparison counts); a rollout step reads a
 * snapshot when its window opens and another when it closes, and judges the difference. Pure code (the rollout
 * orchestrator uses it): no I/O, no clock.
 *
 * A snapshot carries the front's `epoch` (a new id each time a front starts): counters of different epochs are not
 * comparable (the host restarted in between), and the window is started again.
 */

/** Upper bounds (ms) of the latency histogram: 0.25 ms × 1.25^i up to ~2 min, then +Inf. */
export const LATENCY_BOUNDS_MS: readonly number[] = (() => {
  const out: number[] = [];
  for (let b = 0.25; b < 120_000; b *= 1.25) out.push(Math.round(b * 1000) / 1000);
  return out;
})();

/** The bucket of `ms` (the last index is +Inf). */
export function latencyBucket(ms: number): number {
  let lo = 0;
  let hi = LATENCY_BOUNDS_MS.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ms <= LATENCY_BOUNDS_MS[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export interface SlotTraffic {
  /** Live requests answered (pinned test requests are not counted). */
  requests: number;
  /** Of which 5xx (the front's own 502 for an unreachable slot included). */
  errors: number;
  /** Counts per latency bucket (`LATENCY_BOUNDS_MS`, then +Inf). Sparse: bucket index → count. */
  latency: Record<string, number>;
}

export interface ShadowTraffic {
  /** Requests copied to the shadow slot. */
  mirrored: number;
  /** Copies whose answers were compared (both 2xx, both bodies within the compare bound). */
  compared: number;
  /** Of which the answers differed beyond the tolerance. */
  disagreed: number;
  /** Copies the shadow answered 5xx or not at all. */
  errors: number;
  /** Copies not sent because too many were in flight (mirroring never queues behind the client). */
  skipped: number;
  /** Latency of the shadow slot's answers (buckets as `SlotTraffic.latency`). */
  latency: Record<string, number>;
  /** Latency of the serving slot's answers to the same (mirrored) requests. */
  primaryLatency: Record<string, number>;
}

export interface TrafficSnapshot {
  /** Changes when the front restarts: counters are only comparable within one epoch. */
  epoch: string;
  /** The weights the front applies now (slot → percent); empty: all traffic to the serving slot. */
  weights: Record<string, number>;
  /** The slot that serves when no weights are set. */
  serving?: string;
  mirror?: { slot: string; percent: number };
  slots: Record<string, SlotTraffic>;
  shadow?: Record<string, ShadowTraffic>;
}

export const emptySlotTraffic = (): SlotTraffic => ({ requests: 0, errors: 0, latency: {} });
export const emptyShadowTraffic = (): ShadowTraffic => ({ mirrored: 0, compared: 0, disagreed: 0, errors: 0, skipped: 0, latency: {}, primaryLatency: {} });

function diffHist(a: Record<string, number> | undefined, b: Record<string, number> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b ?? {})) {
    const d = v - (a?.[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

/** The p-quantile (0..1) of a histogram, as its bucket's upper bound in ms (undefined: empty; Infinity: past the last bound). */
export function quantileMs(hist: Record<string, number>, p: number): number | undefined {
  const entries = Object.entries(hist)
    .map(([k, v]) => [Number(k), v] as const)
    .filter(([, v]) => v > 0)
    .sort((x, y) => x[0] - y[0]);
  const total = entries.reduce((s, [, v]) => s + v, 0);
  if (!total) return undefined;
  const rank = Math.ceil(p * total);
  let seen = 0;
  for (const [i, v] of entries) {
    seen += v;
    if (seen >= rank) return i < LATENCY_BOUNDS_MS.length ? LATENCY_BOUNDS_MS[i] : Infinity;
  }
  return Infinity;
}

/** What one slot did in a window. */
export interface WindowFigures {
  requests: number;
  errors: number;
  errorRate?: number;
  p50Ms?: number;
  p99Ms?: number;
}

export interface ShadowFigures {
  mirrored: number;
  compared: number;
  disagreed: number;
  disagreement?: number;
  errors: number;
  skipped: number;
  shadowP99Ms?: number;
  servingP99Ms?: number;
}

/** JSON-safe (Infinity → a large number; statuses and histories are JSON). */
const finite = (v: number | undefined): number | undefined => (v === undefined ? undefined : Number.isFinite(v) ? v : 1e9);

/** `end - start` for one slot (start absent: counted from zero). */
export function windowOf(start: TrafficSnapshot | undefined, end: TrafficSnapshot, slot: string): WindowFigures {
  const a = start?.slots[slot];
  const b = end.slots[slot] ?? emptySlotTraffic();
  const requests = Math.max(0, b.requests - (a?.requests ?? 0));
  const errors = Math.max(0, b.errors - (a?.errors ?? 0));
  const hist = diffHist(a?.latency, b.latency);
  const p50 = finite(quantileMs(hist, 0.5));
  const p99 = finite(quantileMs(hist, 0.99));
  return { requests, errors, ...(requests ? { errorRate: errors / requests } : {}), ...(p50 !== undefined ? { p50Ms: p50 } : {}), ...(p99 !== undefined ? { p99Ms: p99 } : {}) };
}

/** `end - start` of the shadow comparison of `slot`. */
export function shadowWindowOf(start: TrafficSnapshot | undefined, end: TrafficSnapshot, slot: string): ShadowFigures {
  const a = start?.shadow?.[slot] ?? emptyShadowTraffic();
  const b = end.shadow?.[slot] ?? emptyShadowTraffic();
  const d = (k: 'mirrored' | 'compared' | 'disagreed' | 'errors' | 'skipped') => Math.max(0, b[k] - a[k]);
  const compared = d('compared');
  const disagreed = d('disagreed');
  const shadowP99 = finite(quantileMs(diffHist(a.latency, b.latency), 0.99));
  const servingP99 = finite(quantileMs(diffHist(a.primaryLatency, b.primaryLatency), 0.99));
  return {
    mirrored: d('mirrored'),
    compared,
    disagreed,
    ...(compared ? { disagreement: disagreed / compared } : {}),
    errors: d('errors'),
    skipped: d('skipped'),
    ...(shadowP99 !== undefined ? { shadowP99Ms: shadowP99 } : {}),
    ...(servingP99 !== undefined ? { servingP99Ms: servingP99 } : {}),
  };
}

/**
 * Do two answers agree? JSON bodies are compared structurally: numbers within `tolerance` (absolute), strings,
 * booleans and null exactly (classes, text), arrays and objects element by element. Non-JSON bodies compare as
 * exact text. Depth-bounded (a deeper answer counts as a disagreement).
 */
export function answersAgree(a: string, b: string, tolerance: number): boolean {
  if (a === b) return true;
  let x: unknown;
  let y: unknown;
  try {
    x = JSON.parse(a);
    y = JSON.parse(b);
  } catch {
    return false;
  }
  return valuesAgree(x, y, tolerance, 0);
}

function valuesAgree(x: unknown, y: unknown, tol: number, depth: number): boolean {
  if (depth > 64) return false;
  if (typeof x === 'number' && typeof y === 'number') return x === y || Math.abs(x - y) <= tol;
  if (x === null || y === null || typeof x !== 'object' || typeof y !== 'object') return x === y;
  if (Array.isArray(x) !== Array.isArray(y)) return false;
  if (Array.isArray(x)) {
    const ya = y as unknown[];
    return x.length === ya.length && x.every((v, i) => valuesAgree(v, ya[i], tol, depth + 1));
  }
  const xo = x as Record<string, unknown>;
  const yo = y as Record<string, unknown>;
  const keys = Object.keys(xo);
  if (keys.length !== Object.keys(yo).length) return false;
  return keys.every((k) => Object.prototype.hasOwnProperty.call(yo, k) && valuesAgree(xo[k], yo[k], tol, depth + 1));
}
