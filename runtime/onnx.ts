/**
 * ONNX models with no entry script: onnxruntime-node behind the runtime's JSON contract.
 * Request: `{"data": [[...]]}` (the model's first input) or `{"<input name>": [...], ...}`.
 * Response: `{"<output name>": nested array, ...}`. Swagger from the model's input/output metadata.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { RuntimeError } from './errors';
import { elementCount, forEachElement, invalid, shown, type OipDatatype, type OipInput, type OipOutput, type OipTensorMeta } from './oip-tensor';
import type { JsonSchema, ScriptSchema } from './protocol';

type Ort = typeof import('onnxruntime-node');
let ort: Ort | undefined;
function loadOrt(): Ort {
  ort ??= require('onnxruntime-node') as Ort;
  return ort;
}

/** The `.onnx` file of a model folder: `model.onnx`, else the only `.onnx` file. */
export function findOnnxModel(modelPath: string): string | undefined {
  if (!fs.existsSync(modelPath)) return undefined;
  if (fs.statSync(modelPath).isFile()) return modelPath.endsWith('.onnx') ? modelPath : undefined;
  const preferred = path.join(modelPath, 'model.onnx');
  if (fs.existsSync(preferred)) return preferred;
  const found = fs.readdirSync(modelPath).filter((f) => f.endsWith('.onnx'));
  return found.length === 1 ? path.join(modelPath, found[0]) : undefined;
}

interface TensorInfo {
  name: string;
  type: Tensor.Type;
  shape: ReadonlyArray<number | string>;
}

function tensorInfos(meta: readonly InferenceSession.ValueMetadata[]): TensorInfo[] {
  return meta.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: m.shape } : { name: m.name, type: 'float32', shape: [] }));
}

function itemSchema(type: Tensor.Type): JsonSchema {
  switch (type) {
    case 'float32': return { type: 'number', format: 'float' };
    case 'float64': return { type: 'number', format: 'double' };
    case 'int64': case 'uint64': return { type: 'integer', format: 'int64' };
    case 'int32': case 'int16': case 'int8': case 'uint32': case 'uint16': case 'uint8': return { type: 'integer', format: 'int32' };
    case 'bool': return { type: 'boolean' };
    case 'string': return { type: 'string' };
    default: return { type: 'number' };
  }
}

function sampleValue(type: Tensor.Type): unknown {
  return type === 'string' ? '' : type === 'bool' ? false : 0;
}

const OIP_OF: Partial<Record<Tensor.Type, OipDatatype>> = {
  bool: 'BOOL', uint8: 'UINT8', uint16: 'UINT16', uint32: 'UINT32', uint64: 'UINT64', int8: 'INT8', int16: 'INT16', int32: 'INT32',
  int64: 'INT64', float16: 'FP16', float32: 'FP32', float64: 'FP64', string: 'BYTES',
};

/** The Open Inference Protocol datatype of an ONNX tensor type. */
export function oipDatatypeOf(type: Tensor.Type): OipDatatype {
  const d = OIP_OF[type];
  if (!d) throw new RuntimeError('UnsupportedModel', `The model has a tensor of type ${type}, which the Open Inference Protocol has no datatype for`, 500);
  return d;
}

/** OIP metadata of a tensor: dynamic dimensions (symbols, unknown sizes) are -1. */
function oipMeta(info: TensorInfo): OipTensorMeta {
  return { name: info.name, datatype: OIP_OF[info.type] ?? 'FP32', shape: info.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)) };
}

/** A tensor (rows `[from, from + rows)` of it along the first dimension, when given) as an OIP output: flat data. */
function oipOutputOf(name: string, t: Tensor, from?: number, rows?: number): OipOutput {
  let shape = [...t.dims];
  let data: ArrayLike<number | bigint | string | boolean> = t.data;
  if (from !== undefined && rows !== undefined) {
    const rowSize = elementCount(t.dims.slice(1));
    const a = from * rowSize;
    const b = a + rows * rowSize;
    data = Array.isArray(t.data) ? t.data.slice(a, b) : t.data.subarray(a, b);
    shape = [rows, ...t.dims.slice(1)];
  }
  const n = data.length;
  const out = new Array<unknown>(n);
  if (t.type === 'bool') for (let i = 0; i < n; i++) out[i] = Boolean(data[i]);
  else if (t.type === 'int64' || t.type === 'uint64') for (let i = 0; i < n; i++) out[i] = Number(data[i]);
  else for (let i = 0; i < n; i++) out[i] = data[i];
  return { name, datatype: OIP_OF[t.type] ?? 'FP32', shape, data: out };
}

