/**
 * Typed calls between orchestrators, activities and triggers. A workflow's contract file (shared/deploy/contract.ts,
 * shared/batch/contract.ts) names each activity and orchestration once, with its input and output types; the code
 * on both sides goes through these helpers, so a name is never spelled twice and a result is never cast:
 *
 *   const reg = yield* call(context, DEPLOY.registerModel, { ... }, retry);   // orchestrator: reg is typed
 *   registerActivity(DEPLOY.registerModel, async (input) => { ... });         // activity: input and output checked
 *
 * The helpers only forward to `context.df.callActivity` / `callActivityWithRetry` / `callSubOrchestrator` and
 * `df.app.activity` / `df.app.orchestration`: the actions an orchestrator emits (names, order, retry options) are
 * exactly what the direct calls emitted, so existing histories replay unchanged.
 */
import type { FunctionInput, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import type { DurableClient, OrchestrationContext, RetryOptions, Task } from 'durable-functions';

/** An activity: its registered name, and (types only) what it takes and returns. */
export interface ActivityDef<I, O> {
  readonly kind: 'activity';
  readonly name: string;
  /** Phantom: carries the input and output types; never set. */
  readonly io?: (input: I) => O;
}

/** An orchestration (started by a client or called as a sub-orchestration): its name, input and output types. */
export interface OrchestrationDef<I, O> {
  readonly kind: 'orchestration';
  readonly name: string;
  /** Phantom: carries the input and output types; never set. */
  readonly io?: (input: I) => O;
}

export const activity = <I, O>(name: string): ActivityDef<I, O> => ({ kind: 'activity', name });
export const orchestration = <I, O>(name: string): OrchestrationDef<I, O> => ({ kind: 'orchestration', name });

/**
 * Calls an activity and returns its output (`yield*` it in an orchestrator). With `retry`, the call is
 * `callActivityWithRetry`; without, a plain `callActivity` — as each call site had it (replay depends on it).
 * The generator's third type parameter states what the durable SDK sends back at the `yield`: the activity's output.
 */
export function* call<I, O>(context: OrchestrationContext, def: ActivityDef<I, O>, input: I, retry?: RetryOptions): Generator<Task, O, O> {
  return yield retry ? context.df.callActivityWithRetry(def.name, retry, input) : context.df.callActivity(def.name, input);
}

/** Calls a sub-orchestration with the given instance id and returns its output (`yield*` it). */
export function* callSub<I, O>(context: OrchestrationContext, def: OrchestrationDef<I, O>, input: I, instanceId?: string): Generator<Task, O, O> {
  return yield context.df.callSubOrchestrator(def.name, input, instanceId);
}

/** Schedules an activity without waiting (fan-out); `outputOf` reads the finished task's output. */
export function schedule<I, O>(context: OrchestrationContext, def: ActivityDef<I, O>, input: I): Task {
  return context.df.callActivity(def.name, input);
}

/**
 * The output of a completed task scheduled with `schedule(context, def, …)`. The durable SDK types every task
 * result as `unknown`; the contract says what `def` returns, so this is the one place that asserts it.
 */
export function outputOf<I, O>(_def: ActivityDef<I, O>, task: Task): O {
  return task.result as O;
}

/** The orchestration's input, typed by its contract. */
export function inputOf<I, O>(context: OrchestrationContext, _def: OrchestrationDef<I, O>): I {
  return context.df.getInput<I>();
}

/** The input and output types of an activity definition. */
export type InputOf<D> = D extends ActivityDef<infer I, unknown> ? I : never;
export type OutputOf<D> = D extends ActivityDef<never, infer O> ? O : never;

/** Registers an activity under its contract name; the handler's input and output are checked against the contract. */
export function registerActivity<D extends ActivityDef<never, unknown>>(
  def: D,
  handler: (input: InputOf<D>, context: InvocationContext) => Promise<OutputOf<D>>,
  options: { extraInputs?: FunctionInput[] } = {},
): void {
  df.app.activity(def.name, { ...options, handler });
}

/** Registers an orchestrator under its contract name; its return value is checked against the contract. */
export function registerOrchestration<I, O>(def: OrchestrationDef<I, O>, handler: (context: OrchestrationContext) => Generator<Task, O, any>): void {
  df.app.orchestration(def.name, handler);
}

/** The durable client of a function invocation (the function must list `df.input.durableClient()` in `extraInputs`). */
export function durableClient(context: InvocationContext): DurableClient {
  return df.getClient(context);
}
