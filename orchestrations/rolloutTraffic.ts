/**
 * `rolloutTraffic`: progressive delivery of a new version that is deployed and smoke tested (called by `deployModel`
 * as a sub-orchestration, before its promotion). Phases, each a durable step:
 *
 *   [shadow]  copy mirror_percent of requests to the new version, compare its answers (gate max_disagreement)
 *   [step w]  for each weight: (approval, if asked before w) → set weights → bake (durable timer) → read the
 *             window's figures → gates pass → next step; fail → weights back to 0 % → RolledBack
 *
 * A window's figures come from the service front's cumulative counters (end − start; shared/rollout/traffic.ts).
 * Too little traffic after the bake: wait up to `max_wait_seconds` (in at most 20 rounds), then decide by
 * `on_insufficient_traffic`. A host restart during a bake (the front's counters start again) is seen by the front's
 * epoch: the weights are set again and the window starts over (at most MAX_RESTARTS times).
 * External events: `abort` (any time; acted on at the next wait, i.e. at once during a bake or an approval wait)
 * and `approval`. Deterministic: times from `currentUtcDateTime`, no I/O here.
 */
import * as df from 'durable-functions';
import type { OrchestrationContext, Task, TimerTask } from 'durable-functions';
import { DEPLOY } from '../shared/deploy/contract';
import type { DeploymentEventType } from '../shared/events';
import {
  ROLLOUT,
  ROLLOUT_EVENTS,
  STATUS_RECORDS,
  type AbortEvent,
  type ApprovalEvent,
  type ApprovalRecord,
  type GateVerdict,
  type RolloutDecision,
  type RolloutRunResult,
  type RolloutStatus,
  type RolloutStepRecord,
} from '../shared/rollout/contract';
import type { RolloutGates } from '../shared/rollout/spec';
import { shadowWindowOf, windowOf, type ShadowFigures, type TrafficSnapshot, type WindowFigures } from '../shared/rollout/traffic';
import type { ErrorInfo } from '../shared/seams';
import { call, failureOf, inputOf, registerOrchestration } from '../shared/workflow';

/** Renew the run's hold on the service this often while waiting (a quarter of the 2 h deployment lease). */
const DEFAULT_LEASE_RENEW_SECONDS = 30 * 60;
const LEASE_LOST = 'leaseLost' as const;

/** Windows started again after host restarts, per phase, before the phase fails. */
const MAX_RESTARTS = 5;
/** Extra waits for `min_requests` per phase (the wait is cut in this many rounds at most). */
const MAX_WAIT_ROUNDS = 20;

/** The gates on one window. `enough`: `min_requests` reached. */
export function judge(
  gates: RolloutGates,
  kind: 'shadow' | 'step',
  candidate: WindowFigures,
  shadow: ShadowFigures | undefined,
): { verdicts: GateVerdict[]; enough: boolean; failed: boolean } {
  const verdicts: GateVerdict[] = [];
  const counted = kind === 'shadow' ? (shadow?.compared ?? 0) : candidate.requests;
  const enough = counted >= gates.minRequests;
  verdicts.push({ gate: 'min_requests', pass: enough, limit: gates.minRequests, value: counted, detail: kind === 'shadow' ? 'compared copies' : 'live requests of the new version' });
  const check = (gate: GateVerdict['gate'], limit: number | undefined, value: number | undefined) => {
    if (limit === undefined) return;
    verdicts.push({ gate, pass: value === undefined || value <= limit, limit, ...(value !== undefined ? { value } : {}) });
  };
  if (kind === 'shadow') {
    check('max_disagreement', gates.maxDisagreement, shadow?.disagreement);
    check('max_error_rate', gates.maxErrorRate, shadow && shadow.mirrored ? shadow.errors / shadow.mirrored : undefined);
    check('max_p99_ms', gates.maxP99Ms, shadow?.shadowP99Ms);
  } else {
    check('max_error_rate', gates.maxErrorRate, candidate.errorRate);
    check('max_p99_ms', gates.maxP99Ms, candidate.p99Ms);
  }
  return { verdicts, enough, failed: verdicts.some((v) => !v.pass && v.gate !== 'min_requests') };
}