/** How a request wants its outputs: `{name: nested array}` (`/score`) or OIP output tensors (`/infer`). */
export type OutputFormat = 'json' | 'oip';

function tensorSchema(info: TensorInfo): { schema: JsonSchema; example: unknown } {
  let schema = itemSchema(info.type);
  let example: unknown = sampleValue(info.type);
  const dims = info.shape.length ? info.shape : [1];
  for (let i = dims.length - 1; i >= 0; i--) {
    // A fixed dimension is exact in the schema and in the example (an example the model rejects is no example,
    // and smoke tests send it); a dynamic one (batch) gets one row.
    const fixed = typeof dims[i] === 'number' && (dims[i] as number) > 0 ? (dims[i] as number) : undefined;
    schema = { type: 'array', items: schema, ...(fixed ? { minItems: fixed, maxItems: fixed } : {}) };
    example = Array.from({ length: fixed ?? 1 }, () => example);
  }
  return { schema, example };
}

function objectSchema(infos: TensorInfo[]): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  const example: Record<string, unknown> = {};
  for (const info of infos) {
    const t = tensorSchema(info);
    properties[info.name] = t.schema;
    example[info.name] = t.example;
  }
  return { type: 'object', properties, required: infos.map((i) => i.name), example };
}

const notRectangular = (name: string) => new RuntimeError('InvalidInput', `Input '${name}' is not a rectangular array`, 400);
const notNumbers = (name: string) => new RuntimeError('InvalidInput', `Input '${name}' must contain numbers`, 400);

/** Dimensions of a nested array, read along its first elements (checked while filling). */
function probeDims(value: unknown): number[] {
  const dims: number[] = [];
  let probe = value;
  while (Array.isArray(probe)) {
    dims.push(probe.length);
    probe = probe[0];
  }
  return dims;
}

/** Walks a nested array of shape `dims` in row-major order, calling `put(index, leaf)`; throws when ragged. */
function fill(value: unknown, dims: number[], name: string, put: (i: number, x: unknown) => void): void {
  if (dims.length === 0) {
    put(0, value);
    return;
  }
  const last = dims.length - 1;
  let pos = 0;
  const walk = (v: unknown, depth: number): void => {
    if (!Array.isArray(v) || v.length !== dims[depth]) throw notRectangular(name);
    if (depth === last) {
      for (let i = 0; i < v.length; i++) {
        const x: unknown = v[i];
        if (Array.isArray(x)) throw notRectangular(name);
        put(pos++, x);
      }
    } else for (let i = 0; i < v.length; i++) walk(v[i], depth + 1);
  };
  walk(value, 0);
}

type NumericArray = Float32Array | Float64Array | Int32Array | Int8Array | Uint8Array | Int16Array | Uint16Array;
const NUMERIC: Partial<Record<Tensor.Type, new (n: number) => NumericArray>> = {
  float32: Float32Array, float64: Float64Array, int32: Int32Array, int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array,
};

/** Numbers (booleans as 0/1) of a JSON leaf, or a 400. */
function numberOf(x: unknown, name: string): number {
  if (typeof x === 'number') return x;
  if (typeof x === 'boolean') return x ? 1 : 0;
  throw notNumbers(name);
}

/** A nested JSON array → a tensor of the input's type, written straight into its typed array. */
function toTensor(info: TensorInfo, value: unknown): Tensor {
  const { Tensor } = loadOrt();
  const dims = probeDims(value);
  if (info.shape.length && dims.length !== info.shape.length) {
    throw new RuntimeError('InvalidInput', `Input '${info.name}' must have ${info.shape.length} dimensions (shape [${info.shape.join(', ')}]); got ${dims.length}`, 400);
  }
  info.shape.forEach((d, i) => {
    if (typeof d === 'number' && d > 0 && dims[i] !== d) {
      throw new RuntimeError('InvalidInput', `Input '${info.name}' must have size ${d} on dimension ${i}; got ${dims[i]}`, 400);
    }
  });
  const size = dims.reduce((a, b) => a * b, 1);
  const name = info.name;
  const Numeric = NUMERIC[info.type];
  if (Numeric) {
    const data = new Numeric(size);
    fill(value, dims, name, (i, x) => { data[i] = numberOf(x, name); });
    return new Tensor(info.type as 'float32', data as Float32Array, dims);
  }
  switch (info.type) {
    case 'int64': {
      const data = new BigInt64Array(size);
      fill(value, dims, name, (i, x) => {
        const n = numberOf(x, name);
        if (!Number.isFinite(n)) throw notNumbers(name);
        data[i] = BigInt(Math.trunc(n));
      });
      return new Tensor('int64', data, dims);
    }
    case 'bool': {
      const data = new Uint8Array(size);
      fill(value, dims, name, (i, x) => { data[i] = numberOf(x, name) ? 1 : 0; });
      return new Tensor('bool', data, dims);
    }
    case 'string': {
      const data = new Array<string>(size);
      fill(value, dims, name, (i, x) => { data[i] = String(x); });
      return new Tensor('string', data, dims);
    }
    default: throw new RuntimeError('UnsupportedModel', `Input '${info.name}' has tensor type ${info.type}, which the runtime cannot build from JSON`, 400);
  }
}

