/**
 * One replay episode of an instance, in memory: the new history events (this episode's start, the
 * completions and raised events delivered to the current execution), a call of the app's orchestrator
 * function (the durable-functions library's own replay engine) with the whole history, and the actions it
 * returns turned into history events and work. Persisting the result and starting the work are the
 * engine's (engine.ts, dispatch.ts).
 *
 * Task ids follow the library's sequence numbering (replay schema V1): every scheduled activity, timer and
 * sub-orchestration takes the next id in action order; retry bookkeeping (retries.ts) takes its ids when a
 * failure or back-off timer is delivered — which is why those events are always taken first in an episode.
 */
import { fromTypedData, invokeFunction } from '../invoke';
import { completionId, EventType, newEvent, parseJson } from './history';
import { Active, childId, EngineState, functionOf, InboxItem, Work } from './instance';
import { applyRetryBookkeeping, isRetryEvent, RetryOptions } from './retries';
import { HistoryEvent, InstanceMeta } from './store';

const ActionType = {
  CallActivity: 0,
  CallActivityWithRetry: 1,
  CallSubOrchestrator: 2,
  CallSubOrchestratorWithRetry: 3,
  ContinueAsNew: 4,
  CreateTimer: 5,
  WaitForExternalEvent: 6,
} as const;

const MAX_CUSTOM_STATUS = 16 * 1024;

export interface EpisodeResult {
  /** New history events, to append after the instance's current history. */
  added: HistoryEvent[];
  /** Work to start once `added` is persisted. */
  work: Work[];
  /** The instance finished (completed, failed, terminated): its parent, if any, is to be told. */
  notifyParent: boolean;
  /** The orchestrator continued as new: this generation ends (its end is not in `added` yet) and the next one starts. */
  continueAsNew?: { input: string; customStatus: string | undefined };
}

/** durable-functions sends string inputs as JSON text and other values as they are. */
function actionInputJson(input: unknown): string {
  if (input === undefined) return 'null';
  if (typeof input === 'string') return input;
  return JSON.stringify(input);
}

/**
 * Run one episode for `items` (taken from the inbox). Updates the working copies `a.meta` (status, output,
 * custom status), `a.engine` and `a.completed`; leaves `a.history` and storage alone.
 */
export async function runEpisode(a: Active, items: InboxItem[]): Promise<EpisodeResult> {
  const meta = a.meta;
  const engine = a.engine;
  const added: HistoryEvent[] = [];
  const work: Work[] = [];
  let notifyParent = false;

  const terminate = items.find((i): i is Extract<InboxItem, { kind: 'terminate' }> => i.kind === 'terminate');
  if (terminate) {
    added.push(newEvent(EventType.ExecutionTerminated, -1, { Input: JSON.stringify(terminate.reason) }));
    meta.status = 'Terminated';
    meta.output = JSON.stringify(terminate.reason);
    notifyParent = true;
  } else {
    takeEvents(a, items, added, work);

    const state = await callOrchestrator(a, added);
    const actions = (state.actions ?? []).flat(Infinity) as Record<string, unknown>[];
    const fresh = actions.slice(engine.actionsProcessed);
    engine.actionsProcessed = actions.length;
    const { continueAsNew, unsupported } = scheduleActions(meta, engine, fresh, added, work);

    const customStatus = state.customStatus === undefined ? undefined : JSON.stringify(state.customStatus);
    let failure: { message: string; details?: unknown } | undefined = state.failure;
    if (!failure && unsupported) failure = { message: unsupported };
    if (!failure && customStatus && customStatus.length > MAX_CUSTOM_STATUS) {
      failure = { message: `The custom status is ${customStatus.length} characters long; the limit is ${MAX_CUSTOM_STATUS}. Keep custom status small (pass references, not payloads).` };
    }
    meta.customStatus = customStatus ?? meta.customStatus;
    added.push(newEvent(EventType.OrchestratorCompleted, -1));

    if (failure) {
      const message = `Orchestrator function '${meta.name}' failed: ${failure.message}`;
      added.push(newEvent(EventType.ExecutionCompleted, -1, { OrchestrationStatus: 'Failed', Result: message, FailureDetails: failure.details }));
      meta.status = 'Failed';
      meta.output = JSON.stringify(message);
      work.length = 0;
      notifyParent = true;
    } else if (continueAsNew) {
      return { added, work, notifyParent, continueAsNew: { input: continueAsNew.input, customStatus } };
    } else if (state.isDone) {
      const output = state.output === undefined ? 'null' : JSON.stringify(state.output);
      added.push(newEvent(EventType.ExecutionCompleted, -1, { OrchestrationStatus: 'Completed', Result: output }));
      meta.status = 'Completed';
      meta.output = output;
      work.length = 0;
      notifyParent = true;
    } else {
      meta.status = 'Running';
    }
  }
  return { added, work, notifyParent };
}

