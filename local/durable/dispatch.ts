/**
 * Turning an episode's outstanding work into running work: activities (within the host.json activity
 * limit), durable timers, sub-orchestration starts and retry-timeout failures. Each completion goes back
 * to the execution that asked for it as a history event, through the engine's `deliver`; a finished
 * sub-orchestration reports to its parent the same way.
 */
import * as df from 'durable-functions';
import { fromTypedData, invokeFunction, jsonData } from '../invoke';
import { EventType, newEvent, parseJson } from './history';
import { Active, DurableError, functionOf, validateInstanceId, Work } from './instance';
import { Semaphore } from './semaphore';
import { DurableStore, HistoryEvent, InstanceMeta, TERMINAL } from './store';

/**
 * Test-only: an activity answered by the test instead of the app's function (the way Temporal tests workflows with
 * mocked activities). Gets the activity's input as JSON; what it returns is the task's result, what it throws fails
 * the task (retry options apply as for the real function). Never set by the CLI: only `startTestEnvironment`.
 */
export type ActivityOverride = (input: unknown, context: { instanceId: string; activityName: string }) => unknown;

/** What dispatching needs from the engine that owns the instances. */
export interface DispatchContext {
  store: DurableStore;
  activitySlots: Semaphore;
  /** How many times each activity function ran. */
  activityRuns: Map<string, number>;
  /** Test-only activity handlers by activity name (see ActivityOverride). */
  activityOverrides?: Readonly<Record<string, ActivityOverride>>;
  isStopped(): boolean;
  /** Keep `stop()` waiting for this promise. */
  track<T>(p: Promise<T>): Promise<T>;
  deliver(instanceId: string, executionId: string, event: HistoryEvent): void;
  activate(instanceId: string): Promise<Active | undefined>;
  createInstance(name: string, instanceId: string, inputJson: string | undefined, parent: { instanceId: string; taskId: number; executionId: string }): Promise<InstanceMeta>;
}

/**
 * The task's failure details, as the Functions host records them. The durable SDK's activity wrapper serializes a
 * failure with exception properties (`df.app.setExceptionPropertiesProvider`) into the error's message as JSON
 * (`errorType`, `errorMessage`, `properties`, …): the host lifts it into the `FailureDetails` the orchestrator reads.
 * Stack traces are not kept.
 */
function failureDetailsOf(err: Error): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(err.message);
    if (parsed && typeof parsed === 'object') {
      const p = parsed as Record<string, unknown>;
      if ('ErrorMessage' in p || 'ErrorType' in p) return { ...p, StackTrace: undefined };
      if (typeof p.errorMessage === 'string' && typeof p.errorType === 'string') {
        return {
          ErrorType: p.errorType,
          ErrorMessage: p.errorMessage,
          IsNonRetriable: p.isNonRetriable === true,
          ...(p.properties && typeof p.properties === 'object' ? { Properties: p.properties } : {}),
        };
      }
    }
  } catch {
    // not a serialized failure: use the error as it is
  }
  return { ErrorType: err.name || 'Error', ErrorMessage: err.message };
}

/**
 * What `df.app.activity` puts around a handler (the SDK's failure serialization); an override stands in for the
 * app's handler, so its failures travel the same way. Not in the SDK's typings, hence the lookup.
 */
type Handler = (input: unknown, context: unknown) => Promise<unknown>;
const sdkWrap: ((h: Handler) => Handler) | undefined = Reflect.get(df.app, 'wrapActivityHandler');
const asActivity = (o: ActivityOverride): Handler => {
  const h: Handler = async (input, context) => o(input, context as { instanceId: string; activityName: string });
  return sdkWrap ? sdkWrap(h) : h;
};

export class Dispatcher {
  constructor(private readonly ctx: DispatchContext) {}

  /** Start `work` for instance `a`; when `recovering`, a sub-orchestration that was already started is re-attached instead. */
  async dispatch(a: Active, work: Work[], recovering: boolean): Promise<void> {
    const { instanceId, executionId } = a.meta;
    for (const w of work) {
      switch (w.kind) {
        case 'activity':
          void this.ctx.track(this.runActivity(instanceId, executionId, w.id, w.name, w.input));
          break;
        case 'timer':
          this.armTimer(a, w.id, w.fireAt);
          break;
        case 'sub':
          await this.startChild(a, w, recovering);
          break;
        case 'fail': {
          const type = w.sub ? EventType.SubOrchestrationInstanceFailed : EventType.TaskFailed;
          this.ctx.deliver(instanceId, executionId, newEvent(type, -1, { TaskScheduledId: w.id, Reason: w.message, FailureDetails: { ErrorType: 'RetryTimeout', ErrorMessage: w.message } }));
          break;
        }
      }
    }
  }

