/**
 * The durable orchestration engine of the local host: what the Durable Functions extension does for
 * an out-of-process (Node) app, on Azure Storage.
 *
 * Each "episode" appends new events to an instance's history, calls the app's registered
 * orchestration handler (the durable-functions library's own replay engine) with the whole history,
 * and turns the actions it returns into history events and work: activities, timers,
 * sub-orchestrations, continue-as-new. The history and the instance record are persisted before any
 * of that work starts, so after a crash the outstanding work is derived from the history again.
 *
 * Task ids follow the library's sequence numbering (replay schema V1): every scheduled activity,
 * timer and sub-orchestration takes the next id in action order; a retry of a failed attempt takes
 * one id for its back-off timer and one for the re-scheduled attempt, at the moment the failure
 * (resp. the timer) is delivered — which is why those events are always delivered first in an episode.
 */
import { randomUUID } from 'crypto';
import { fromTypedData, invokeFunction } from '../invoke';
import { Dispatcher } from './dispatch';
import { completedIds, completionId, EventType, newEvent, outstandingWork, parseJson } from './history';
import { Active, childId, DurableError, EngineState, freshEngineState, functionOf, InboxItem, validateInstanceId, Work } from './instance';
import { applyRetryBookkeeping, isRetryEvent, RetryOptions } from './retries';
import { Semaphore } from './semaphore';
import { DurableStore, HistoryEvent, InstanceMeta, RuntimeStatus, TERMINAL } from './store';

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

export interface EngineOptions {
  store: DurableStore;
  maxConcurrentActivities: number;
  maxConcurrentOrchestrations: number;
  log?: (message: string) => void;
}

/** durable-functions sends string inputs as JSON text and other values as they are. */
function actionInputJson(input: unknown): string {
  if (input === undefined) return 'null';
  if (typeof input === 'string') return input;
  return JSON.stringify(input);
}

export class DurableEngine {
  private readonly active = new Map<string, Active>();
  private readonly loading = new Map<string, Promise<Active | undefined>>();
  private readonly activitySlots: Semaphore;
  private readonly orchestrationSlots: Semaphore;
  private readonly dispatcher: Dispatcher;
  private stopped = false;
  private readonly inFlight = new Set<Promise<unknown>>();
  /** How many times each activity function ran (observability for tests and benchmarks). */
  readonly activityRuns = new Map<string, number>();

  /** Peak concurrency seen (host.json limits are honoured when these stay at or under them). */
  get peaks(): { activities: number; orchestrations: number } {
    return { activities: this.activitySlots.peak, orchestrations: this.orchestrationSlots.peak };
  }

  constructor(private readonly opts: EngineOptions) {
    this.activitySlots = new Semaphore(Math.max(1, opts.maxConcurrentActivities));
    this.orchestrationSlots = new Semaphore(Math.max(1, opts.maxConcurrentOrchestrations));
    this.dispatcher = new Dispatcher({
      store: opts.store,
      activitySlots: this.activitySlots,
      activityRuns: this.activityRuns,
      isStopped: () => this.stopped,
      track: (p) => this.track(p),
      deliver: (instanceId, executionId, event) => this.deliver(instanceId, executionId, event),
      activate: (instanceId) => this.activate(instanceId),
      createInstance: (name, instanceId, inputJson, parent) => this.createInstance(name, instanceId, inputJson, parent),
    });
  }

  private log(message: string): void {
    this.opts.log?.(message);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    p.finally(() => this.inFlight.delete(p)).catch(() => undefined);
    return p;
  }

  // ------------------------------------------------------------------ lifecycle

  /** Resume every unfinished instance from storage. */
  async start(): Promise<number> {
    const metas = await this.opts.store.listMetas({ statuses: ['Pending', 'Running', 'ContinuedAsNew'] });
    for (const meta of metas) {
      // One instance that cannot be loaded must not keep the host (and every other run) from starting.
      await this.activate(meta.instanceId).catch((err) => this.log(`could not resume ${meta.instanceId} yet (will retry): ${(err as Error).message}`));
    }
    return metas.length;
  }

