/**
 * An orchestration instance as the local durable engine holds it in memory, and the vocabulary its parts
 * share: the engine bookkeeping persisted with the instance record, inbox items, outstanding work, the
 * instance id rules and errors of the Durable HTTP API, and the lookup of the app's registered functions.
 */
import { coreState, RegisteredFunction } from '../functionsCore';
import type { RetryState } from './retries';
import { HistoryEvent, InstanceMeta } from './store';

export interface EngineState {
  nextId: number;
  actionsProcessed: number;
  /** Retry bookkeeping by the id of the attempt in flight. */
  retries: Record<string, RetryState>;
  /** Retry back-off timers by timer id. */
  retryTimers: Record<string, RetryState>;
}

export function freshEngineState(): EngineState {
  return { nextId: 0, actionsProcessed: 0, retries: {}, retryTimers: {} };
}

export type InboxItem =
  | { kind: 'event'; executionId: string; event: HistoryEvent }
  | { kind: 'terminate'; reason: string };

export interface Active {
  /** Working copy: an episode changes it before its commit. */
  meta: InstanceMeta;
  /** What storage holds (updated after each commit): what status queries see, so they never run ahead of it. */
  published: InstanceMeta;
  engine: EngineState;
  history: HistoryEvent[];
  inbox: InboxItem[];
  /**
   * Completions an episode consumed without the orchestrator doing anything with them (no new action, no status
   * change): not persisted, handed to the next episode with what arrives then (engine.ts, `park`).
   */
  parked: InboxItem[];
  /** The next episode commits even if it changes nothing (a parked completion has waited long enough). */
  flush: boolean;
  waiters: { resolve: () => void; reject: (e: Error) => void }[];
  running: boolean;
  queued: boolean;
  /** Run an episode even with an empty inbox (new generation after continue-as-new). */
  kick: boolean;
  /** Task/timer ids whose completion is in the history (a re-run activity's second result is dropped). */
  completed: Set<number>;
  /** Durable timers by timer id; and the engine's own `PARK_FLUSH_TIMER`. */
  timers: Map<number, NodeJS.Timeout>;
}

/** Key of the parked-completions flush in `Active.timers` (task and timer ids are ≥ 0). */
export const PARK_FLUSH_TIMER = -1;

export type Work =
  | { kind: 'activity'; id: number; name: string; input: string }
  | { kind: 'timer'; id: number; fireAt: string }
  | { kind: 'sub'; id: number; name: string; input: string; childInstanceId: string }
  | { kind: 'fail'; id: number; sub: boolean; message: string };

export class DurableError extends Error {
  constructor(
    public readonly status: number,
    public readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Instance id rules of the Durable Functions HTTP API (also Azure Table partition key rules). */
export function validateInstanceId(id: string): void {
  if (id.length < 1 || id.length > 256) throw new DurableError(400, 'InvalidInstanceId', 'Instance ids must be 1 to 256 characters long.');
  if (/[/\\#?]/.test(id)) throw new DurableError(400, 'InvalidInstanceId', `Instance id '${id}' contains one of the characters / \\ # ?, which are not allowed.`);
  if (id.startsWith('@')) throw new DurableError(400, 'InvalidInstanceId', `Instance id '${id}' must not start with '@' (reserved for entities).`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(id)) throw new DurableError(400, 'InvalidInstanceId', 'Instance ids must not contain control characters.');
}

export function childId(meta: InstanceMeta, taskId: number): string {
  // As DTFx names sub-orchestrations started without an id: the parent's execution id and the task id.
  return `${meta.executionId}:${taskId}`;
}

export function functionOf(name: string, type: 'orchestrationTrigger' | 'activityTrigger'): RegisteredFunction | undefined {
  const fn = coreState().functions.get(name);
  if (fn && String(fn.trigger.type) === type) return fn;
  // Function names are case-insensitive in Azure Functions.
  for (const f of coreState().functions.values()) {
    if (f.metadata.name.toLowerCase() === name.toLowerCase() && String(f.trigger.type) === type) return f;
  }
  return undefined;
}