/** Tensor data → nested JSON arrays of shape `dims` (int64 as numbers, bool as booleans), read straight from the array. */
function toNested(type: Tensor.Type, data: ArrayLike<number | bigint | string | boolean>, dims: readonly number[]): unknown {
  const convert: ((v: number | bigint | string | boolean) => unknown) | undefined =
    type === 'bool' ? (v) => Boolean(v) : type === 'int64' || type === 'uint64' ? (v) => Number(v) : undefined;
  if (dims.length === 0) return convert ? convert(data[0]) : data[0];
  const last = dims.length - 1;
  let pos = 0;
  const build = (depth: number): unknown[] => {
    const n = dims[depth];
    const out = new Array<unknown>(n);
    if (depth < last) for (let i = 0; i < n; i++) out[i] = build(depth + 1);
    else if (convert) for (let i = 0; i < n; i++) out[i] = convert(data[pos++]);
    else for (let i = 0; i < n; i++) out[i] = data[pos++];
    return out;
  };
  return build(0);
}

/** A tensor → nested JSON arrays. */
function fromTensor(t: Tensor): unknown {
  return toNested(t.type, t.data as ArrayLike<number>, t.dims);
}

/** Rows `[from, from + rows)` of a tensor along its first dimension, as nested JSON arrays. */
function rowsOf(t: Tensor, from: number, rows: number): unknown {
  const rowSize = t.dims.slice(1).reduce((a, b) => a * b, 1);
  const data = t.data;
  const a = from * rowSize;
  const b = a + rows * rowSize;
  const part = Array.isArray(data) ? data.slice(a, b) : data.subarray(a, b);
  return toNested(t.type, part as ArrayLike<number>, [rows, ...t.dims.slice(1)]);
}

/** Tensors of the same type and trailing dimensions, stacked along the first dimension. */
function stack(parts: Tensor[]): Tensor {
  const { Tensor } = loadOrt();
  const first = parts[0];
  const rows = parts.reduce((n, t) => n + t.dims[0], 0);
  const dims = [rows, ...first.dims.slice(1)];
  if (Array.isArray(first.data)) return new Tensor('string', parts.flatMap((t) => t.data as string[]), dims);
  const Typed = (first.data as Float32Array).constructor as new (n: number) => Float32Array;
  const data = new Typed(parts.reduce((n, t) => n + (t.data as Float32Array).length, 0));
  let offset = 0;
  for (const t of parts) {
    data.set(t.data as Float32Array, offset);
    offset += (t.data as Float32Array).length;
  }
  return new Tensor(first.type as 'float32', data, dims);
}

/** The value of a settled attempt, or its error. */
export type Settled<T> = { value: T; error?: undefined } | { error: unknown; value?: undefined };

export function settle<T>(f: () => T): Settled<T> {
  try {
    return { value: f() };
  } catch (error) {
    return { error };
  }
}

export interface ManyResult {
  /** One result (output record) or error per request, in order. */
  results: Settled<Record<string, unknown>>[];
  /** Requests per `session.run` made (a batch of n → n; a request run alone → 1). */
  runs: number[];
  /** Batched runs that failed and were replaced by one run per request. */
  fallbacks: number;
}

/** A dimension whose size the model leaves open: a symbol ('batch', 'N') or a negative / unknown size. */
const isDynamic = (d: number | string | undefined): boolean => typeof d === 'string' || (typeof d === 'number' && d < 0);

export interface OnnxLoadOptions {
  /** onnxruntime intra-op threads for one run (default 1). */
  threads?: number;
}

/** Session options of the runtime: full graph optimization, `threads` intra-op threads that sleep when idle. */
export function sessionOptions(options: OnnxLoadOptions = {}): InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: Math.max(1, options.threads ?? 1),
    interOpNumThreads: 1,
    // Idle intra-op threads spinning would take CPU from the HTTP front in the same process.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

export class OnnxModel {
  private readonly byName: Map<string, TensorInfo>;
  private readonly outputNames: readonly string[];
  /** Cleared when a batched run's outputs did not split by rows. */
  private batching = true;

