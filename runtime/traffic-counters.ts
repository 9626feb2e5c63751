/**
 * The counters a service front keeps per slot (requests, 5xx, a latency histogram; for a shadow slot the comparison
 * counts) and the answer comparison of shadow traffic. Shared by the front (front.ts) and the rollout controller of
 * the app (shared/rollout/traffic.ts re-exports them, with the window arithmetic). Pure code: no I/O, no clock.
 */
import { jsonNestingDepth } from './json-depth';

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
  /**
   * Copies whose answers were compared: both 2xx (both bodies within the compare bound), or one 2xx and the other a
   * refusal (4xx but 408/429), which counts as a disagreement.
   */
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
  /**
   * Where a slot's figures are the sum of sources that start, stop and restart on their own (AKS pods): each source's
   * own counters, by an id that changes when its counters start over (pod uid and restart count). A window then takes
   * each source's difference — a new source counted from zero, one gone leaving out what it did since the last read —
   * so a pod that is added, removed or restarted (an autoscaler) does not start the window over (`epoch` unchanged).
   */
  parts?: Record<string, { slot: string; traffic: SlotTraffic }>;
}

export const emptySlotTraffic = (): SlotTraffic => ({ requests: 0, errors: 0, latency: {} });
export const emptyShadowTraffic = (): ShadowTraffic => ({ mirrored: 0, compared: 0, disagreed: 0, errors: 0, skipped: 0, latency: {}, primaryLatency: {} });

/**
 * Do two answers agree? JSON bodies are compared structurally: numbers within `tolerance` (absolute), strings,
 * booleans and null exactly (classes, text), arrays and objects element by element. Non-JSON bodies compare as
 * exact text. Depth-bounded (a deeper answer counts as a disagreement).
 */
export function answersAgree(a: string, b: string, tolerance: number): boolean {
  if (a === b) return true;
  // Bounded before parsing: deeper answers than the comparison goes are not parsed at all.
  if (jsonNestingDepth(a, MAX_COMPARE_DEPTH) > MAX_COMPARE_DEPTH || jsonNestingDepth(b, MAX_COMPARE_DEPTH) > MAX_COMPARE_DEPTH) return false;
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

/** How deep two answers are compared at most (a deeper answer counts as a disagreement). */
const MAX_COMPARE_DEPTH = 64;

function valuesAgree(x: unknown, y: unknown, tol: number, depth: number): boolean {
  if (depth > MAX_COMPARE_DEPTH) return false;
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