  private armTimer(a: Active, id: number, fireAt: string): void {
    const { instanceId, executionId } = a.meta;
    const fire = () => {
      if (this.ctx.isStopped()) return;
      const left = Date.parse(fireAt) - Date.now();
      if (left > 0) {
        a.timers.set(id, setTimeout(fire, Math.min(left, 2 ** 31 - 1)));
        return;
      }
      a.timers.delete(id);
      this.ctx.deliver(instanceId, executionId, newEvent(EventType.TimerFired, -1, { TimerId: id, FireAt: fireAt }));
    };
    fire();
  }

  private async runActivity(instanceId: string, executionId: string, id: number, name: string, input: string): Promise<void> {
    await this.ctx.activitySlots.run(async () => {
      if (this.ctx.isStopped()) return;
      const fn = functionOf(name, 'activityTrigger');
      const override = this.ctx.activityOverrides && Object.prototype.hasOwnProperty.call(this.ctx.activityOverrides, name) ? this.ctx.activityOverrides[name] : undefined;
      let event: HistoryEvent;
      if (override) {
        this.ctx.activityRuns.set(name, (this.ctx.activityRuns.get(name) ?? 0) + 1);
        try {
          const value = await asActivity(override)(parseJson(input), { instanceId, activityName: name });
          event = newEvent(EventType.TaskCompleted, -1, { TaskScheduledId: id, Result: value === undefined ? 'null' : JSON.stringify(value) });
        } catch (err) {
          const details = failureDetailsOf(err instanceof Error ? err : new Error(String(err)));
          event = newEvent(EventType.TaskFailed, -1, { TaskScheduledId: id, Reason: String(details.ErrorMessage), FailureDetails: details });
        }
      } else if (!fn) {
        const message = `No activity function named '${name}' is registered.`;
        event = newEvent(EventType.TaskFailed, -1, { TaskScheduledId: id, Reason: message, FailureDetails: { ErrorType: 'ActivityNotFound', ErrorMessage: message } });
      } else {
        this.ctx.activityRuns.set(name, (this.ctx.activityRuns.get(name) ?? 0) + 1);
        const res = await invokeFunction(fn, { trigger: jsonData(parseJson(input)) ?? { json: 'null' } });
        if (res.error) {
          const details = failureDetailsOf(res.error);
          event = newEvent(EventType.TaskFailed, -1, { TaskScheduledId: id, Reason: String(details.ErrorMessage ?? res.error.message), FailureDetails: details });
        } else {
          const value = fromTypedData(res.response?.returnValue);
          event = newEvent(EventType.TaskCompleted, -1, { TaskScheduledId: id, Result: value === undefined ? 'null' : JSON.stringify(value) });
        }
      }
      if (!this.ctx.isStopped()) this.ctx.deliver(instanceId, executionId, event);
    });
  }

  private async startChild(a: Active, w: Extract<Work, { kind: 'sub' }>, recovering: boolean): Promise<void> {
    const parent = { instanceId: a.meta.instanceId, taskId: w.id, executionId: a.meta.executionId };
    if (recovering) {
      const child = await this.ctx.store.getMeta(w.childInstanceId);
      if (child && child.parentInstanceId === parent.instanceId && child.parentTaskId === parent.taskId && child.parentExecutionId === parent.executionId) {
        if (TERMINAL.has(child.status)) this.notifyParent(child);
        else await this.ctx.activate(child.instanceId);
        return;
      }
    }
    try {
      validateInstanceId(w.childInstanceId);
      const fn = functionOf(w.name, 'orchestrationTrigger');
      if (!fn) throw new DurableError(404, 'OrchestratorNotFound', `No orchestrator function named '${w.name}' is registered.`);
      await this.ctx.createInstance(fn.metadata.name, w.childInstanceId, w.input, parent);
    } catch (err) {
      // Only a refusal (bad id, unknown orchestrator, id taken) fails the task; a storage error is retried by
      // the episode's reload, which derives this start again from the history.
      if (!(err instanceof DurableError)) throw err;
      const message = err.message;
      this.ctx.deliver(a.meta.instanceId, a.meta.executionId, newEvent(EventType.SubOrchestrationInstanceFailed, -1, {
        TaskScheduledId: w.id,
        Reason: message,
        FailureDetails: { ErrorType: err.code, ErrorMessage: message },
      }));
    }
  }

  /** A finished sub-orchestration reports its outcome to the parent execution that started it. */
  notifyParent(child: InstanceMeta): void {
    if (!child.parentInstanceId || child.parentTaskId === undefined) return;
    const event =
      child.status === 'Completed'
        ? newEvent(EventType.SubOrchestrationInstanceCompleted, -1, { TaskScheduledId: child.parentTaskId, Result: child.output ?? 'null' })
        : newEvent(EventType.SubOrchestrationInstanceFailed, -1, {
            TaskScheduledId: child.parentTaskId,
            Reason: String(parseJson(child.output)),
            FailureDetails: { ErrorType: child.status === 'Terminated' ? 'SubOrchestrationTerminated' : 'SubOrchestrationFailed', ErrorMessage: String(parseJson(child.output)) },
          });
    if (child.parentExecutionId) this.ctx.deliver(child.parentInstanceId, child.parentExecutionId, event);
  }
}