  private constructor(
    private readonly session: InferenceSession,
    readonly inputs: TensorInfo[],
    readonly outputs: TensorInfo[],
  ) {
    this.byName = new Map(inputs.map((i) => [i.name, i]));
    this.outputNames = [...session.outputNames];
  }

  static async load(file: string, options: OnnxLoadOptions = {}): Promise<OnnxModel> {
    const session = await loadOrt().InferenceSession.create(file, sessionOptions(options));
    return new OnnxModel(session, tensorInfos(session.inputMetadata), tensorInfos(session.outputMetadata));
  }

  schema(): ScriptSchema {
    return {
      input: objectSchema(this.inputs),
      output: objectSchema(this.outputs),
      oip: { inputs: this.inputs.map(oipMeta), outputs: this.outputs.map(oipMeta) },
    };
  }

  /** `{"data": ...}` or named inputs → feeds. */
  feeds(payload: unknown): Record<string, Tensor> {
    if (!payload || typeof payload !== 'object' || Array.isArray(payload)) {
      throw new RuntimeError('InvalidInput', `Send a JSON object: {"data": [...]} or one property per input (${this.inputs.map((i) => i.name).join(', ')})`, 400);
    }
    const body = payload as Record<string, unknown>;
    const feeds: Record<string, Tensor> = {};
    let given = 0;
    for (const key in body) {
      const info = this.byName.get(key) ?? (key === 'data' ? this.inputs[0] : undefined);
      if (!info) throw new RuntimeError('InvalidInput', `Unknown input '${key}'; the model's inputs are ${[...this.byName.keys()].join(', ')}`, 400);
      if (!Object.hasOwn(feeds, info.name)) given++;
      feeds[info.name] = toTensor(info, body[key]);
    }
    if (given < this.inputs.length) {
      const missing = this.inputs.filter((i) => !Object.hasOwn(feeds, i.name)).map((i) => i.name);
      throw new RuntimeError('InvalidInput', `Missing input(s): ${missing.join(', ')}`, 400);
    }
    return feeds;
  }

  /**
   * Open Inference Protocol inputs → feeds: each input named by the model, with the model's datatype, its rank and
   * fixed dimensions; the data (flat or nested) is written straight into the tensor's typed array.
   */
  oipFeeds(inputs: OipInput[]): Record<string, Tensor> {
    const { Tensor } = loadOrt();
    const feeds: Record<string, Tensor> = {};
    for (const input of inputs) {
      const info = this.byName.get(input.name);
      if (!info) throw invalid(`Unknown input '${shown(input.name)}'; the model's inputs are ${[...this.byName.keys()].join(', ')}`);
      const datatype = oipDatatypeOf(info.type);
      if (input.datatype !== datatype) throw invalid(`Input '${info.name}' is ${datatype} in the model; got ${input.datatype}`);
      const dims = input.shape;
      if (info.shape.length && dims.length !== info.shape.length) {
        throw invalid(`Input '${info.name}' must have ${info.shape.length} dimensions (shape [${info.shape.join(', ')}]); got shape [${dims.join(', ')}]`);
      }
      info.shape.forEach((d, i) => {
        if (typeof d === 'number' && d > 0 && dims[i] !== d) throw invalid(`Input '${info.name}' must have size ${d} on dimension ${i}; got shape [${dims.join(', ')}]`);
      });
      const size = elementCount(dims);
      const Numeric = NUMERIC[info.type];
      if (Numeric) {
        const data = new Numeric(size);
        forEachElement(input, (i, x) => { data[i] = x as number; });
        feeds[info.name] = new Tensor(info.type as 'float32', data as Float32Array, dims);
      } else if (info.type === 'int64') {
        const data = new BigInt64Array(size);
        forEachElement(input, (i, x) => { data[i] = BigInt(x as number); });
        feeds[info.name] = new Tensor('int64', data, dims);
      } else if (info.type === 'bool') {
        const data = new Uint8Array(size);
        forEachElement(input, (i, x) => { data[i] = x ? 1 : 0; });
        feeds[info.name] = new Tensor('bool', data, dims);
      } else if (info.type === 'string') {
        const data = new Array<string>(size);
        forEachElement(input, (i, x) => { data[i] = x as string; });
        feeds[info.name] = new Tensor('string', data, dims);
      } else {
        throw new RuntimeError('UnsupportedModel', `Input '${info.name}' has tensor type ${info.type}, which the runtime cannot build from JSON`, 400);
      }
    }
    const missing = this.inputs.filter((i) => !Object.hasOwn(feeds, i.name)).map((i) => i.name);
    if (missing.length) throw invalid(`Missing input(s): ${missing.join(', ')}`);
    return feeds;
  }

