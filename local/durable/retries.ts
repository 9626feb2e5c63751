/**
 * Retry bookkeeping of `callActivityWithRetry` / `callSubOrchestratorWithRetry`, as DTFx does it for the
 * durable-functions library (replay schema V1): a failed attempt of a retried task gets a back-off timer
 * (one task id), and a fired back-off timer re-schedules the task (one more id). Both take their ids when
 * the failure (resp. the timer) is delivered, which is why an episode takes those events first.
 */
import { EventType, newEvent } from './history';
import { Active, childId, EngineState, Work } from './instance';
import { HistoryEvent } from './store';

export interface RetryOptions {
  firstRetryIntervalInMilliseconds: number;
  maxNumberOfAttempts: number;
  backoffCoefficient?: number;
  maxRetryIntervalInMilliseconds?: number;
  retryTimeoutInMilliseconds?: number;
}

export interface RetryState {
  kind: 'activity' | 'sub';
  name: string;
  /** JSON text of the input. */
  input: string;
  options: RetryOptions;
  attempt: number;
  firstAttemptAt: string;
  childInstanceId?: string;
}

/** A failure of a retried attempt, or the firing of a retry back-off timer. */
export function isRetryEvent(engine: EngineState, e: HistoryEvent): boolean {
  return (
    ((e.EventType === EventType.TaskFailed || e.EventType === EventType.SubOrchestrationInstanceFailed) && engine.retries[String(e.TaskScheduledId)] !== undefined) ||
    (e.EventType === EventType.TimerFired && engine.retryTimers[String(e.TimerId)] !== undefined)
  );
}

/** A failed attempt of a retried task gets a back-off timer; a fired back-off timer re-schedules the task. */
export function applyRetryBookkeeping(a: Active, e: HistoryEvent, added: HistoryEvent[], work: Work[]): void {
  const engine = a.engine;
  if (e.EventType === EventType.TaskCompleted || e.EventType === EventType.SubOrchestrationInstanceCompleted) {
    // A retried task that succeeded needs no more bookkeeping (the engine state stays as small as what is in flight).
    delete engine.retries[String(e.TaskScheduledId)];
  } else if (e.EventType === EventType.TaskFailed || e.EventType === EventType.SubOrchestrationInstanceFailed) {
    const r = engine.retries[String(e.TaskScheduledId)];
    if (!r) return;
    delete engine.retries[String(e.TaskScheduledId)];
    const timerId = engine.nextId++;
    const exhausted = r.attempt >= r.options.maxNumberOfAttempts || retryTimedOut(r);
    const delay = exhausted ? 0 : retryDelayMs(r.options, r.attempt);
    const fireAt = new Date(Date.now() + delay).toISOString();
    added.push(newEvent(EventType.TimerCreated, timerId, { FireAt: fireAt }));
    work.push({ kind: 'timer', id: timerId, fireAt });
    engine.retryTimers[timerId] = { ...r, attempt: r.attempt + 1 };
  } else if (e.EventType === EventType.TimerFired) {
    const r = engine.retryTimers[String(e.TimerId)];
    if (!r) return;
    delete engine.retryTimers[String(e.TimerId)];
    if (r.attempt > r.options.maxNumberOfAttempts) return; // the library fails the task itself
    const id = engine.nextId++;
    engine.retries[id] = r;
    if (r.kind === 'activity') {
      added.push(newEvent(EventType.TaskScheduled, id, { Name: r.name, Input: r.input }));
      work.push(retryTimedOut(r) ? { kind: 'fail', id, sub: false, message: `Retry timeout of ${r.options.retryTimeoutInMilliseconds} ms exceeded.` } : { kind: 'activity', id, name: r.name, input: r.input });
    } else {
      const childInstanceId = r.childInstanceId ?? childId(a.meta, id);
      added.push(newEvent(EventType.SubOrchestrationInstanceCreated, id, { Name: r.name, InstanceId: childInstanceId, Input: r.input }));
      work.push(retryTimedOut(r) ? { kind: 'fail', id, sub: true, message: `Retry timeout of ${r.options.retryTimeoutInMilliseconds} ms exceeded.` } : { kind: 'sub', id, name: r.name, input: r.input, childInstanceId });
    }
  }
}

export function retryTimedOut(r: RetryState): boolean {
  const t = r.options.retryTimeoutInMilliseconds;
  return !!t && t > 0 && Date.now() - Date.parse(r.firstAttemptAt) >= t;
}

/** DTFx retry back-off: first interval × coefficient^(attempt−1), capped by the max interval. */
export function retryDelayMs(o: RetryOptions, attempt: number): number {
  const coefficient = o.backoffCoefficient && o.backoffCoefficient > 0 ? o.backoffCoefficient : 1;
  let delay = o.firstRetryIntervalInMilliseconds * Math.pow(coefficient, attempt - 1);
  if (o.maxRetryIntervalInMilliseconds && o.maxRetryIntervalInMilliseconds > 0) delay = Math.min(delay, o.maxRetryIntervalInMilliseconds);
  return Math.max(0, Math.round(delay));
}