/**
 * The episode's first history events: its start (and the execution's, on the first episode), then the
 * delivered events of the current execution — retry failures and back-off timers first — each completion once.
 */
function takeEvents(a: Active, items: InboxItem[], added: HistoryEvent[], work: Work[]): void {
  const meta = a.meta;
  const engine = a.engine;
  added.push(newEvent(EventType.OrchestratorStarted, -1));
  if (a.history.length === 0) {
    added.push(newEvent(EventType.ExecutionStarted, -1, { Name: meta.name, Input: meta.input, ParentInstanceId: meta.parentInstanceId }));
  }
  const events = items.filter((i): i is Extract<InboxItem, { kind: 'event' }> => i.kind === 'event' && i.executionId === meta.executionId).map((i) => i.event);
  const ordered = [...events.filter((e) => isRetryEvent(engine, e)), ...events.filter((e) => !isRetryEvent(engine, e))];
  for (const e of ordered) {
    const id = completionId(e);
    if (id !== undefined) {
      if (a.completed.has(id)) continue; // an activity that ran twice (at least once): keep the first result
      a.completed.add(id);
    }
    added.push(e);
    applyRetryBookkeeping(a, e, added, work);
  }
}

/** The orchestrator's new actions as history events and work, each scheduled task taking the next id. */
function scheduleActions(
  meta: InstanceMeta,
  engine: EngineState,
  fresh: Record<string, unknown>[],
  added: HistoryEvent[],
  work: Work[],
): { continueAsNew?: { input: string }; unsupported?: string } {
  let continueAsNew: { input: string } | undefined;
  let unsupported: string | undefined;
  const now = new Date().toISOString();
  for (const act of fresh) {
    const type = Number(act.actionType);
    switch (type) {
      case ActionType.CallActivity:
      case ActionType.CallActivityWithRetry: {
        const id = engine.nextId++;
        const input = actionInputJson(act.input);
        added.push(newEvent(EventType.TaskScheduled, id, { Name: act.functionName, Input: input }));
        work.push({ kind: 'activity', id, name: String(act.functionName), input });
        if (type === ActionType.CallActivityWithRetry) {
          engine.retries[id] = { kind: 'activity', name: String(act.functionName), input, options: act.retryOptions as RetryOptions, attempt: 1, firstAttemptAt: now };
        }
        break;
      }
      case ActionType.CallSubOrchestrator:
      case ActionType.CallSubOrchestratorWithRetry: {
        const id = engine.nextId++;
        const input = act.input === undefined ? 'null' : JSON.stringify(act.input);
        const given = typeof act.instanceId === 'string' && act.instanceId ? act.instanceId : undefined;
        const childInstanceId = given ?? childId(meta, id);
        added.push(newEvent(EventType.SubOrchestrationInstanceCreated, id, { Name: act.functionName, InstanceId: childInstanceId, Input: input }));
        work.push({ kind: 'sub', id, name: String(act.functionName), input, childInstanceId });
        if (type === ActionType.CallSubOrchestratorWithRetry) {
          engine.retries[id] = { kind: 'sub', name: String(act.functionName), input, options: act.retryOptions as RetryOptions, attempt: 1, firstAttemptAt: now, childInstanceId: given };
        }
        break;
      }
      case ActionType.CreateTimer: {
        const id = engine.nextId++;
        const fireAt = new Date(String(act.fireAt)).toISOString();
        added.push(newEvent(EventType.TimerCreated, id, { FireAt: fireAt }));
        work.push({ kind: 'timer', id, fireAt });
        break;
      }
      case ActionType.WaitForExternalEvent:
        break;
      case ActionType.ContinueAsNew:
        continueAsNew = { input: actionInputJson(act.input) };
        break;
      default:
        unsupported = `Action type ${type} (durable entities, callHttp) is not supported by the local host.`;
    }
  }
  return { continueAsNew, unsupported };
}

