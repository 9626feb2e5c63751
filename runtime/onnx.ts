/**
 * ONNX models with no entry script: onnxruntime-node behind the runtime's JSON contract.
 * Request: `{"data": [[...]]}` (the model's first input) or `{"<input name>": [...], ...}`.
 * Response: `{"<output name>": nested array, ...}`. Swagger from the model's input/output metadata.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { AppError } from '../shared/errors';
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

function tensorSchema(info: TensorInfo): { schema: JsonSchema; example: unknown } {
  let schema = itemSchema(info.type);
  let example: unknown = sampleValue(info.type);
  const dims = info.shape.length ? info.shape : [1];
  for (let i = dims.length - 1; i >= 0; i--) {
    schema = { type: 'array', items: schema };
    const n = typeof dims[i] === 'number' && (dims[i] as number) > 0 ? Math.min(dims[i] as number, 8) : 1;
    example = Array.from({ length: n }, () => example);
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

function flatten(value: unknown, name: string): { dims: number[]; flat: unknown[] } {
  const dims: number[] = [];
  let probe = value;
  while (Array.isArray(probe)) {
    dims.push(probe.length);
    probe = probe[0];
  }
  const flat: unknown[] = [];
  const walk = (v: unknown, depth: number) => {
    if (depth === dims.length) {
      if (Array.isArray(v)) throw new AppError('InvalidInput', `Input '${name}' is not a rectangular array`, 400);
      flat.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== dims[depth]) throw new AppError('InvalidInput', `Input '${name}' is not a rectangular array`, 400);
    for (const x of v) walk(x, depth + 1);
  };
  walk(value, 0);
  return { dims, flat };
}

function toTensor(info: TensorInfo, value: unknown): Tensor {
  const { Tensor } = loadOrt();
  const { dims, flat } = flatten(value, info.name);
  if (info.shape.length && dims.length !== info.shape.length) {
    throw new AppError('InvalidInput', `Input '${info.name}' must have ${info.shape.length} dimensions (shape [${info.shape.join(', ')}]); got ${dims.length}`, 400);
  }
  info.shape.forEach((d, i) => {
    if (typeof d === 'number' && d > 0 && dims[i] !== d) {
      throw new AppError('InvalidInput', `Input '${info.name}' must have size ${d} on dimension ${i}; got ${dims[i]}`, 400);
    }
  });
  const numbers = () => flat.map((x) => {
    if (typeof x !== 'number' && typeof x !== 'boolean') throw new AppError('InvalidInput', `Input '${info.name}' must contain numbers`, 400);
    return Number(x);
  });
  switch (info.type) {
    case 'float32': return new Tensor('float32', Float32Array.from(numbers()), dims);
    case 'float64': return new Tensor('float64', Float64Array.from(numbers()), dims);
    case 'int32': return new Tensor('int32', Int32Array.from(numbers()), dims);
    case 'int64': return new Tensor('int64', BigInt64Array.from(numbers().map((n) => BigInt(Math.trunc(n)))), dims);
    case 'int8': return new Tensor('int8', Int8Array.from(numbers()), dims);
    case 'uint8': return new Tensor('uint8', Uint8Array.from(numbers()), dims);
    case 'int16': return new Tensor('int16', Int16Array.from(numbers()), dims);
    case 'uint16': return new Tensor('uint16', Uint16Array.from(numbers()), dims);
    case 'bool': return new Tensor('bool', Uint8Array.from(numbers().map((n) => (n ? 1 : 0))), dims);
    case 'string': return new Tensor('string', flat.map(String), dims);
    default: throw new AppError('UnsupportedModel', `Input '${info.name}' has tensor type ${info.type}, which the runtime cannot build from JSON`, 400);
  }
}

function fromTensor(t: Tensor): unknown {
  const data = t.data as ArrayLike<number | bigint | string>;
  const flat: unknown[] = Array.from(data, (v) => (typeof v === 'bigint' ? Number(v) : v));
  if (t.type === 'bool') for (let i = 0; i < flat.length; i++) flat[i] = Boolean(flat[i]);
  const dims = t.dims;
  if (dims.length === 0) return flat[0];
  let pos = 0;
  const build = (depth: number): unknown[] => {
    const out: unknown[] = [];
    for (let i = 0; i < dims[depth]; i++) out.push(depth === dims.length - 1 ? flat[pos++] : build(depth + 1));
    return out;
  };
  return build(0);
}

export class OnnxModel {
  private constructor(
    private readonly session: InferenceSession,
    readonly inputs: TensorInfo[],
    readonly outputs: TensorInfo[],
  ) {}

  static async load(file: string): Promise<OnnxModel> {
    const session = await loadOrt().InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1 });
    return new OnnxModel(session, tensorInfos(session.inputMetadata), tensorInfos(session.outputMetadata));
  }

  schema(): ScriptSchema {
    return { input: objectSchema(this.inputs), output: objectSchema(this.outputs) };
  }

  /** `{"data": ...}` or named inputs → feeds. */
  feeds(payload: unknown): Record<string, Tensor> {
    if (!payload || typeof payload !== 'object' || Array.isArray(payload)) {
      throw new AppError('InvalidInput', `Send a JSON object: {"data": [...]} or one property per input (${this.inputs.map((i) => i.name).join(', ')})`, 400);
    }
    const body = payload as Record<string, unknown>;
    const feeds: Record<string, Tensor> = {};
    const byName = new Map(this.inputs.map((i) => [i.name, i]));
    for (const [key, value] of Object.entries(body)) {
      const info = byName.get(key) ?? (key === 'data' ? this.inputs[0] : undefined);
      if (!info) throw new AppError('InvalidInput', `Unknown input '${key}'; the model's inputs are ${[...byName.keys()].join(', ')}`, 400);
      feeds[info.name] = toTensor(info, value);
    }
    const missing = this.inputs.filter((i) => !(i.name in feeds)).map((i) => i.name);
    if (missing.length) throw new AppError('InvalidInput', `Missing input(s): ${missing.join(', ')}`, 400);
    return feeds;
  }

  async run(payload: unknown): Promise<Record<string, unknown>> {
    return this.runFeeds(this.feeds(payload));
  }

  async runFeeds(feeds: Record<string, Tensor>): Promise<Record<string, unknown>> {
    const results = await this.session.run(feeds);
    const out: Record<string, unknown> = {};
    for (const name of this.session.outputNames) out[name] = fromTensor(results[name]);
    return out;
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
