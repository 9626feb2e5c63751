/**
 * Open Inference Protocol (V2, REST) beside `/score`, on the same port, limits and keys (see runtime/README.md,
 * "Open Inference Protocol"): `GET /v2`, `/v2/health/live`, `/v2/health/ready`,
 * `GET /v2/models/{name}[/versions/{v}]` (metadata), `.../ready`, `POST .../infer`.
 *
 * - ONNX models: the OIP request goes to the model as it is (onnx.ts builds native tensors from it, dynamic
 *   batching stacks `/infer` and `/score` requests alike) and the answer comes back as OIP JSON.
 * - Entry scripts (score.py, score.js): the request's named inputs become the `run()` input (one property per
 *   input, nested along its shape; see `scriptRunInput`), `run()`'s result becomes output tensors
 *   (`scriptOutputs`); a result that is no tensor is a 500.
 * - Readiness: the model is loaded AND has answered once: a warm-up run at start with the schema's sample (ONNX:
 *   a zero tensor of the declared shape, dynamic dimensions 1), or any request answered since (status < 500).
 * Errors are the protocol's `{"error": "<message>"}` with the runtime's status codes.
 */
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';
import { RuntimeError, toErrorInfo } from './errors';
import { dropBody } from './http-limits';
import { jsonNestingDepth, jsonSyntaxMessage } from './json-depth';
import { packageRoot, type RuntimeKind } from './launch';
import {
  elementCount,
  forEachElement,
  inferResponse,
  invalid,
  MAX_OIP_DEPTH,
  nest,
  parseInferRequest,
  shown,
  type OipDatatype,
  type OipOutput,
  type OipRequest,
  type OipTarget,
  type OipTensorMeta,
} from './oip-tensor';
import type { ServerOptions } from './options';
import type { RequestInput, Scorer, WorkerReply } from './pool';
import type { JsonSchema, ScriptSchema } from './protocol';

/** An input of an entry script, as its schema sample declares it. */
export interface ScriptInputMeta extends OipTensorMeta {
  /** The sample is a single value: the tensor's one element is passed, not a list. */
  scalar: boolean;
}

