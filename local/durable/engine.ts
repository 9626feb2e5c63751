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
 * This file is the scheduler and lifecycle that ties the parts together: client operations, loading and
 * recovering instances, the inbox and episode scheduling (within the host.json limits), persisting an
 * episode, continue-as-new. The parts: episode.ts (one episode in memory: new events, the orchestrator
 * call, actions → events and work), retries.ts (retry bookkeeping), dispatch.ts (starting the work and
 * delivering its completions), history.ts (event types, completions, outstanding work), instance.ts
 * (in-memory instance state, instance id rules, errors), store.ts (history pages and records in storage).
 */
import { randomUUID } from 'crypto';
import { ActivityOverride, Dispatcher } from './dispatch';
import { runEpisode } from './episode';
import { completedIds, completionId, EventType, newEvent, outstandingWork } from './history';
import { Active, DurableError, EngineState, freshEngineState, functionOf, InboxItem, PARK_FLUSH_TIMER, validateInstanceId } from './instance';
import { Semaphore } from './semaphore';
import { DurableStore, HistoryEvent, InstanceMeta, RuntimeStatus, TERMINAL } from './store';

/**
 * How long a parked completion may stay unpersisted (see `park`): then an episode commits it even if the
 * orchestrator still does nothing with it. Bounds what a crash can lose to re-run activities of this long.
 */
export const PARK_MAX_MS = 100;


export interface EngineOptions {
  store: DurableStore;
  maxConcurrentActivities: number;
  maxConcurrentOrchestrations: number;
  /** Test-only activity handlers by activity name (local/testing.ts). */
  activityOverrides?: Readonly<Record<string, ActivityOverride>>;
  log?: (message: string) => void;
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
      ...(opts.activityOverrides ? { activityOverrides: opts.activityOverrides } : {}),
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
        parked: [],
        flush: false,
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
    const items = [...a.parked.splice(0), ...a.inbox.splice(0)];
    const flush = a.flush;
    a.flush = false;
    // Callers waiting for these items (raise, terminate) are answered once the episode is persisted; on a
    // failure the schedule() catch rejects them all, so no request is left hanging.
    const waiterCount = a.waiters.length;
    const answerWaiters = () => {
      for (const w of a.waiters.splice(0, waiterCount)) w.resolve();
    };
    const meta = a.meta;
    const engine = a.engine;
    const fromSeq = a.history.length;
    // What a no-op episode leaves unchanged (see park): only checked when nothing forces a commit.
    const before = flush || waiterCount > 0 || fromSeq === 0 || meta.status !== 'Running' || items.some((i) => i.kind !== 'event')
      ? undefined
      : { customStatus: meta.customStatus, engine: JSON.stringify(engine) };
    const { added, work, notifyParent, continueAsNew } = await runEpisode(a, items);
    if (before && !continueAsNew && this.park(a, items, added, work, before)) return;
    clearTimeout(a.timers.get(PARK_FLUSH_TIMER));
    a.timers.delete(PARK_FLUSH_TIMER);
    if (continueAsNew) {
      await this.continueAsNew(a, continueAsNew.input, continueAsNew.customStatus, fromSeq, added);
      answerWaiters();
      return;
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

  /**
   * An episode that only consumed completions — the orchestrator scheduled nothing, and its status, custom status
   * and the engine's bookkeeping are unchanged (it is still waiting for something else, e.g. the first of a newer
   * batch of tasks) — is not persisted: its completions are parked and handed to the next episode together with
   * whatever arrives then, as if they had arrived at that moment. Replay makes that equivalent (an orchestrator is a
   * function of its history), it saves a storage commit per such completion, and the history holds fewer episodes.
   * A crash loses parked completions like ones still in flight: the activities run again (they are idempotent). A
   * parked completion waits at most PARK_MAX_MS: then an episode commits it anyway.
   */
  private park(a: Active, items: InboxItem[], added: HistoryEvent[], work: unknown[], before: { customStatus?: string; engine: string }): boolean {
    const meta = a.meta;
    if (work.length > 0 || meta.status !== 'Running' || meta.customStatus !== before.customStatus) return false;
    const delivered = new Set<HistoryEvent>();
    for (const i of items) if (i.kind === 'event') delivered.add(i.event);
    // Nothing but the episode's start and end and the delivered events (no TaskScheduled, TimerCreated, …).
    for (const e of added) {
      if (e.EventType !== EventType.OrchestratorStarted && e.EventType !== EventType.OrchestratorCompleted && !delivered.has(e)) return false;
    }
    if (JSON.stringify(a.engine) !== before.engine) return false;
    const kept = new Set(added);
    for (const e of added) {
      const id = completionId(e);
      if (id !== undefined) a.completed.delete(id);
    }
    // Events the episode dropped (another execution's, a second result of a re-run task) stay dropped.
    a.parked = items.filter((i) => i.kind === 'event' && kept.has(i.event));
    if (a.parked.length > 0 && !a.timers.has(PARK_FLUSH_TIMER)) {
      a.timers.set(
        PARK_FLUSH_TIMER,
        setTimeout(() => {
          a.timers.delete(PARK_FLUSH_TIMER);
          if (this.stopped || this.active.get(meta.instanceId) !== a || a.parked.length === 0) return;
          a.flush = true;
          a.kick = true;
          this.schedule(a);
        }, PARK_MAX_MS),
      );
    }
    return true;
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
    a.parked = [];
    await this.opts.store.commit(meta, [], 0);
    a.published = { ...meta };
    // External events that arrived during the last episode carry over to the new execution.
    a.inbox = a.inbox.map((i) => (i.kind === 'event' && i.executionId === oldExecutionId && i.event.EventType === EventType.EventRaised ? { ...i, executionId: meta.executionId } : i));
    void this.opts.store.dropGenerationsBefore(meta.instanceId, meta.generation).catch((err) =>
      this.log(`could not delete generation ${oldGeneration} of ${meta.instanceId}: ${(err as Error).message}`),
    );
    a.kick = true;
  }
}
