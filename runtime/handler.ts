/**
 * One request against a loaded model or entry script, turned into a reply (status, content type, headers,
 * body): shared by the Node worker process (node-worker.ts) and the in-process ONNX scorer (in-process.ts),
 * so both answer the same bodies and error codes.
 */
import { RuntimeError } from './errors';
import { inferResponse, parseInferRequest, type OipOutput, type OipRequest } from './oip-tensor';
import { OnnxModel, settle, type ManyResult, type OnnxLoadOptions, type OutputFormat } from './onnx';
import type { RequestInput, WorkerReply } from './pool';
import type { ScriptSchema } from './protocol';
import { jsonSyntaxMessage } from './json-depth';

export interface Handler {
  rawHttp: boolean;
  schema: ScriptSchema | null;
  score(header: RequestInput, body: Buffer): Promise<unknown>;
  batch(miniBatch: unknown[]): Promise<unknown>;
  /**
   * Dynamic batching (ONNX models): several `/score` bodies at once, stacked into as few model runs as their
   * shapes allow; one result or error per body, in order.
   */
  scoreMany?(bodies: Buffer[], inputs?: RequestInput[]): Promise<ManyResult>;
  /** Whether `scoreMany` can stack requests of this model at all (else it runs them one by one). */
  batchable?(): boolean;
  close?(): Promise<void>;
}

export function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new RuntimeError('InvalidInput', `The request body is not valid JSON: ${jsonSyntaxMessage(e)}`, 400);
  }
}

export async function onnxHandler(file: string, options: OnnxLoadOptions = {}): Promise<Handler> {
  const model = await OnnxModel.load(file, options);
  const outputNames = new Set(model.outputs.map((o) => o.name));
  /** An OIP request, its requested outputs checked before the model runs. */
  const oipRequest = (body: Buffer): OipRequest => {
    const request = parseInferRequest(body);
    for (const o of request.outputs ?? []) {
      if (!outputNames.has(o.name)) throw new RuntimeError('InvalidInput', `Unknown output '${o.name.slice(0, 100)}'; the model's outputs are ${[...outputNames].join(', ')}`, 400);
    }
    return request;
  };
  const asOutputs = (value: Record<string, unknown>) => Object.values(value) as OipOutput[];
  return {
    rawHttp: false,
    schema: model.schema(),
    async score(h, body) {
      if (!h.oip) return model.run(parseJson(body));
      const request = oipRequest(body);
      return inferResponse(h.oip, request, asOutputs(await model.runFeeds(model.oipFeeds(request.inputs), 'oip')));
    },
    batch: (rows) => model.runBatch(rows),
    batchable: () => model.batchable,
    async scoreMany(bodies, inputs) {
      // `/score` bodies and OIP `/infer` requests are stacked together: both become feeds of the same tensors.
      const requests: Array<OipRequest | undefined> = [];
      const formats: OutputFormat[] = [];
      const feeds = bodies.map((b, i) => {
        const target = inputs?.[i]?.oip;
        formats.push(target ? 'oip' : 'json');
        return settle(() => {
          if (!target) return model.feeds(parseJson(b));
          const request = oipRequest(b);
          requests[i] = request;
          return model.oipFeeds(request.inputs);
        });
      });
      const many = await model.runFeedsMany(feeds, formats);
      many.results.forEach((r, i) => {
        const target = inputs?.[i]?.oip;
        if (target && r.error === undefined) many.results[i] = settle((): Record<string, unknown> => ({ ...inferResponse(target, requests[i]!, asOutputs(r.value!)) }));
      });
      return many;
    },
    close: () => model.close(),
  };
}