/** What an entry script's schema samples say about its tensors. */
export interface ScriptSignature {
  inputs: ScriptInputMeta[];
  outputs: OipTensorMeta[];
  /** Inputs the script requires (its input schema's `required`). */
  required: string[];
  /**
   * Whether `run()` takes an object of named inputs (the sample is an object: `{name: tensor}`), or the one input
   * itself (a non-object sample: a list or a value; Node scripts with such an `inputSample`).
   */
  named: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Dimensions of a nested list, along its first elements, and its first leaf. */
function probe(value: unknown): { dims: number[]; leaf: unknown } {
  const dims: number[] = [];
  let v = value;
  while (Array.isArray(v)) {
    dims.push(v.length);
    v = v[0];
  }
  return { dims, leaf: v };
}

/** The datatype a JSON leaf maps to (`format` of the schema refines numbers). */
function datatypeOfLeaf(leaf: unknown, schema?: JsonSchema): OipDatatype {
  let s: JsonSchema | undefined = schema;
  while (s && s.type === 'array' && isObject(s.items)) s = s.items as JsonSchema;
  const type = leaf === undefined ? s?.type : typeof leaf === 'boolean' ? 'boolean' : typeof leaf === 'string' ? 'string'
    : typeof leaf === 'number' ? (Number.isInteger(leaf) && s?.type !== 'number' ? 'integer' : 'number') : s?.type;
  if (type === 'boolean') return 'BOOL';
  if (type === 'string') return 'BYTES';
  if (type === 'integer') return s?.format === 'int32' ? 'INT32' : 'INT64';
  return s?.format === 'float' ? 'FP32' : 'FP64';
}

function metaOfSample(name: string, sample: unknown, schema?: JsonSchema): ScriptInputMeta {
  const { dims, leaf } = probe(sample);
  return {
    name,
    datatype: datatypeOfLeaf(leaf, schema),
    // The sample shows one example: its first dimension (rows) is variable.
    shape: dims.length ? [-1, ...dims.slice(1)] : [1],
    scalar: dims.length === 0,
  };
}

/** The tensors of an entry script, from its input/output schema samples (none without a schema). */
export function scriptSignature(schema: ScriptSchema | null): ScriptSignature {
  const sig: ScriptSignature = { inputs: [], outputs: [], required: [], named: true };
  const input = schema?.input;
  if (input) {
    const props = isObject(input.properties) ? (input.properties as Record<string, JsonSchema>) : undefined;
    const example = input.example;
    if (props) {
      for (const [name, s] of Object.entries(props)) sig.inputs.push(metaOfSample(name, isObject(example) ? example[name] : undefined, s));
      sig.required = Array.isArray(input.required) ? (input.required as string[]) : Object.keys(props);
    } else if (example !== undefined) {
      sig.inputs.push(metaOfSample('input', example, input));
      sig.required = ['input'];
      sig.named = false;
    }
  }
  const output = schema?.output;
  if (output) {
    const example = output.example;
    if (isObject(example)) {
      const props = isObject(output.properties) ? (output.properties as Record<string, JsonSchema>) : {};
      for (const [name, v] of Object.entries(example)) {
        const { scalar: _s, ...meta } = metaOfSample(name, v, props[name]);
        sig.outputs.push(meta);
      }
    } else if (example !== undefined) {
      const { scalar: _s, ...meta } = metaOfSample('output0', example, output);
      sig.outputs.push(meta);
    }
  }
  return sig;
}

/**
 * The `run()` input of an OIP request for an entry script: `{"<input name>": <data nested along its shape>, ...}`
 * (a scalar input — its sample is a single value — gets its one element; a script whose sample is not an object
 * gets the one input's nested data itself). Inputs the schema does not declare → 400, required ones missing → 400.
 */
export function scriptRunInput(request: OipRequest, sig: ScriptSignature): unknown {
  const declared = new Map(sig.inputs.map((i) => [i.name, i]));
  const out: Record<string, unknown> = {};
  for (const input of request.inputs) {
    const meta = declared.get(input.name);
    if (sig.inputs.length && !meta) {
      throw invalid(`Unknown input '${shown(input.name)}'; the script's inputs are ${[...declared.keys()].join(', ')}`);
    }
    const flat = new Array<unknown>(elementCount(input.shape));
    forEachElement(input, (i, x) => { flat[i] = x; });
    if (meta?.scalar) {
      if (flat.length !== 1) throw invalid(`Input '${input.name}' is a single value; send shape [1] with one element`);
      out[input.name] = flat[0];
    } else out[input.name] = nest(flat, input.shape);
  }
  const missing = sig.required.filter((n) => !Object.hasOwn(out, n));
  if (missing.length) throw invalid(`Missing input(s): ${missing.join(', ')}`);
  if (!sig.named) {
    if (request.inputs.length !== 1) throw invalid(`The script takes one input ('${sig.inputs[0].name}'); got ${request.inputs.length}`);
    return out[request.inputs[0].name];
  }
  return out;
}

const notTensor = (why: string) => new RuntimeError('OutputNotTensor', `run() returned a result that is not a tensor: ${why}; return a list (nested lists of one type) or an object of such lists`, 500);

/** A JSON value → an OIP output tensor (rectangular, one element type), or a 500 naming what is wrong. */
export function outputTensor(name: string, value: unknown, declared?: OipDatatype): OipOutput {
  const { dims } = probe(value);
  const flat: unknown[] = [];
  const last = dims.length - 1;
  const walk = (v: unknown, depth: number): void => {
    if (!Array.isArray(v) || v.length !== dims[depth]) throw notTensor(`output '${name}' is not a rectangular list`);
    for (const x of v) {
      if (depth === last) {
        if (Array.isArray(x)) throw notTensor(`output '${name}' is not a rectangular list`);
        flat.push(x);
      } else walk(x, depth + 1);
    }
  };
  if (dims.length === 0) flat.push(value);
  else walk(value, 0);
  let kind: 'boolean' | 'string' | 'number' | undefined;
  let integers = true;
  for (const x of flat) {
    const k = typeof x;
    if (k !== 'boolean' && k !== 'string' && k !== 'number') throw notTensor(`output '${name}' holds ${x === null ? 'null' : k === 'object' ? 'an object' : k}`);
    if (kind && kind !== k) throw notTensor(`output '${name}' mixes ${kind}s and ${k}s`);
    kind = k as typeof kind;
    if (k === 'number' && !Number.isInteger(x)) integers = false;
  }
  const inferred: OipDatatype = kind === 'boolean' ? 'BOOL' : kind === 'string' ? 'BYTES' : kind === 'number' ? (integers ? 'INT64' : 'FP64') : (declared ?? 'FP64');
  // A declared datatype (from the output sample) wins when the values fit it.
  const fits = declared && (declared === inferred || (kind === 'number' && declared.startsWith('FP')) || (kind === 'number' && integers && /INT/.test(declared)));
  return { name, datatype: fits ? declared : inferred, shape: dims.length ? dims : [1], data: flat };
}

/** `run()`'s result → output tensors: an object gives one output per property, anything else one output. */
export function scriptOutputs(result: unknown, sig: ScriptSignature): OipOutput[] {
  const declared = new Map(sig.outputs.map((o) => [o.name, o.datatype]));
  if (isObject(result)) return Object.entries(result).map(([name, v]) => outputTensor(name, v, declared.get(name)));
  const name = sig.outputs.length === 1 ? sig.outputs[0].name : 'output0';
  return [outputTensor(name, result, declared.get(name))];
}

/** The body of an error reply as the protocol's `{"error": "<message>"}`. */
function oipErrorBody(reply: WorkerReply): string {
  const text = reply.body.toString('utf8');
  try {
    const v = JSON.parse(text) as { error?: { message?: unknown; code?: unknown } };
    if (v && isObject(v.error) && typeof v.error.message === 'string') return JSON.stringify({ error: v.error.message });
  } catch {
    /* not the runtime's error JSON */
  }
  return JSON.stringify({ error: text.slice(0, 2000) || `run() answered ${reply.status}` });
}

let serverVersion: string | undefined;
function serverVersionOf(): string {
  if (serverVersion === undefined) {
    try {
      serverVersion = String((JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown }).version ?? '0');
    } catch {
      serverVersion = '0';
    }
  }
  return serverVersion;
}

