/**
 * The manifest's `rollout:` section (progressive delivery): its zod schema (snake_case, strict) and the parsed,
 * defaulted form the orchestrations use (`RolloutSpec`, camelCase, JSON: it travels in run inputs).
 *
 * ```yaml
 * rollout:
 *   strategy: canary            # blue_green (default) | canary | linear
 *   steps: [10, 50, 100]        # canary: percent of live traffic on the new version, increasing, ending at 100
 *   step_percent: 25            # linear: steps of this size (25 → 25, 50, 75, 100); `interval` = bake per step
 *   bake_seconds: 300           # time each step runs before its gate is checked
 *   mirror_percent: 20          # optional shadow phase first (every target: local, aci, aks)
 *   gates: { max_error_rate: 0.01, max_p99_ms: 250, min_requests: 200, max_wait_seconds: 600,
 *            on_insufficient_traffic: rollback, max_disagreement: 0.05, tolerance: 1e-6 }
 *   approval: { before_percent: 100, timeout: 24h }
 * ```
 */
import { z } from 'zod';
import type { TargetKind } from '../seams';

export type RolloutStrategy = 'blue_green' | 'canary' | 'linear';

export interface RolloutGates {
  /** 5xx / requests of the new version in the step's window; above → roll back. */
  maxErrorRate?: number;
  /** p99 latency (ms) of the new version in the window; above → roll back. */
  maxP99Ms?: number;
  /** Requests the new version must have served in the window before the gates decide. */
  minRequests: number;
  /** How long a step waits (beyond its bake) for `minRequests`. */
  maxWaitSeconds: number;
  /** What happens when `minRequests` is still not reached after `maxWaitSeconds`. */
  onInsufficientTraffic: 'promote' | 'rollback';
  /** Shadow phase: share of compared requests whose answers differ beyond `tolerance`; above → roll back. */
  maxDisagreement?: number;
  /** Absolute tolerance for numbers when answers are compared. */
  tolerance: number;
}

export interface RolloutSpec {
  strategy: RolloutStrategy;
  /** Weights of the new version, in order, the last one 100 (empty for blue_green). */
  steps: number[];
  bakeSeconds: number;
  /** Shadow phase before the first step: this percent of requests is copied to the new version. */
  mirrorPercent?: number;
  gates: RolloutGates;
  /** Human gate: the run waits for approve/reject before the step of this weight. */
  approval?: { beforePercent: number; timeoutSeconds: number };
}

/** Bounds of the section (checked when the manifest is parsed). */
export const ROLLOUT_LIMITS = { steps: 20, bakeSeconds: 7 * 24 * 3600, maxWaitSeconds: 7 * 24 * 3600, approvalSeconds: 30 * 24 * 3600 } as const;

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `"90s"`, `"5m"`, `"24h"`, `"2d"` or a number of seconds → seconds; undefined when not a duration. */
export function parseDurationSeconds(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v !== 'string' || v.length > 20) return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$/.exec(v);
  return m ? Number(m[1]) * UNIT_SECONDS[m[2]] : undefined;
}

/** A duration between `min` (1 s unless said) and `max` seconds, as a number of seconds or "90s", "5m", "24h", "2d". */
const duration = (max: number, min = 1) =>
  z
    .union([z.number(), z.string()])
    .transform((v, ctx) => {
      const s = parseDurationSeconds(v);
      if (s === undefined) {
        ctx.addIssue({ code: 'custom', message: 'must be a number of seconds or a duration such as "90s", "5m", "24h", "2d"' });
        return z.NEVER;
      }
      if (s < min || s > max) {
        ctx.addIssue({ code: 'custom', message: `must be between ${min} and ${max} seconds` });
        return z.NEVER;
      }
      return Math.round(s);
    });

const percent = z.number().int('must be a whole percent').min(1, 'must be at least 1').max(100, 'must be at most 100');
const share = z.number().min(0, 'must be at least 0').max(1, 'must be at most 1 (a share, e.g. 0.01 for 1 %)');

export const rolloutSchema = z.strictObject({
  strategy: z.enum(['blue_green', 'canary', 'linear'], { error: 'must be one of blue_green, canary, linear' }).optional(),
  steps: z.array(percent).min(1).max(ROLLOUT_LIMITS.steps).optional(),
  step_percent: z.number().int().min(1).max(99).optional(),
  interval: duration(ROLLOUT_LIMITS.bakeSeconds).optional(),
  bake_seconds: duration(ROLLOUT_LIMITS.bakeSeconds).optional(),
  mirror_percent: percent.optional(),
  gates: z
    .strictObject({
      max_error_rate: share.optional(),
      max_p99_ms: z.number().positive().max(3_600_000).optional(),
      // At least 1: a window without a request measured nothing, so its gates cannot pass (to go on when traffic is
      // short, say so: on_insufficient_traffic: promote).
      min_requests: z.number().int().min(1, 'must be at least 1: a window without a request measured nothing (on_insufficient_traffic: promote goes on when traffic is short)').max(1_000_000_000).optional(),
      max_wait_seconds: duration(ROLLOUT_LIMITS.maxWaitSeconds, 0).optional(),
      on_insufficient_traffic: z.enum(['promote', 'rollback'], { error: 'must be promote or rollback' }).optional(),
      max_disagreement: share.optional(),
      tolerance: z.number().min(0).max(1e12).optional(),
    })
    .optional(),
  approval: z.strictObject({ before_percent: percent, timeout: duration(ROLLOUT_LIMITS.approvalSeconds).optional() }).optional(),
});

