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
 *
 * Errors (one mapping, in `registerActivity`):
 * - an activity declared with `resultActivity` returns an `ActivityResult`: a failure the user must fix (not
 *   `isRetryable`) comes back as data, `{ ok: false, error: { code, message } }`; the orchestrator decides;
 * - anything retryable (and every failure of a plain `activity`) is thrown as an `ActivityFailure`, so the durable
 *   retry options apply. Its `{ code, message }` travel as data in the task's failure details (the SDK's exception
 *   properties: `df.app.setExceptionPropertiesProvider`, registered below); `failureOf` reads them in the
 *   orchestrator. A host that does not pass the properties on gives the reason text under a fallback code.
 */
import type { FunctionInput, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import type { DurableClient, OrchestrationContext, RetryOptions, Task } from 'durable-functions';
import { isRetryable, redactSecrets, toErrorInfo } from './errors';
import { runIdOfActivityInput, withStepSpan, type StepOutcome } from './telemetry';
import type { ErrorInfo } from './seams';

/** What an activity declared with `resultActivity` returns: its value, or a failure the user must fix, as data. */
export type ActivityResult<T, D = never> = { ok: true; value: T } | { ok: false; error: ErrorInfo; detail?: D };

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

/** An activity that reports the user's mistakes as data: its handler returns `T`, callers get `ActivityResult<T, D>`. */
export interface ResultActivityDef<I, T, D = never> extends ActivityDef<I, ActivityResult<T, D>> {
  readonly reports: 'result';
  /** Phantom: the handler's own output type. */
  readonly value?: T;
}
export const resultActivity = <I, T, D = never>(name: string): ResultActivityDef<I, T, D> => ({ kind: 'activity', name, reports: 'result' });

/**
 * A retryable failure as an activity throws it: the `{ code, message }` (secrets removed) ride in the task's failure
 * details. Tests that answer activities themselves throw it the same way.
 */
export class ActivityFailure extends Error {
  readonly code: string;
  constructor(info: ErrorInfo) {
    super(redactSecrets(info.message));
    this.name = 'ActivityFailure';
    this.code = info.code;
  }
  static of(e: unknown): ActivityFailure {
    return e instanceof ActivityFailure ? e : new ActivityFailure(toErrorInfo(e));
  }
}

/**
 * A failure the user must fix, with something to show for it (`detail`: e.g. the image record of a failed build):
 * thrown by a `resultActivity` handler, it comes back as `{ ok: false, error, detail }`.
 */
export class Refusal<D> extends Error {
  constructor(
    readonly error: ErrorInfo,
    readonly detail?: D,
  ) {
    super(error.message);
    this.name = 'Refusal';
  }
}

// The failure details of a thrown `ActivityFailure` carry its code and message as properties. Structural check (not
// `instanceof`): the test host and the app may load this module twice.
df.app.setExceptionPropertiesProvider({
  getExceptionProperties(error: unknown) {
    if (!(error instanceof Error) || error.name !== 'ActivityFailure') return undefined;
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? { code, message: error.message } : undefined;
  },
});

/**
 * `{ code, message }` of a failed task, for orchestrators (pure). From the failure details' properties when the
 * host passed them (an `ActivityFailure`); otherwise `fallbackCode` with the failure's reason text (the part before
 * the host's " \n " details, no stack frames), secrets removed, length capped.
 */
export function failureOf(err: unknown, fallbackCode: string): ErrorInfo {
  const details = (err as { failureDetails?: { errorMessage?: unknown; properties?: Record<string, unknown> } } | undefined)?.failureDetails;
  const props = details?.properties;
  if (props && typeof props.code === 'string' && typeof props.message === 'string') {
    return { code: props.code, message: redactSecrets(props.message).slice(0, 1000) };
  }
  let text = typeof details?.errorMessage === 'string' ? details.errorMessage : err instanceof Error ? err.message : String(err);
  const cut = text.indexOf(' \n ');
  if (cut >= 0) text = text.slice(0, cut);
  const unlifted = sdkFailurePayload(text);
  if (unlifted) return failureOf({ failureDetails: unlifted }, fallbackCode);
  text = text
    .split('\n')
    .filter((line) => !/^\s*at\s+\S/.test(line))
    .join('\n')
    .trim();
  return { code: fallbackCode, message: redactSecrets(text || 'The run failed.').slice(0, 1000) };
}

/**
 * The SDK's serialized failure (`{"errorType", "errorMessage", "properties", …}`, see `df.app.activity`) when a host
 * passed it on as the reason text instead of lifting it into the failure details: read as the host would have.
 */
function sdkFailurePayload(text: string): { errorMessage: string; properties?: Record<string, unknown> } | undefined {
  const at = text.indexOf('{"errorType"');
  if (at < 0) return undefined;
  try {
    const p: unknown = JSON.parse(text.slice(at));
    if (!p || typeof p !== 'object' || typeof (p as { errorMessage?: unknown }).errorMessage !== 'string') return undefined;
    const { errorMessage, properties } = p as { errorMessage: string; properties?: unknown };
    return { errorMessage, ...(properties && typeof properties === 'object' ? { properties: properties as Record<string, unknown> } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * A recorded `ActivityResult`. Deploy activities recorded flat results before they shared this shape
 * (`{ ok: true, ...fields }`, `{ ok: false, error, ...fields }`); histories of runs started then replay through here.
 */
export function resultOf<R extends object>(raw: R): R {
  const r: Record<string, unknown> = Object.fromEntries(Object.entries(raw));
  if (r.ok === true && !('value' in r)) return { ok: true, value: withoutKeys(r, 'ok') } as R;
  if (r.ok === false && !('detail' in r)) {
    const rest = withoutKeys(r, 'ok', 'error');
    return (Object.keys(rest).length ? { ok: false, error: r.error, detail: rest } : { ok: false, error: r.error }) as R;
  }
  return raw;
}

function withoutKeys(r: Record<string, unknown>, ...omit: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(r).filter(([k]) => !omit.includes(k)));
}
export const orchestration = <I, O>(name: string): OrchestrationDef<I, O> => ({ kind: 'orchestration', name });

/**
 * Calls an activity and returns its output (`yield*` it in an orchestrator). With `retry`, the call is
 * `callActivityWithRetry`; without, a plain `callActivity` — as each call site had it (replay depends on it).
 * The generator's third type parameter states what the durable SDK sends back at the `yield`: the activity's output.
 */
export function* call<I, O>(context: OrchestrationContext, def: ActivityDef<I, O>, input: I, retry?: RetryOptions): Generator<Task, O, O> {
  const out: O = yield retry ? context.df.callActivityWithRetry(def.name, retry, input) : context.df.callActivity(def.name, input);
  return isResultDef(def) && out && typeof out === 'object' ? resultOf(out) : out;
}

function isResultDef(def: object): boolean {
  return 'reports' in def && def.reports === 'result';
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

/** What a handler returns: a `resultActivity`'s value, or a plain activity's output. */
export type HandlerOutputOf<D> = D extends ResultActivityDef<never, infer T, unknown> ? T : OutputOf<D>;

/**
 * Registers an activity under its contract name; the handler's input and output are checked against the contract.
 * The one place errors are mapped (see the top of this file): for a `resultActivity`, a `Refusal` or an error that is
 * not `isRetryable` comes back as `{ ok: false, error }`; everything else is thrown as an `ActivityFailure`.
 */
export function registerActivity<D extends ActivityDef<never, unknown>>(
  def: D,
  handler: (input: InputOf<D>, context: InvocationContext) => Promise<HandlerOutputOf<D>>,
  options: { extraInputs?: FunctionInput[] } = {},
): void {
  const results = isResultDef(def);
  df.app.activity(def.name, {
    ...options,
    handler: (input: InputOf<D>, context: InvocationContext) =>
      withStepSpan(
        def.name,
        runIdOfActivityInput(input, runIdOfSource),
        async () => {
          try {
            const value = await handler(input, context);
            return results ? { ok: true, value } : value;
          } catch (e) {
            if (results && e instanceof Refusal) return { ok: false, error: { code: e.error.code, message: redactSecrets(e.error.message) }, ...(e.detail !== undefined ? { detail: e.detail } : {}) };
            if (results && !isRetryable(e)) return { ok: false, error: toErrorInfo(e) };
            throw ActivityFailure.of(e);
          }
        },
        (value) => stepOutcome(value, results),
        (e) => (e instanceof ActivityFailure ? e.code : toErrorInfo(e).code),
      ),
  });
}

/** A step span's outcome: `{ ok: false }` is a refusal of a result activity, or a failure another activity reports as data (a smoke test). */
function stepOutcome(value: unknown, results: boolean): StepOutcome {
  if (!value || typeof value !== 'object' || (value as { ok?: unknown }).ok !== false) return { outcome: 'Succeeded' };
  const v = value as { code?: unknown; error?: { code?: unknown } };
  const code = typeof v.error?.code === 'string' ? v.error.code : typeof v.code === 'string' ? v.code : undefined;
  return { outcome: results ? 'Refused' : 'Failed', ...(code ? { code } : {}) };
}

/** The deployment run started by an event (registerModel's input names the event, not the run). Loaded late: run-status imports the contracts, which import this file. */
function runIdOfSource(source: { kind: string; eventId: string }): string {
  if (source.kind === 'http') return source.eventId;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { runIdFor } = require('./deploy/run-status') as typeof import('./deploy/run-status');
  return runIdFor(source.kind as Parameters<typeof runIdFor>[0], source.eventId);
}

/** Registers an orchestrator under its contract name; its return value is checked against the contract. */
export function registerOrchestration<I, O>(def: OrchestrationDef<I, O>, handler: (context: OrchestrationContext) => Generator<Task, O, any>): void {
  df.app.orchestration(def.name, handler);
}

/** The durable client of a function invocation (the function must list `df.input.durableClient()` in `extraInputs`). */
export function durableClient(context: InvocationContext): DurableClient {
  return df.getClient(context);
}