/** A raw script may answer `{ status, body, headers? }`; anything else is JSON. */
export function toReply(result: unknown, rawHttp: boolean): WorkerReply {
  if (rawHttp && result && typeof result === 'object' && !Buffer.isBuffer(result) && typeof (result as { status?: unknown }).status === 'number') {
    const r = result as { status: number; body?: unknown; headers?: Record<string, string> };
    const headers = { ...(r.headers ?? {}) };
    let contentType = '';
    for (const k of Object.keys(headers)) if (k.toLowerCase() === 'content-type') { contentType = headers[k]; delete headers[k]; }
    const body = r.body === undefined || r.body === null ? Buffer.alloc(0)
      : Buffer.isBuffer(r.body) ? r.body
      : r.body instanceof Uint8Array ? Buffer.from(r.body)
      : typeof r.body === 'string' ? Buffer.from(r.body, 'utf8')
      : Buffer.from(JSON.stringify(r.body), 'utf8');
    contentType ||= Buffer.isBuffer(r.body) || r.body instanceof Uint8Array ? 'application/octet-stream' : typeof r.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json';
    return { status: r.status, contentType, headers, body };
  }
  if (rawHttp && (Buffer.isBuffer(result) || result instanceof Uint8Array)) {
    return { status: 200, contentType: 'application/octet-stream', headers: {}, body: Buffer.from(result) };
  }
  return { status: 200, contentType: 'application/json', headers: {}, body: Buffer.from(JSON.stringify(result ?? null), 'utf8') };
}

export function errorReply(e: unknown, fallbackCode: string, debug: boolean): WorkerReply {
  const status = e instanceof RuntimeError ? e.httpStatus : 500;
  const code = e instanceof RuntimeError ? e.code : fallbackCode;
  const err = e as Error;
  const error: Record<string, string> = { code, message: e instanceof RuntimeError ? err.message : `${err?.name ?? 'Error'}: ${err?.message ?? String(e)}` };
  if (debug && err?.stack) error.stack = err.stack;
  return { status, contentType: 'application/json', headers: {}, body: Buffer.from(JSON.stringify({ error }), 'utf8') };
}

/** `/score` → `run(input)`; `/batch` → `run(mini_batch)` as `{results, count}`. Errors become replies too. */
export async function handleRequest(handler: Handler, header: RequestInput, body: Buffer, debug: boolean): Promise<WorkerReply> {
  try {
    if (header.kind === 'batch') {
      const payload = parseJson(body) as { mini_batch?: unknown };
      if (!payload || !Array.isArray(payload.mini_batch)) throw new RuntimeError('InvalidMiniBatch', 'Send {"mini_batch": [...]}: mini_batch must be a list', 400);
      let results = await handler.batch(payload.mini_batch);
      if (!Array.isArray(results)) results = [results];
      const list = results as unknown[];
      return { status: 200, contentType: 'application/json', headers: {}, body: Buffer.from(JSON.stringify({ results: list, count: list.length })) };
    }
    return toReply(await handler.score(header, body), handler.rawHttp);
  } catch (e) {
    return errorReply(e, 'RunFailed', debug);
  }
}

export interface RequestItem {
  input: RequestInput;
  body: Buffer;
}

export interface HandledMany {
  /** One reply per item, in order. */
  replies: WorkerReply[];
  /** Requests per model run made for `/score` items (see `ManyResult.runs`). */
  runs: number[];
  fallbacks: number;
}

/**
 * Several requests at once: `/score` items go through the handler's `scoreMany` (dynamic batching) when it has
 * one; anything else is handled one by one as by `handleRequest`. Replies are the same as one by one.
 */
export async function handleRequests(handler: Handler, items: RequestItem[], debug: boolean): Promise<HandledMany> {
  const replies = new Array<WorkerReply>(items.length);
  const score = handler.scoreMany ? items.flatMap((it, i) => (it.input.kind === 'score' && !it.input.warmup ? [i] : [])) : [];
  let runs: number[] = [];
  let fallbacks = 0;
  if (score.length) {
    try {
      const many = await handler.scoreMany!(score.map((i) => items[i].body), score.map((i) => items[i].input));
      score.forEach((i, k) => {
        const r = many.results[k];
        replies[i] = r.error === undefined ? toReply(r.value, handler.rawHttp) : errorReply(r.error, 'RunFailed', debug);
      });
      ({ runs, fallbacks } = many);
    } catch {
      // scoreMany settles each request itself; should it throw anyway, each request runs on its own below.
      fallbacks++;
    }
  }
  for (let i = 0; i < items.length; i++) {
    if (replies[i]) continue;
    replies[i] = await handleRequest(handler, items[i].input, items[i].body, debug);
    if (items[i].input.kind === 'score' && !items[i].input.warmup) runs.push(1);
  }
  return { replies, runs, fallbacks };
}