export type RolloutInput = z.output<typeof rolloutSchema>;

/** Defaults: canary steps, bake time, approval timeout. */
export const ROLLOUT_DEFAULTS = { canarySteps: [10, 100], bakeSeconds: 300, approvalSeconds: 24 * 3600, tolerance: 1e-6, minRequests: 1 } as const;

/**
 * Checks what the schema cannot (relations between fields, the target) and applies defaults. Returns the problems
 * (field: what to do) — the manifest validation turns them into one 400 `InvalidManifest` — or the spec.
 */
export function resolveRollout(r: RolloutInput, target: TargetKind, field = 'rollout'): { spec?: RolloutSpec; problems: string[] } {
  const problems: string[] = [];
  const strategy = r.strategy ?? 'blue_green';
  let steps: number[] = [];
  if (strategy === 'blue_green') {
    for (const f of ['steps', 'step_percent', 'interval', 'approval'] as const) {
      if (r[f] !== undefined) problems.push(`${field}.${f}: only applies to strategy canary or linear (strategy is blue_green)`);
    }
    // A plain blue/green switch has no step to bake or gate: settings it would ignore are refused, not dropped.
    if (r.mirror_percent === undefined) {
      for (const f of ['bake_seconds', 'gates'] as const) {
        if (r[f] !== undefined) problems.push(`${field}.${f}: a blue_green switch without mirror_percent has no step to bake or gate; use strategy canary or linear, or add mirror_percent for a shadow phase`);
      }
    }
  } else if (strategy === 'canary') {
    if (r.step_percent !== undefined || r.interval !== undefined) problems.push(`${field}.step_percent/interval: only apply to strategy linear; canary takes steps (e.g. [10, 50, 100])`);
    steps = r.steps ?? [...ROLLOUT_DEFAULTS.canarySteps];
  } else {
    if (r.steps !== undefined) problems.push(`${field}.steps: strategy linear takes step_percent (and interval), not steps; use strategy canary for a list of steps`);
    if (r.step_percent === undefined) problems.push(`${field}.step_percent: is required for strategy linear (e.g. 25 → 25, 50, 75, 100)`);
    else for (let p = r.step_percent; ; p += r.step_percent) {
      if (p >= 100) {
        steps.push(100);
        break;
      }
      steps.push(p);
    }
    if (r.interval !== undefined && r.bake_seconds !== undefined) problems.push(`${field}.interval: give interval or bake_seconds, not both (for linear they are the same: the time each step runs)`);
  }
  if (steps.length > ROLLOUT_LIMITS.steps) problems.push(`${field}: ${steps.length} steps; at most ${ROLLOUT_LIMITS.steps} are allowed (use a larger step_percent)`);
  for (let i = 1; i < steps.length; i++) {
    if (steps[i] <= steps[i - 1]) {
      problems.push(`${field}.steps: must increase (${steps[i - 1]} then ${steps[i]})`);
      break;
    }
  }
  if (steps.length && steps[steps.length - 1] !== 100) problems.push(`${field}.steps: the last step must be 100 (the new version takes all traffic); got ${steps[steps.length - 1]}`);
  if (r.approval && !steps.includes(r.approval.before_percent)) {
    problems.push(`${field}.approval.before_percent: ${r.approval.before_percent} is not one of the steps (${steps.join(', ')})`);
  }
  const g = r.gates ?? {};
  if (g.max_disagreement !== undefined && r.mirror_percent === undefined) problems.push(`${field}.gates.max_disagreement: needs mirror_percent (the shadow phase whose answers are compared)`);
  // Where each target splits traffic (docs/reference.md, "Progressive delivery"): local — the service front in the
  // host; aci — the service front as its own container group (split, pin, mirror); aks — a Gateway API HTTPRoute
  // (split, pin), and for a shadow phase the service front as a Deployment behind the route (mirror).
  if (problems.length) return { problems };
  const bakeSeconds = r.interval ?? r.bake_seconds ?? ROLLOUT_DEFAULTS.bakeSeconds;
  return {
    problems,
    spec: {
      strategy,
      steps,
      bakeSeconds,
      ...(r.mirror_percent !== undefined ? { mirrorPercent: r.mirror_percent } : {}),
      gates: {
        ...(g.max_error_rate !== undefined ? { maxErrorRate: g.max_error_rate } : {}),
        ...(g.max_p99_ms !== undefined ? { maxP99Ms: g.max_p99_ms } : {}),
        minRequests: g.min_requests ?? ROLLOUT_DEFAULTS.minRequests,
        maxWaitSeconds: g.max_wait_seconds ?? bakeSeconds,
        onInsufficientTraffic: g.on_insufficient_traffic ?? 'rollback',
        ...(g.max_disagreement !== undefined ? { maxDisagreement: g.max_disagreement } : {}),
        tolerance: g.tolerance ?? ROLLOUT_DEFAULTS.tolerance,
      },
      ...(r.approval ? { approval: { beforePercent: r.approval.before_percent, timeoutSeconds: r.approval.timeout ?? ROLLOUT_DEFAULTS.approvalSeconds } } : {}),
    },
  };
}

/** True when the run needs the rollout sub-orchestration (anything beyond an immediate blue/green switch). */
export function isProgressive(spec: RolloutSpec | undefined): spec is RolloutSpec {
  return !!spec && (spec.strategy !== 'blue_green' || spec.mirrorPercent !== undefined);
}