export interface OipServiceOptions {
  pool: Scorer;
  kind: RuntimeKind;
  options: ServerOptions;
  authorized: (header: string | undefined) => boolean | Promise<boolean>;
  readBody: (req: http.IncomingMessage, limit: number) => Promise<Buffer>;
  /** Counts a request in run() (the runtime's `scoring_inflight_requests`). */
  inflight: (delta: number) => void;
  log?: (record: Record<string, unknown> & { event: string }) => void;
}

/** The served model's name: `--model-name`, else `--service-name`. */
export const oipModelName = (o: Pick<ServerOptions, 'modelName' | 'serviceName'>): string => o.modelName ?? o.serviceName;

/** A `/v2` path, parsed (percent-decoded per segment) the one way both the runtime and a front in front of it read it. */
export type OipPath =
  | { route: 'server' | 'live' | 'ready' }
  | { route: 'model'; name: string; version?: string; action: 'metadata' | 'ready' | 'infer' }
  | { route: 'unknown' }
  | { route: 'bad' };

export function parseOipPath(p: string): OipPath {
  if (p === '/v2') return { route: 'server' };
  if (p === '/v2/health/live') return { route: 'live' };
  if (p === '/v2/health/ready') return { route: 'ready' };
  const prefix = '/v2/models/';
  if (!p.startsWith(prefix)) return { route: 'unknown' };
  let parts: string[];
  try {
    parts = p.slice(prefix.length).split('/').map((x) => decodeURIComponent(x));
  } catch {
    return { route: 'bad' };
  }
  const name = parts[0];
  let rest = parts.slice(1);
  let version: string | undefined;
  if (rest[0] === 'versions' && rest.length >= 2) {
    version = rest[1];
    rest = rest.slice(2);
  }
  const action = rest.length === 0 ? 'metadata' : rest.length === 1 && (rest[0] === 'ready' || rest[0] === 'infer') ? rest[0] : undefined;
  if (!action) return { route: 'unknown' };
  return { route: 'model', name, ...(version !== undefined ? { version } : {}), action };
}

/**
 * Paths of the protocol answered without a key (health, metadata, model readiness), like `GET /` and
 * `/swagger.json`; `/infer` needs the key. `p` must be the normalised path (a front checks the path it forwards).
 */
export function isOpenOipPath(p: string): boolean {
  const parsed = parseOipPath(p);
  return parsed.route === 'server' || parsed.route === 'live' || parsed.route === 'ready' || (parsed.route === 'model' && parsed.action !== 'infer');
}

