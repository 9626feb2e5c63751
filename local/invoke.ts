/**
 * Invoking a registered function the way the Node worker does: build the RPC invocation request,
 * let the app's programming model (`@azure/functions`) turn it into handler arguments, call the
 * handler, and convert the result back into RPC output data.
 */
import { randomUUID } from 'crypto';
import { coreState, RegisteredFunction, RpcInvocationResponse, RpcTypedData } from './functionsCore';

export interface InvocationInput {
  /** Data for the trigger binding. */
  trigger: RpcTypedData | undefined;
  /** Data for extra input bindings, by binding type; the host's `bindingData` provides the rest (e.g. `durableClient`). */
  extraInputsByType?: Record<string, RpcTypedData>;
  triggerMetadata?: Record<string, RpcTypedData>;
  retryContext?: { retryCount: number; maxRetryCount: number };
  invocationId?: string;
}

export interface InvocationResult {
  invocationId: string;
  response?: RpcInvocationResponse;
  /** What the handler returned (after the post-invocation hooks); with HTTP streaming the response itself went over the proxy. */
  returned?: unknown;
  /** Set when the handler threw. */
  error?: Error;
}

/** JSON value → RPC typed data, as the host sends JSON payloads. */
export function jsonData(value: unknown): RpcTypedData | undefined {
  return value === undefined ? undefined : { json: JSON.stringify(value) };
}

export function stringData(value: string): RpcTypedData {
  return { string: value };
}

/** RPC typed data → JSON value (what a handler returned). */
export function fromTypedData(data: RpcTypedData | null | undefined): unknown {
  if (!data) return undefined;
  if (data.json != null) return JSON.parse(data.json);
  if (data.string != null) {
    try {
      return JSON.parse(data.string);
    } catch {
      return data.string;
    }
  }
  if (data.bytes != null) return Buffer.from(data.bytes);
  if (data.int != null) return data.int;
  if (data.double != null) return data.double;
  return undefined;
}

export async function invokeFunction(fn: RegisteredFunction, input: InvocationInput): Promise<InvocationResult> {
  const state = coreState();
  const invocationId = input.invocationId ?? randomUUID();
  const inputData: { name: string; data?: RpcTypedData }[] = [];
  if (input.trigger !== undefined) inputData.push({ name: fn.triggerName, data: input.trigger });
  for (const [name, binding] of Object.entries(fn.metadata.bindings)) {
    if (binding.direction !== 'in' || name === fn.triggerName) continue;
    const data = input.extraInputsByType?.[String(binding.type)] ?? state.bindingData?.(String(binding.type));
    if (data) inputData.push({ name, data });
  }
  let coreCtxState: string | undefined = 'invocation';
  const coreCtx = {
    invocationId,
    request: {
      invocationId,
      functionId: fn.metadata.name,
      inputData,
      triggerMetadata: input.triggerMetadata ?? {},
      retryContext: input.retryContext
        ? { retryCount: input.retryContext.retryCount, maxRetryCount: input.retryContext.maxRetryCount }
        : undefined,
    },
    metadata: fn.metadata,
    get state() {
      return coreCtxState;
    },
    log: (level: string, category: string, message: string) =>
      state.logSink(level, category, `${fn.metadata.name} (${invocationId.slice(0, 8)}): ${message}`),
  };
  const model = state.api.getProgrammingModel().getInvocationModel(coreCtx);
  try {
    const { context, inputs } = await model.getArguments();
    let handler = fn.callback;
    for (const hook of state.hooks.preInvocation) {
      const hookCtx: Record<string, unknown> = { invocationContext: context, functionHandler: handler, inputs, hookData: {} };
      await hook(hookCtx);
      handler = hookCtx.functionHandler as typeof handler;
    }
    let result: unknown;
    let error: unknown;
    try {
      result = await model.invokeFunction(context, inputs, handler);
    } catch (err) {
      error = err;
    }
    coreCtxState = 'postInvocationHooks';
    for (const hook of state.hooks.postInvocation) {
      const hookCtx: Record<string, unknown> = { invocationContext: context, inputs, result, error, hookData: {} };
      await hook(hookCtx);
      result = hookCtx.result;
      error = hookCtx.error;
    }
    coreCtxState = undefined;
    if (error !== undefined) return { invocationId, error: toError(error) };
    const response = await model.getResponse(context, result);
    return { invocationId, response, returned: result };
  } catch (err) {
    return { invocationId, error: toError(err) };
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(typeof err === 'string' ? err : JSON.stringify(err));
}