  /** Stop scheduling; wait for running episodes and activities (bounded). */
  async stop(timeoutMs = 5000): Promise<void> {
    this.stopped = true;
    for (const a of this.active.values()) for (const t of a.timers.values()) clearTimeout(t);
    const all = Promise.allSettled([...this.inFlight]);
    await Promise.race([all, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  // ------------------------------------------------------------------ client operations

  async startNew(name: string, instanceId: string, input: unknown): Promise<InstanceMeta> {
    validateInstanceId(instanceId);
    if (!functionOf(name, 'orchestrationTrigger')) {
      throw new DurableError(404, 'OrchestratorNotFound', `No orchestrator function named '${name}' is registered.`);
    }
    const fn = functionOf(name, 'orchestrationTrigger')!;
    return this.createInstance(fn.metadata.name, instanceId, input === undefined ? undefined : JSON.stringify(input));
  }

  private async createInstance(
    name: string,
    instanceId: string,
    inputJson: string | undefined,
    parent?: { instanceId: string; taskId: number; executionId: string },
  ): Promise<InstanceMeta> {
    const now = new Date().toISOString();
    const meta: InstanceMeta = {
      instanceId,
      name,
      status: 'Pending',
      createdTime: now,
      lastUpdatedTime: now,
      input: inputJson,
      generation: 0,
      executionId: randomUUID().replace(/-/g, ''),
      historyCount: 0,
      parentInstanceId: parent?.instanceId,
      parentTaskId: parent?.taskId,
      parentExecutionId: parent?.executionId,
      engine: JSON.stringify(freshEngineState()),
    };
    if (!(await this.opts.store.tryCreate(meta))) {
      const existing = await this.opts.store.getMeta(instanceId);
      if (existing && !TERMINAL.has(existing.status)) {
        if (parent && existing.parentInstanceId === parent.instanceId && existing.parentTaskId === parent.taskId && existing.parentExecutionId === parent.executionId) {
          // Re-delivery of the same sub-orchestration start after a crash: it is already running.
          await this.activate(instanceId);
          return existing;
        }
        throw new DurableError(409, 'InstanceExists', `An instance with id '${instanceId}' is already ${existing.status.toLowerCase()}.`);
      }
      this.active.delete(instanceId);
      await this.opts.store.replace(meta);
    }
    await this.activate(instanceId, meta);
    return meta;
  }

  async getMeta(instanceId: string): Promise<InstanceMeta | undefined> {
    const a = this.active.get(instanceId);
    if (a) return { ...a.published, engine: '' };
    return this.opts.store.getMeta(instanceId);
  }

  async getHistory(instanceId: string): Promise<HistoryEvent[]> {
    const a = this.active.get(instanceId);
    if (a) return [...a.history];
    const meta = await this.opts.store.getMeta(instanceId);
    return meta ? this.opts.store.loadHistory(meta) : [];
  }

  async list(filter: { statuses?: RuntimeStatus[]; createdFrom?: Date; createdTo?: Date }): Promise<InstanceMeta[]> {
    const metas = await this.opts.store.listMetas(filter);
    return metas.map((m) => this.active.get(m.instanceId)?.published ?? m);
  }

  async raiseEvent(instanceId: string, eventName: string, data: unknown): Promise<void> {
    const a = await this.requireRunning(instanceId);
    const event = newEvent(EventType.EventRaised, -1, { Name: eventName, Input: data === undefined ? undefined : JSON.stringify(data) });
    await this.enqueue(a, { kind: 'event', executionId: a.meta.executionId, event }, true);
  }

  async terminate(instanceId: string, reason: string): Promise<void> {
    const a = await this.requireRunning(instanceId);
    await this.enqueue(a, { kind: 'terminate', reason }, true);
  }

  async purge(instanceId: string): Promise<boolean> {
    const meta = await this.opts.store.getMeta(instanceId);
    if (!meta) return false;
    if (!TERMINAL.has(meta.status)) {
      throw new DurableError(409, 'InstanceRunning', `Instance '${instanceId}' is ${meta.status.toLowerCase()}; terminate it before purging its history.`);
    }
    await this.opts.store.purge(instanceId);
    this.active.delete(instanceId);
    return true;
  }

  private async requireRunning(instanceId: string): Promise<Active> {
    const meta = await this.getMeta(instanceId);
    if (!meta) throw new DurableError(404, 'InstanceNotFound', `No instance with id '${instanceId}' was found.`);
    if (TERMINAL.has(meta.status)) {
      throw new DurableError(410, 'InstanceCompleted', `Instance '${instanceId}' has already ${meta.status.toLowerCase()}.`);
    }
    const a = await this.activate(instanceId);
    if (!a) throw new DurableError(404, 'InstanceNotFound', `No instance with id '${instanceId}' was found.`);
    return a;
  }

  // ------------------------------------------------------------------ activation and recovery

  /** Load an unfinished instance into memory and re-derive its outstanding work from history. */
  private activate(instanceId: string, created?: InstanceMeta): Promise<Active | undefined> {
    const existing = this.active.get(instanceId);
    if (existing) return Promise.resolve(existing);
    const pending = this.loading.get(instanceId);
    if (pending) return pending;
    const p = (async () => {
      const meta = created ?? (await this.opts.store.getMeta(instanceId));
      if (!meta || TERMINAL.has(meta.status)) return undefined;
      const history = meta.historyCount ? await this.opts.store.loadHistory(meta) : [];
      const a: Active = {
        meta,
        published: { ...meta },
        engine: { ...freshEngineState(), ...(JSON.parse(meta.engine || '{}') as Partial<EngineState>) },
        history,
        inbox: [],
        waiters: [],
        running: false,
        queued: false,
        kick: false,
        completed: completedIds(history),
        timers: new Map(),
      };
      this.active.set(instanceId, a);
      try {
        if (history.length === 0) this.schedule(a);
        else await this.recover(a);
      } catch (err) {
        // Half-recovered: forget it and try again from storage, so no outstanding work is left un-armed.
        for (const t of a.timers.values()) clearTimeout(t);
        if (this.active.get(instanceId) === a) this.active.delete(instanceId);
        this.reload(instanceId, 1000);
        throw err;
      }
      return a;
    })();
    this.loading.set(instanceId, p);
    p.finally(() => this.loading.delete(instanceId)).catch(() => undefined);
    return p;
  }

  private async recover(a: Active): Promise<void> {
    const last = a.history[a.history.length - 1];
    if (last?.EventType === EventType.ExecutionCompleted && last.OrchestrationStatus === 'ContinuedAsNew') {
      // A crash came between the two halves of continue-as-new: finish the switch to the next execution.
      await this.startNextGeneration(a, String(last.Result ?? 'null'));
      this.schedule(a);
      return;
    }
    const work = outstandingWork(a.history, a.completed);
    if (last && last.EventType !== EventType.OrchestratorCompleted) this.schedule(a);
    this.log(`resumed ${a.meta.instanceId} (${a.meta.name}): ${work.length} outstanding task(s)`);
    await this.dispatcher.dispatch(a, work, true);
  }

  // ------------------------------------------------------------------ scheduling

  private enqueue(a: Active, item: InboxItem, wait: boolean): Promise<void> {
    a.inbox.push(item);
    const p = wait
      ? new Promise<void>((resolve, reject) => a.waiters.push({ resolve, reject }))
      : Promise.resolve();
    this.schedule(a);
    return p;
  }

  private schedule(a: Active): void {
    if (this.stopped || a.queued) return;
    a.queued = true;
    this.track(
      this.orchestrationSlots.run(async () => {
        a.queued = false;
        if (a.running || this.stopped) return;
        a.running = true;
        try {
          await this.episode(a);
        } catch (err) {
          // Storage failed mid-episode: forget the in-memory state and reload the instance from what was
          // persisted (its outstanding work is derived again; duplicates of completions are dropped).
          this.log(`episode of ${a.meta.instanceId} failed, reloading it: ${(err as Error).message}`);
          for (const w of a.waiters.splice(0)) w.reject(err as Error);
          for (const t of a.timers.values()) clearTimeout(t);
          if (this.active.get(a.meta.instanceId) === a) this.active.delete(a.meta.instanceId);
          this.reload(a.meta.instanceId, 1000);
        } finally {
          a.running = false;
        }
        if ((a.inbox.length || a.kick) && this.active.get(a.meta.instanceId) === a) this.schedule(a);
      }),
    );
  }

  /** Re-activate an instance from storage after `delayMs`, backing off while storage stays unavailable. */
  private reload(instanceId: string, delayMs: number): void {
    const timer = setTimeout(() => {
      if (this.stopped) return;
      this.activate(instanceId).catch((e) => {
        this.log(`reload of ${instanceId} failed, retrying: ${(e as Error).message}`);
        this.reload(instanceId, Math.min(delayMs * 2, 30_000));
      });
    }, delayMs);
    timer.unref();
  }

  /** Deliver a completion to the execution that asked for it (a later run or generation of the same id ignores it). */
  private deliver(instanceId: string, executionId: string, event: HistoryEvent): void {
    if (this.stopped) return;
    void this.track(
      this.activate(instanceId).then((a) => {
        if (!a || a.meta.executionId !== executionId) return;
        void this.enqueue(a, { kind: 'event', executionId, event }, false);
      }),
    ).catch((err) => this.log(`could not deliver an event to ${instanceId}: ${(err as Error).message}`));
  }

  // ------------------------------------------------------------------ one episode

  private async episode(a: Active): Promise<void> {
    a.kick = false;
    const items = a.inbox.splice(0);
    // Callers waiting for these items (raise, terminate) are answered once the episode is persisted; on a
    // failure the schedule() catch rejects them all, so no request is left hanging.
    const waiterCount = a.waiters.length;
    const answerWaiters = () => {
      for (const w of a.waiters.splice(0, waiterCount)) w.resolve();
    };
    const meta = a.meta;
    const engine = a.engine;
    const fromSeq = a.history.length;
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

      const state = await this.callOrchestrator(a, a.history.concat(added));
      const actions = (state.actions ?? []).flat(Infinity) as Record<string, unknown>[];
      const fresh = actions.slice(engine.actionsProcessed);
      engine.actionsProcessed = actions.length;
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
        await this.continueAsNew(a, continueAsNew.input, customStatus, fromSeq, added);
        answerWaiters();
        return;
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

    meta.lastUpdatedTime = new Date().toISOString();
    meta.historyCount = fromSeq + added.length;
    meta.engine = JSON.stringify(engine);
    await this.opts.store.commit(meta, added, fromSeq);
    a.history.push(...added);
    a.published = { ...meta };
    answerWaiters();

    if (TERMINAL.has(meta.status)) {
      for (const t of a.timers.values()) clearTimeout(t);
      this.active.delete(meta.instanceId);
      // Requests that arrived while this last episode ran find the instance finished.
      for (const w of a.waiters.splice(0)) w.reject(new DurableError(410, 'InstanceCompleted', `Instance '${meta.instanceId}' has already ${meta.status.toLowerCase()}.`));
      if (notifyParent) this.dispatcher.notifyParent(meta);
      return;
    }
    await this.dispatcher.dispatch(a, work, false);
  }

  private async continueAsNew(a: Active, inputJson: string, customStatus: string | undefined, fromSeq: number, added: HistoryEvent[]): Promise<void> {
    const meta = a.meta;
    // Record the end of this generation (the new input is its result), then start the next one.
    added.push(newEvent(EventType.ExecutionCompleted, -1, { OrchestrationStatus: 'ContinuedAsNew', Result: inputJson }));
    meta.historyCount = fromSeq + added.length;
    meta.engine = JSON.stringify(a.engine);
    meta.customStatus = customStatus ?? meta.customStatus;
    await this.opts.store.commit(meta, added, fromSeq);
    a.history.push(...added);
    a.published = { ...meta };
    await this.startNextGeneration(a, inputJson);
  }

  /**
   * The second half of continue-as-new: a fresh execution (new id, empty history, the new input). Also run by
   * recovery when a crash came between the two halves (the history then ends with `ContinuedAsNew`).
   */
  private async startNextGeneration(a: Active, inputJson: string): Promise<void> {
    const meta = a.meta;
    for (const t of a.timers.values()) clearTimeout(t);
    a.timers.clear();
    const oldGeneration = meta.generation;
    const oldExecutionId = meta.executionId;
    meta.generation += 1;
    meta.executionId = randomUUID().replace(/-/g, '');
    meta.input = inputJson;
    meta.status = 'Running';
    meta.historyCount = 0;
    meta.lastUpdatedTime = new Date().toISOString();
    a.engine = freshEngineState();
    meta.engine = JSON.stringify(a.engine);
    a.history = [];
    a.completed = new Set();
    await this.opts.store.commit(meta, [], 0);
    a.published = { ...meta };
    // External events that arrived during the last episode carry over to the new execution.
    a.inbox = a.inbox.map((i) => (i.kind === 'event' && i.executionId === oldExecutionId && i.event.EventType === EventType.EventRaised ? { ...i, executionId: meta.executionId } : i));
    void this.opts.store.dropGenerationsBefore(meta.instanceId, meta.generation).catch((err) =>
      this.log(`could not delete generation ${oldGeneration} of ${meta.instanceId}: ${(err as Error).message}`),
    );
    a.kick = true;
  }

  private async callOrchestrator(
    a: Active,
    history: HistoryEvent[],
  ): Promise<{ isDone: boolean; actions?: unknown[]; output?: unknown; customStatus?: unknown; failure?: { message: string; details?: unknown } }> {
    const fn = functionOf(a.meta.name, 'orchestrationTrigger');
    if (!fn) return { isDone: false, failure: { message: `No orchestrator function named '${a.meta.name}' is registered.` } };
    const bindingInfo = {
      history,
      input: parseJson(a.meta.input),
      instanceId: a.meta.instanceId,
      isReplaying: false,
      parentInstanceId: a.meta.parentInstanceId,
      upperSchemaVersion: 0,
      longRunningTimerIntervalDuration: '3.00:00:00',
      maximumShortTimerDuration: '6.00:00:00',
      defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
    };
    const res = await invokeFunction(fn, { trigger: { string: JSON.stringify(bindingInfo) } });
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
}