export class OipService {
  private answered = false;
  private warmed?: Promise<void>;

  constructor(private readonly o: OipServiceOptions) {}

  get modelName(): string {
    return oipModelName(this.o.options);
  }

  /** Any answer of the model under 500 (a `/score` or `/infer` request, the warm-up) means it answered once. */
  noteAnswer(status: number): void {
    if (status < 500) this.answered = true;
  }

  /** A warm-up sample: the schema's input example (ONNX: zeros of the declared shape, dynamic dimensions 1). */
  private sample(): unknown {
    return this.o.pool.schema?.input?.example;
  }

  get ready(): boolean {
    // With no sample there is nothing to warm up with: init() succeeding is the model loaded.
    return this.o.pool.phase === 'ready' && (this.answered || this.sample() === undefined);
  }

  get notReadyReason(): string {
    if (this.o.pool.phase !== 'ready') return this.o.pool.unavailableReason;
    return 'The model is loaded but has not answered yet (warm-up under way or failed)';
  }

  /** Runs the warm-up once the model is loaded (no-op without a sample or in batch mode); never rejects. */
  warmUp(): Promise<void> {
    this.warmed ??= (async () => {
      if (this.o.pool.phase !== 'ready' || this.o.options.mode === 'batch') return;
      const sample = this.sample();
      if (sample === undefined) return;
      const input: RequestInput = { kind: 'score', method: 'POST', path: '/score', query: '', headers: { 'content-type': 'application/json' }, warmup: true };
      try {
        const reply = await this.o.pool.run(input, Buffer.from(JSON.stringify(sample), 'utf8'));
        this.noteAnswer(reply.status);
        this.o.log?.({ event: 'warmup', time: new Date().toISOString(), status: reply.status });
      } catch (e) {
        this.o.log?.({ event: 'warmup', time: new Date().toISOString(), status: 0, message: toErrorInfo(e).message });
      }
    })();
    return this.warmed;
  }

  private metadata(): Record<string, unknown> {
    const { kind, pool, options } = this.o;
    let inputs: OipTensorMeta[];
    let outputs: OipTensorMeta[];
    const oip = pool.schema?.oip;
    if (oip) ({ inputs, outputs } = oip);
    else {
      const sig = scriptSignature(pool.schema);
      inputs = sig.inputs.map(({ scalar: _s, ...m }) => m);
      outputs = sig.outputs;
    }
    return {
      name: this.modelName,
      ...(options.modelVersion !== undefined ? { versions: [options.modelVersion] } : {}),
      platform: kind === 'onnx' ? 'onnx_onnxv1' : `${kind}_script`,
      inputs,
      outputs,
    };
  }