/**
 * The JSON text of an instance's persisted history (its events joined by commas), by history array. A history only
 * grows (`push` after each commit) or is replaced by a new array (a new generation, a reload), so the text of the
 * events already serialized is kept and only the new ones are serialized: each episode would otherwise serialize
 * the whole history again (the episodes of a 500-mini-batch chunk carry up to ~2,000 events).
 */
const historyTexts = new WeakMap<HistoryEvent[], { count: number; text: string }>();

function historyText(history: HistoryEvent[]): string {
  let cached = historyTexts.get(history);
  if (!cached || cached.count > history.length) cached = { count: 0, text: '' };
  if (cached.count < history.length) {
    const tail = history.slice(cached.count).map((e) => JSON.stringify(e)).join(',');
    cached = { count: history.length, text: cached.text ? `${cached.text},${tail}` : tail };
    historyTexts.set(history, cached);
  }
  return cached.text;
}

/** The orchestration trigger's binding data, as one JSON text: the history is `a.history` followed by `added`. */
export function orchestrationBindingJson(a: Active, added: HistoryEvent[], rest: Record<string, unknown>): string {
  const persisted = historyText(a.history);
  const fresh = added.map((e) => JSON.stringify(e)).join(',');
  const events = persisted && fresh ? `${persisted},${fresh}` : persisted || fresh;
  const others = JSON.stringify(rest);
  return `{"history":[${events}]${others === '{}' ? '' : `,${others.slice(1, -1)}`}}`;
}

async function callOrchestrator(
  a: Active,
  added: HistoryEvent[],
): Promise<{ isDone: boolean; actions?: unknown[]; output?: unknown; customStatus?: unknown; failure?: { message: string; details?: unknown } }> {
  const fn = functionOf(a.meta.name, 'orchestrationTrigger');
  if (!fn) return { isDone: false, failure: { message: `No orchestrator function named '${a.meta.name}' is registered.` } };
  const bindingInfo = {
    input: parseJson(a.meta.input),
    instanceId: a.meta.instanceId,
    isReplaying: false,
    parentInstanceId: a.meta.parentInstanceId,
    upperSchemaVersion: 0,
    longRunningTimerIntervalDuration: '3.00:00:00',
    maximumShortTimerDuration: '6.00:00:00',
    defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
  };
  const res = await invokeFunction(fn, { trigger: { string: orchestrationBindingJson(a, added, bindingInfo) } });
  if (res.error) {
    const marker = '\n\n$OutOfProcData$:';
    const idx = res.error.message.indexOf(marker);
    if (idx >= 0) {
      const state = JSON.parse(res.error.message.slice(idx + marker.length));
      return { ...state, isDone: false, failure: { message: String(state.error ?? res.error.message.slice(0, idx)), details: state.failureDetails } };
    }
    return { isDone: false, failure: { message: res.error.message } };
  }
  const state = fromTypedData(res.response?.returnValue) as { isDone: boolean; actions: unknown[]; output?: unknown; customStatus?: unknown };
  return state ?? { isDone: false, failure: { message: 'The orchestrator returned no state.' } };
}
