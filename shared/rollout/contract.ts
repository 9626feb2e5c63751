/**
 * The rollout workflow's contract: the `rolloutTraffic` sub-orchestration (orchestrations/rolloutTraffic.ts), which
 * `deployModel` calls between the smoke test and the promotion when the manifest asks for progressive delivery,
 * its activities and external events. Names appear in durable histories: never rename one.
 */
import type { ErrorInfo, TargetKind } from '../seams';
import { activity, orchestration } from '../workflow';
import type { RolloutSpec } from './spec';
import type { ShadowFigures, TrafficSnapshot, WindowFigures } from './traffic';

export interface RolloutRunInput {
  /** The deployment run (parent). */
  runId: string;
  serviceName: string;
  target: TargetKind;
  /** The new version's slot (deployed and smoke tested). */
  slot: string;
  /** The slot serving now; absent on a first deployment (nothing to shift from). */
  previousSlot?: string;
  spec: RolloutSpec;
  /** How often the run renews its hold on the service while it waits (default: a quarter of the 2 h deployment lease). */
  leaseRenewSeconds?: number;
}

export type RolloutDecision = 'promote' | 'rolledBack' | 'aborted' | 'rejected' | 'skipped';

/** One gate check (`pass` false → roll back). */
export interface GateVerdict {
  gate: 'max_error_rate' | 'max_p99_ms' | 'min_requests' | 'max_disagreement';
  pass: boolean;
  limit: number;
  /** Undefined when there was nothing to measure. */
  value?: number;
  detail?: string;
}

/** A finished phase (shadow or a weight step): its window's figures and verdicts. */
export interface RolloutStepRecord {
  phase: 'shadow' | 'step';
  /** Weight of the new version (shadow: 0, with `mirrorPercent`). */
  weight: number;
  mirrorPercent?: number;
  startedTime: string;
  endedTime: string;
  /** The new version's figures in the window (shadow: the copies' figures are in `shadow`). */
  candidate: WindowFigures;
  /** The serving version's figures in the same window. */
  serving: WindowFigures;
  shadow?: ShadowFigures;
  verdicts: GateVerdict[];
  /** pass, fail, or insufficient traffic decided by `on_insufficient_traffic`. */
  outcome: 'passed' | 'failed' | 'insufficientTraffic';
  /** Windows started again because the host restarted during the bake (its counters were lost). */
  restarts?: number;
}

export interface ApprovalRecord {
  decision: 'approved' | 'rejected' | 'timedOut';
  /** Who decided (`by` in the request, or the caller's principal), when known. */
  by?: string;
  /** When the decision arrived (or the timeout fired). */
  at: string;
  reason?: string;
  beforePercent: number;
}

/** What the run's status shows while the rollout runs (`GET /api/runs/{id}` → `rollout`). */
export interface RolloutStatus {
  phase: 'starting' | 'shadow' | 'step' | 'awaitingApproval' | 'rollingBack' | 'done';
  strategy: RolloutSpec['strategy'];
  steps: number[];
  /** The new version's current weight (percent of live traffic). */
  weight: number;
  mirrorPercent?: number;
  /** When the current phase's bake ends (ISO). */
  bakeUntil?: string;
  /** The current window's figures (updated at each read). */
  window?: { candidate: WindowFigures; serving: WindowFigures; shadow?: ShadowFigures };
  /** The last phases finished (at most `STATUS_RECORDS`; the custom status is size-bounded); all are in the result. */
  completed: RolloutStepRecord[];
  /** How many phases finished. */
  completedCount: number;
  approval?: ApprovalRecord | { decision: 'pending'; beforePercent: number; timeoutAt: string };
  decision?: RolloutDecision;
}

export interface RolloutRunResult {
  /** True: the new version passed every phase; the caller promotes it (a blue/green switch to it). */
  promoted: boolean;
  decision: RolloutDecision;
  error?: ErrorInfo;
  /** One line for the run's step detail. */
  summary: string;
  completed: RolloutStepRecord[];
  approval?: ApprovalRecord;
  abort?: { by?: string; at: string; reason?: string };
}

/** Payload of the `approval` external event (POST /api/runs/{id}/approve | reject). */
export interface ApprovalEvent {
  approved: boolean;
  by?: string;
  reason?: string;
  at: string;
}

/** Payload of the `abort` external event (POST /api/runs/{id}/abort). */
export interface AbortEvent {
  by?: string;
  reason?: string;
  at: string;
}

export interface SetWeightsInput {
  serviceName: string;
  target: TargetKind;
  weights: Record<string, number>;
  mirror?: { slot: string; percent: number; tolerance: number };
}

export interface ReadTrafficInput {
  serviceName: string;
  target: TargetKind;
}

/** Finished phases kept in the run's custom status (Azure limits a custom status to 16 KB). */
export const STATUS_RECORDS = 4;

export const ROLLOUT_EVENTS = { approval: 'approval', abort: 'abort' } as const;

export const ROLLOUT = {
  run: orchestration<RolloutRunInput, RolloutRunResult>('rolloutTraffic'),
  setWeights: activity<SetWeightsInput, TrafficSnapshot>('rolloutSetWeights'),
  readTraffic: activity<ReadTrafficInput, TrafficSnapshot>('rolloutReadTraffic'),
  /** Renews the run's hold on the service (shared/registry/services.ts `renewDeployment`). */
  renewLease: activity<{ serviceName: string; runId: string }, { held: boolean }>('rolloutRenewLease'),
} as const;

/** The rollout sub-orchestration's instance id for a deployment run (the HTTP routes raise its events). */
export const rolloutInstanceId = (runId: string): string => `${runId}:rollout`;