function* rolloutTraffic(context: OrchestrationContext): Generator<Task, RolloutRunResult, any> {
  const input = inputOf(context, ROLLOUT.run);
  const { spec, slot } = input;
  const now = () => context.df.currentUtcDateTime;
  const later = (seconds: number) => new Date(now().getTime() + seconds * 1000);
  const retry = new df.RetryOptions(1000, 3);
  retry.backoffCoefficient = 2;
  const where = { serviceName: input.serviceName, target: input.target };
  const completed: RolloutStepRecord[] = [];
  const st: RolloutStatus = { phase: 'starting', strategy: spec.strategy, steps: spec.steps, weight: 0, completed: [], completedCount: 0, ...(spec.mirrorPercent ? { mirrorPercent: spec.mirrorPercent } : {}) };
  const show = () => {
    st.completed = completed.slice(-STATUS_RECORDS);
    st.completedCount = completed.length;
    context.df.setCustomStatus(st);
  };
  let approval: ApprovalRecord | undefined;

  const finish = (decision: RolloutDecision, promoted: boolean, summary: string, error?: ErrorInfo, abort?: AbortEvent): RolloutRunResult => {
    st.phase = 'done';
    st.decision = decision;
    delete st.bakeUntil;
    show();
    return { promoted, decision, summary, completed, ...(error ? { error } : {}), ...(approval ? { approval } : {}), ...(abort ? { abort } : {}) };
  };

  if (!input.previousSlot) return finish('skipped', true, 'first deployment: no serving version to shift traffic from; promoted as blue/green');
  const previous: string = input.previousSlot;

  // Events are best effort (as in deployModel): a publishing failure never changes the rollout.
  // Subjects name the phase (`services/<name>/rollout/step-50`): event ids derive from type + subject + run, one per step.
  const publish = function* (type: DeploymentEventType, data: Record<string, unknown>, phaseName = ''): Generator<Task, void, any> {
    try {
      const subject = `services/${input.serviceName}${phaseName ? `/rollout/${phaseName}` : ''}`;
      yield* call(context, DEPLOY.publishEvent, { type, subject, runId: input.runId, time: now().toISOString(), data }, retry);
    } catch {
      /* best effort */
    }
  };
  const weightsFor = (w: number): Record<string, number> => ({ [previous]: 100 - w, [slot]: w });

  // The run's hold on the service (the deployment lease, 2 h) is renewed while the rollout waits, in waits of at
  // most `renewEvery`: a long bake or approval wait never lets another deployment take the service over.
  const renewEvery = input.leaseRenewSeconds ?? DEFAULT_LEASE_RENEW_SECONDS;
  let renewedAt = now().getTime();
  const waitEnd = (until: Date) => new Date(Math.min(until.getTime(), renewedAt + renewEvery * 1000));
  function* renew(): Generator<Task, boolean, any> {
    const r = yield* call(context, ROLLOUT.renewLease, { serviceName: input.serviceName, runId: input.runId }, retry);
    renewedAt = now().getTime();
    return r.held;
  }
  const leaseLostError = (): ErrorInfo => ({
    code: 'RolloutLeaseLost',
    message: `Run ${input.runId} no longer holds service ${input.serviceName} (another deployment took it over); the rollout stopped.`,
  });

  /**
   * Every listener for `abort` (one per wait, never a yielded task again) and for `approval`. A listener whose wait
   * ended on its timer stays open, and durable-functions gives a raised event to the newest open listener: an abort
   * (or an approval) raised while an activity runs completes such an older listener, not the next wait's. So each
   * wait, and each decision after an activity, first looks at all of them (`arrived`).
   */
  const abortListeners: Task[] = [];
  const approvalListeners: Task[] = [];
  const arrived = (listeners: Task[]): Task | undefined => listeners.find((t) => t.isCompleted);
  const abortOf = (t: Task): AbortEvent => (t.result ?? { at: now().toISOString() }) as AbortEvent;
  const abortedMeanwhile = (): AbortEvent | undefined => {
    const t = arrived(abortListeners);
    return t && abortOf(t);
  };

  /** Sleeps until `fireAt`; an `abort` event ends the sleep at once (also one raised before, while an activity ran). */
  function* sleepUntil(fireAt: Date): Generator<Task, AbortEvent | typeof LEASE_LOST | undefined, any> {
    for (;;) {
      const meanwhile = abortedMeanwhile();
      if (meanwhile) return meanwhile;
      const end = waitEnd(fireAt);
      const timer: TimerTask = context.df.createTimer(end);
      const aborted = context.df.waitForExternalEvent(ROLLOUT_EVENTS.abort);
      abortListeners.push(aborted);
      const winner = yield context.df.Task.any([timer, aborted]);
      if (winner !== timer) {
        timer.cancel();
        return abortOf(aborted);
      }
      if (end.getTime() >= fireAt.getTime()) return undefined;
      if (!(yield* renew())) return LEASE_LOST;
    }
  }

  function* awaitApproval(beforePercent: number, timeoutSeconds: number): Generator<Task, { approval?: ApprovalRecord; abort?: AbortEvent; leaseLost?: true }, any> {
    const timeoutAt = later(timeoutSeconds);
    st.phase = 'awaitingApproval';
    st.approval = { decision: 'pending', beforePercent, timeoutAt: timeoutAt.toISOString() };
    delete st.bakeUntil;
    show();
    let decided: Task;
    for (;;) {
      const meanwhile = abortedMeanwhile();
      if (meanwhile) return { abort: meanwhile };
      const early = arrived(approvalListeners);
      if (early) {
        decided = early;
        break;
      }
      const end = waitEnd(timeoutAt);
      const timer: TimerTask = context.df.createTimer(end);
      decided = context.df.waitForExternalEvent(ROLLOUT_EVENTS.approval);
      const aborted = context.df.waitForExternalEvent(ROLLOUT_EVENTS.abort);
      approvalListeners.push(decided);
      abortListeners.push(aborted);
      const winner = yield context.df.Task.any([decided, timer, aborted]);
      if (winner !== timer) timer.cancel();
      if (winner === aborted) return { abort: abortOf(aborted) };
      if (winner === decided) break;
      if (end.getTime() >= timeoutAt.getTime()) return { approval: { decision: 'timedOut', at: timeoutAt.toISOString(), beforePercent } };
      if (!(yield* renew())) return { leaseLost: true };
    }
    const e = (decided.result ?? {}) as Partial<ApprovalEvent>;
    return {
      approval: {
        decision: e.approved === true ? 'approved' : 'rejected',
        ...(e.by ? { by: e.by } : {}),
        at: e.at ?? now().toISOString(),
        ...(e.reason ? { reason: e.reason } : {}),
        beforePercent,
      },
    };
  }

  /** One phase: weights (and mirror) → bake → window → gates. */
  function* phase(kind: 'shadow' | 'step', weight: number): Generator<Task, { record?: RolloutStepRecord; abort?: AbortEvent; error?: ErrorInfo }, any> {
    const startedTime = now().toISOString();
    const mirror = kind === 'shadow' && spec.mirrorPercent ? { slot, percent: spec.mirrorPercent, tolerance: spec.gates.tolerance } : undefined;
    const setWeights = () => call(context, ROLLOUT.setWeights, { ...where, weights: weightsFor(weight), ...(mirror ? { mirror } : {}) }, retry);
    let start: TrafficSnapshot = yield* setWeights();
    st.phase = kind;
    st.weight = weight;
    delete st.window;
    let fireAt = later(spec.bakeSeconds);
    let restarts = 0;
    let waited = 0;
    let rounds = 0;
    const waitChunk = Math.max(spec.bakeSeconds, Math.ceil(spec.gates.maxWaitSeconds / MAX_WAIT_ROUNDS));
    for (;;) {
      st.bakeUntil = fireAt.toISOString();
      show();
      const abort = yield* sleepUntil(fireAt);
      if (abort === LEASE_LOST) return { error: leaseLostError() };
      if (abort) return { abort };
      const snap: TrafficSnapshot = yield* call(context, ROLLOUT.readTraffic, where, retry);
      const meanwhile = abortedMeanwhile();
      if (meanwhile) return { abort: meanwhile };
      if (snap.epoch !== start.epoch) {
        // The host restarted during the bake: its front counts from zero (and may have lost the weights).
        if (++restarts > MAX_RESTARTS) return { error: { code: 'RolloutInterrupted', message: `The service front restarted ${restarts} times during the ${kind === 'shadow' ? 'shadow phase' : `${weight} % step`}; rolled back.` } };
        start = yield* setWeights();
        fireAt = later(spec.bakeSeconds);
        waited = 0;
        continue;
      }
      const candidate = windowOf(start, snap, slot);
      const serving = windowOf(start, snap, previous);
      const shadow = mirror ? shadowWindowOf(start, snap, slot) : undefined;
      st.window = { candidate, serving, ...(shadow ? { shadow } : {}) };
      const j = judge(spec.gates, kind, candidate, shadow);
      if (!j.enough && !j.failed && waited < spec.gates.maxWaitSeconds && rounds < MAX_WAIT_ROUNDS) {
        const more = Math.min(waitChunk, spec.gates.maxWaitSeconds - waited);
        waited += more;
        rounds++;
        fireAt = later(more);
        continue;
      }
      const insufficient = !j.enough && !j.failed;
      const passed = !j.failed && (j.enough || spec.gates.onInsufficientTraffic === 'promote');
      const record: RolloutStepRecord = {
        phase: kind,
        weight,
        ...(mirror ? { mirrorPercent: mirror.percent } : {}),
        startedTime,
        endedTime: now().toISOString(),
        candidate,
        serving,
        ...(shadow ? { shadow } : {}),
        verdicts: j.verdicts,
        outcome: insufficient ? 'insufficientTraffic' : passed ? 'passed' : 'failed',
        ...(restarts ? { restarts } : {}),
      };
      completed.push(record);
      delete st.bakeUntil;
      show();
      if (passed) return { record };
      const failedGates = j.verdicts.filter((v) => !v.pass && (v.gate !== 'min_requests' || insufficient));
      const what = failedGates.map((v) => `${v.gate} ${v.value === undefined ? 'unmeasured' : +v.value.toFixed(4)} ${v.gate === 'min_requests' ? '<' : '>'} ${v.limit}`).join(', ');
      const at = kind === 'shadow' ? `the shadow phase (${spec.mirrorPercent} % mirrored)` : `${weight} %`;
      return {
        record,
        error: insufficient
          ? { code: 'RolloutInsufficientTraffic', message: `Too little traffic at ${at} after waiting ${waited} s more (${what}); on_insufficient_traffic is rollback.` }
          : { code: 'RolloutGateFailed', message: `The new version failed its gates at ${at}: ${what}.` },
      };
    }
  }

  const abortedError = (e: AbortEvent): ErrorInfo => ({ code: 'RolloutAborted', message: `Aborted${e.by ? ` by ${e.by}` : ''}${e.reason ? `: ${e.reason}` : ''}.` });

  /** Back to 0 %: all live traffic to the serving version (the caller then removes the new slot). */
  function* rollBack(decision: RolloutDecision, error: ErrorInfo, abort?: AbortEvent, failed?: RolloutStepRecord): Generator<Task, RolloutRunResult, any> {
    st.phase = 'rollingBack';
    delete st.bakeUntil;
    show();
    yield* call(context, ROLLOUT.setWeights, { ...where, weights: { [previous]: 100, [slot]: 0 } }, retry);
    st.weight = 0;
    yield* publish('RolloutRolledBack', { slot, previousSlot: previous, decision, error, ...(failed ? { step: failed } : {}) });
    return finish(decision, false, `${decision} at ${completed.length ? `${completed[completed.length - 1].weight} %` : 'the start'}: ${error.message}`, error, abort);
  }

  try {
    if (spec.mirrorPercent) {
      const r = yield* phase('shadow', 0);
      if (r.abort) return yield* rollBack('aborted', abortedError(r.abort), r.abort);
      if (r.error) return yield* rollBack('rolledBack', r.error, undefined, r.record);
      if (r.record) yield* publish('RolloutStepCompleted', { ...r.record }, r.record.phase === 'shadow' ? 'shadow' : `step-${r.record.weight}`);
    }
    for (const weight of spec.steps) {
      if (spec.approval && spec.approval.beforePercent === weight) {
        const a = yield* awaitApproval(weight, spec.approval.timeoutSeconds);
        if (a.leaseLost) return yield* rollBack('rolledBack', leaseLostError());
        if (a.abort) return yield* rollBack('aborted', abortedError(a.abort), a.abort);
        approval = a.approval!;
        st.approval = approval;
        // Shown at once (before the next activity): a second approve or reject is refused, not silently ignored.
        show();
        if (approval.decision !== 'approved') {
          const why =
            approval.decision === 'timedOut'
              ? { code: 'RolloutApprovalTimedOut', message: `Nobody approved the step to ${weight} % within ${spec.approval.timeoutSeconds} s (a timeout rejects).` }
              : { code: 'RolloutRejected', message: `The step to ${weight} % was rejected${approval.by ? ` by ${approval.by}` : ''}${approval.reason ? `: ${approval.reason}` : ''}.` };
          return yield* rollBack('rejected', why);
        }
      }
      const r = yield* phase('step', weight);
      if (r.abort) return yield* rollBack('aborted', abortedError(r.abort), r.abort);
      if (r.error) return yield* rollBack('rolledBack', r.error, undefined, r.record);
      if (r.record) yield* publish('RolloutStepCompleted', { ...r.record }, r.record.phase === 'shadow' ? 'shadow' : `step-${r.record.weight}`);
    }
    const path = [...(spec.mirrorPercent ? [`shadow ${spec.mirrorPercent} %`] : []), ...spec.steps.map((w) => `${w} %`)].join(' → ');
    // An abort raised during the last step's activities (its window read, its event) still wins over the promotion.
    const late = abortedMeanwhile();
    if (late) return yield* rollBack('aborted', abortedError(late), late);
    return finish('promote', true, `${spec.strategy}: ${path} passed`);
  } catch (err) {
    // An activity failed after its retries: back to 0 % if possible; the caller rolls the slot back.
    const error = failureOf(err, 'RolloutFailed');
    try {
      return yield* rollBack('rolledBack', error);
    } catch {
      return finish('rolledBack', false, `rollout failed: ${error.message}`, error);
    }
  }
}

registerOrchestration(ROLLOUT.run, rolloutTraffic);
