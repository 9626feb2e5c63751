/**
 * Per-slot traffic figures of a service's front, and the arithmetic of a step window. The front keeps cumulative
 * counters (requests, 5xx, a latency histogram; for a shadow slot the comparison counts); a rollout step reads a
 * snapshot when its window opens and another when it closes, and judges the difference. Pure code (the rollout
 * orchestrator uses it): no I/O, no clock.
 *
 * A snapshot carries the front's `epoch` (a new id each time a front starts): counters of different epochs are not
 * comparable (the host restarted in between), and the window is started again.
 */

import {
  emptyShadowTraffic,
  emptySlotTraffic,
  LATENCY_BOUNDS_MS,
  type ShadowTraffic,
  type SlotTraffic,
  type TrafficSnapshot,
} from '../../runtime';

export {
  answersAgree,
  emptyShadowTraffic,
  emptySlotTraffic,
  LATENCY_BOUNDS_MS,
  latencyBucket,
  type ShadowTraffic,
  type SlotTraffic,
  type TrafficSnapshot,
} from '../../runtime';

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
  // Per source when both snapshots have them (`parts`: AKS pods), else the slot's sums.
  const pairs: Array<[SlotTraffic | undefined, SlotTraffic]> =
    start?.parts && end.parts
      ? Object.entries(end.parts)
          .filter(([, p]) => p.slot === slot)
          .map(([id, p]) => [start.parts![id]?.slot === slot ? start.parts![id].traffic : undefined, p.traffic])
      : [[start?.slots[slot], end.slots[slot] ?? emptySlotTraffic()]];
  let requests = 0;
  let errors = 0;
  const hist: Record<string, number> = {};
  for (const [a, b] of pairs) {
    requests += Math.max(0, b.requests - (a?.requests ?? 0));
    errors += Math.max(0, b.errors - (a?.errors ?? 0));
    for (const [k, v] of Object.entries(diffHist(a?.latency, b.latency))) hist[k] = (hist[k] ?? 0) + v;
  }
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