  /** Answers a `/v2` path (every outcome, errors included, as the protocol's JSON). */
  async handle(req: http.IncomingMessage, res: http.ServerResponse, p: string): Promise<void> {
    try {
      await this.route(req, res, p);
    } catch (e) {
      const status = e instanceof RuntimeError ? e.httpStatus : 500;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      send(res, status, { error: toErrorInfo(e).message }, status === 503 ? { 'retry-after': '1' } : {});
      if (status === 413) dropBody(req);
    }
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse, p: string): Promise<void> {
    const method = req.method ?? 'GET';
    const get = (answer: () => void) => {
      if (method !== 'GET') send(res, 405, { error: `Use GET ${p}` }, { allow: 'GET' });
      else answer();
    };
    if (p === '/v2') return get(() => send(res, 200, { name: 'model-deploy-flow-scoring-runtime', version: serverVersionOf(), extensions: [] }));
    if (p === '/v2/health/live') return get(() => send(res, this.o.pool.phase === 'stopped' ? 400 : 200, { live: this.o.pool.phase !== 'stopped' }));
    if (p === '/v2/health/ready') {
      return get(() => send(res, this.ready ? 200 : 400, this.ready ? { ready: true } : { ready: false, error: this.notReadyReason }));
    }
    const parsed = parseOipPath(p);
    if (parsed.route === 'bad') throw invalid('The path is not valid percent-encoding');
    if (parsed.route !== 'model') {
      throw new RuntimeError('NotFound', `No route ${method} ${p}; the model's routes are /v2/models/${this.modelName}[/versions/<v>][/ready|/infer]`, 404);
    }
    const { name, version, action } = parsed;
    if (name !== this.modelName) throw new RuntimeError('ModelNotFound', `Unknown model '${shown(name)}'; this server serves '${this.modelName}'`, 404);
    const served = this.o.options.modelVersion;
    if (version !== undefined && version !== served) {
      throw new RuntimeError('ModelNotFound', served === undefined
        ? `Model '${this.modelName}' is served without versions; use /v2/models/${this.modelName}`
        : `Unknown version '${shown(version)}' of model '${this.modelName}'; this server serves version ${served}`, 404);
    }
    if (action === 'ready') return get(() => send(res, this.ready ? 200 : 400, { name: this.modelName, ready: this.ready, ...(this.ready ? {} : { error: this.notReadyReason }) }));
    if (action === 'metadata') {
      return get(() => {
        if (!this.o.pool.schema && this.o.pool.phase !== 'ready') throw new RuntimeError('NotReady', `The model is not loaded: ${this.o.pool.unavailableReason}`, 503);
        send(res, 200, this.metadata());
      });
    }
    if (!(await this.o.authorized(req.headers.authorization))) {
      send(res, 401, { error: 'Send a service key or token: Authorization: Bearer <primary or secondary key, or token>' }, { 'www-authenticate': 'Bearer' });
      dropBody(req);
      return;
    }
    if (method !== 'POST') {
      send(res, 405, { error: `Use POST ${p}` }, { allow: 'POST' });
      return;
    }
    if (this.o.options.mode === 'batch') throw new RuntimeError('NotFound', 'This service runs in batch mode: POST /batch with {"mini_batch": [...]}', 404);
    const body = await this.o.readBody(req, this.o.options.maxBodyBytes);
    await this.infer(req, res, p, body, { model: this.modelName, ...(served !== undefined ? { version: served } : {}) });
  }

  private async infer(req: http.IncomingMessage, res: http.ServerResponse, p: string, body: Buffer, target: OipTarget): Promise<void> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (k === 'authorization' || v === undefined) continue;
      headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    const onnx = !!this.o.pool.schema?.oip || this.o.kind === 'onnx';
    let request: OipRequest | undefined;
    let sig: ScriptSignature | undefined;
    let payload = body;
    if (!onnx) {
      // Scripts: the tensors become run()'s input here; ONNX models read the OIP request themselves (onnx.ts).
      request = parseInferRequest(body);
      sig = scriptSignature(this.o.pool.schema);
      if (request.outputs && sig.outputs.length) {
        const known = new Set(sig.outputs.map((o) => o.name));
        for (const o of request.outputs) if (!known.has(o.name)) throw invalid(`Unknown output '${shown(o.name)}'; the script's outputs are ${[...known].join(', ')}`);
      }
      payload = Buffer.from(JSON.stringify(scriptRunInput(request, sig)), 'utf8');
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const input: RequestInput = { kind: 'score', method: 'POST', path: onnx ? p : '/score', query: '', headers, ...(onnx ? { oip: target } : {}) };
    this.o.inflight(1);
    let reply: WorkerReply;
    try {
      reply = await this.o.pool.run(input, payload);
    } finally {
      this.o.inflight(-1);
    }
    this.noteAnswer(reply.status);
    if (reply.status >= 400) {
      const text = oipErrorBody(reply);
      res.writeHead(reply.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    if (onnx) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': reply.body.length });
      res.end(reply.body);
      return;
    }
    if (!/^application\/json\b/i.test(reply.contentType)) {
      throw notTensor(`it answered ${reply.contentType || 'no content type'} (an AMLResponse or raw answer), not JSON`);
    }
    const text = reply.body.toString('utf8');
    if (jsonNestingDepth(text, MAX_OIP_DEPTH) > MAX_OIP_DEPTH) throw notTensor(`it is nested more than ${MAX_OIP_DEPTH} levels deep`);
    let result: unknown;
    try {
      result = JSON.parse(text);
    } catch (e) {
      throw notTensor(`its JSON does not parse (${jsonSyntaxMessage(e)})`);
    }
    send(res, 200, inferResponse(target, request!, scriptOutputs(result, sig!)));
  }
}

function send(res: http.ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const data = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length, ...extra });
  res.end(data);
}
