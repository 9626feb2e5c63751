/**
 * History events of the local durable engine, as the durable-functions replay engine (schema V1) reads them:
 * event types, building new events, which task or timer an event completes, and the outstanding work a
 * persisted history still implies (what recovery re-arms after a crash). History payloads (inputs, results)
 * are JSON text.
 */
import type { Work } from './instance';
import { HistoryEvent } from './store';

export const EventType = {
  ExecutionStarted: 0,
  ExecutionCompleted: 1,
  ExecutionFailed: 2,
  ExecutionTerminated: 3,
  TaskScheduled: 4,
  TaskCompleted: 5,
  TaskFailed: 6,
  SubOrchestrationInstanceCreated: 7,
  SubOrchestrationInstanceCompleted: 8,
  SubOrchestrationInstanceFailed: 9,
  TimerCreated: 10,
  TimerFired: 11,
  OrchestratorStarted: 12,
  OrchestratorCompleted: 13,
  EventSent: 14,
  EventRaised: 15,
  ContinueAsNew: 16,
} as const;
export const EventTypeName: Record<number, string> = Object.fromEntries(Object.entries(EventType).map(([k, v]) => [v, k]));

export function newEvent(type: number, eventId: number, fields: Record<string, unknown> = {}): HistoryEvent {
  return { EventType: type, EventId: eventId, IsPlayed: false, Timestamp: new Date().toISOString(), ...fields };
}

export function parseJson(text: string | undefined): unknown {
  if (text === undefined || text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The task or timer id an event completes, if it completes one. */
export function completionId(e: HistoryEvent): number | undefined {
  switch (e.EventType) {
    case EventType.TaskCompleted:
    case EventType.TaskFailed:
    case EventType.SubOrchestrationInstanceCompleted:
    case EventType.SubOrchestrationInstanceFailed:
      return Number(e.TaskScheduledId);
    case EventType.TimerFired:
      return Number(e.TimerId);
    default:
      return undefined;
  }
}

export function completedIds(history: HistoryEvent[]): Set<number> {
  const ids = new Set<number>();
  for (const e of history) {
    const id = completionId(e);
    if (id !== undefined) ids.add(id);
  }
  return ids;
}

/** The activities, timers and sub-orchestrations a history scheduled and whose completion it does not hold (in history order). */
export function outstandingWork(history: HistoryEvent[], done: Set<number>): Work[] {
  const work: Work[] = [];
  for (const e of history) {
    if (done.has(e.EventId)) continue;
    if (e.EventType === EventType.TaskScheduled) work.push({ kind: 'activity', id: e.EventId, name: String(e.Name), input: String(e.Input ?? 'null') });
    if (e.EventType === EventType.TimerCreated) work.push({ kind: 'timer', id: e.EventId, fireAt: String(e.FireAt) });
    if (e.EventType === EventType.SubOrchestrationInstanceCreated) {
      work.push({ kind: 'sub', id: e.EventId, name: String(e.Name), input: String(e.Input ?? 'null'), childInstanceId: String(e.InstanceId) });
    }
  }
  return work;
}