  async run(payload: unknown): Promise<Record<string, unknown>> {
    return this.runFeeds(this.feeds(payload));
  }

  /** One run; outputs as `{name: nested array}` (`json`) or as `{name: OIP output}` (`oip`). */
  async runFeeds(feeds: Record<string, Tensor>, format: OutputFormat = 'json'): Promise<Record<string, unknown>> {
    const results = await this.session.run(feeds);
    const out: Record<string, unknown> = {};
    for (const name of this.outputNames) out[name] = format === 'oip' ? oipOutputOf(name, results[name]) : fromTensor(results[name]);
    return out;
  }

  /**
   * Whether requests can be stacked into one run (dynamic batching): every input and output is a tensor whose
   * first dimension is dynamic (symbolic like 'batch', or -1). A model with a fixed first dimension is never
   * batched; nor is one whose batched outputs once failed to have one row per input row.
   */
  get batchable(): boolean {
    return this.batching && [...this.inputs, ...this.outputs].every((t) => t.shape.length >= 1 && isDynamic(t.shape[0]));
  }

  /**
   * The key under which validated feeds may be stacked with others (same trailing dimensions of every input,
   * same row count across the request's inputs), or undefined when this request must run alone.
   */
  private stackKey(feeds: Record<string, Tensor>): string | undefined {
    if (!this.batchable) return undefined;
    let rows: number | undefined;
    const parts: string[] = [];
    for (const info of this.inputs) {
      const t = feeds[info.name];
      if (!t || t.dims.length < 1) return undefined;
      if (rows !== undefined && t.dims[0] !== rows) return undefined;
      rows = t.dims[0];
      parts.push(t.dims.slice(1).join('x'));
    }
    return parts.join('|');
  }

  /**
   * Dynamic batching: runs several requests' feeds (each validated on its own: an error stays that request's),
   * stacking those with the same trailing dimensions along the first dimension into one `session.run` and
   * splitting the outputs back by row ranges. A batched run that fails (or whose outputs do not have one row per
   * input row) is replaced by one run per request, so each error lands on its own request.
   */
  async runFeedsMany(feeds: Settled<Record<string, Tensor>>[], formats?: OutputFormat[]): Promise<ManyResult> {
    const results = new Array<Settled<Record<string, unknown>>>(feeds.length);
    const runs: number[] = [];
    let fallbacks = 0;
    const groups = new Map<string, number[]>();
    const alone: number[] = [];
    feeds.forEach((f, i) => {
      if (f.error !== undefined || !f.value) {
        results[i] = { error: f.error };
        return;
      }
      const key = this.stackKey(f.value);
      if (key === undefined) alone.push(i);
      else (groups.get(key) ?? groups.set(key, []).get(key)!).push(i);
    });
    const runAlone = async (i: number) => {
      try {
        results[i] = { value: await this.runFeeds(feeds[i].value!, formats?.[i]) };
      } catch (error) {
        results[i] = { error };
      }
      runs.push(1);
    };
    for (const members of groups.values()) {
      if (members.length === 1) {
        alone.push(members[0]);
        continue;
      }
      try {
        const stacked: Record<string, Tensor> = {};
        for (const info of this.inputs) stacked[info.name] = stack(members.map((i) => feeds[i].value![info.name]));
        const total = stacked[this.inputs[0].name].dims[0];
        const out = await this.session.run(stacked);
        for (const name of this.outputNames) {
          if (!out[name] || out[name].dims[0] !== total) {
            this.batching = false;
            throw new Error(`output '${name}' does not have one row per input row; batching is off for this model`);
          }
        }
        let from = 0;
        for (const i of members) {
          const rows = feeds[i].value![this.inputs[0].name].dims[0];
          const value: Record<string, unknown> = {};
          for (const name of this.outputNames) {
            value[name] = formats?.[i] === 'oip' ? oipOutputOf(name, out[name], from, rows) : rowsOf(out[name], from, rows);
          }
          results[i] = { value };
          from += rows;
        }
        runs.push(members.length);
      } catch {
        fallbacks++;
        for (const i of members) await runAlone(i);
      }
    }
    for (const i of alone) await runAlone(i);
    return { results, runs, fallbacks };
  }

  /** Batch: each row is one sample of the first input; one `{output: value}` per row. */
  async runBatch(rows: unknown[]): Promise<unknown[]> {
    if (rows.length === 0) return [];
    const out = await this.run({ [this.inputs[0].name]: rows });
    return rows.map((_, i) => Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.isArray(v) ? v[i] : v])));
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
