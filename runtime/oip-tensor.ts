/**
 * Open Inference Protocol (V2, REST) tensors: the request / response JSON of `POST /v2/models/{name}/infer`
 * (kserve/open-inference-protocol, specification/protocol/inference_rest.md), parsed and checked here, shared by
 * the HTTP front (oip.ts: scripts, metadata) and the ONNX scorer (onnx.ts, in its threads or worker processes).
 *
 * - datatypes: BOOL, UINT8/16/32/64, INT8/16/32/64, FP16/32/64, BYTES (strings in JSON);
 * - `data`: row-major, flat or nested along `shape`; the element count must be the product of `shape`;
 * - elements are checked against the datatype (no silent coercion): BOOL → true/false, INT/UINT → integers in
 *   range, FP → numbers, BYTES → strings;
 * - `parameters` (request, input, output): an object of string / number / boolean values.
 * Every violation is a 400 `InvalidInput` with a message naming the tensor.
 */
import { RuntimeError } from './errors';
import { jsonNestingDepth, jsonSyntaxMessage } from './json-depth';

export const OIP_DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'] as const;
export type OipDatatype = (typeof OIP_DATATYPES)[number];
const DATATYPES = new Set<string>(OIP_DATATYPES);

export type OipParameters = Record<string, string | number | boolean>;

export interface OipTensorMeta {
  name: string;
  datatype: OipDatatype;
  /** Variable-size dimensions are -1. */
  shape: number[];
}

export interface OipInput {
  name: string;
  shape: number[];
  datatype: OipDatatype;
  parameters?: OipParameters;
  data: unknown[];
}

export interface OipRequest {
  id?: string;
  parameters?: OipParameters;
  inputs: OipInput[];
  outputs?: Array<{ name: string; parameters?: OipParameters }>;
}

export interface OipOutput {
  name: string;
  datatype: OipDatatype;
  shape: number[];
  parameters?: OipParameters;
  data: unknown[];
}

export interface OipResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: OipParameters;
  outputs: OipOutput[];
}

/** Where a request names its model (from the URL), as the scorer needs it to answer. */
export interface OipTarget {
  model: string;
  version?: string;
}

/** Deepest JSON accepted in an inference request (a nested tensor of rank 60 still fits). */
export const MAX_OIP_DEPTH = 64;
/** Longest tensor rank accepted. */
export const MAX_OIP_RANK = 32;

export const invalid = (message: string): RuntimeError => new RuntimeError('InvalidInput', message, 400);

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
/** A user-given name cut for an error message. */
export const shown = (s: string): string => (s.length > 100 ? `${s.slice(0, 100)}…` : s);

function checkParameters(v: unknown, where: string): OipParameters | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw invalid(`${where} must be an object of string, number or boolean values`);
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string' && typeof x !== 'number' && typeof x !== 'boolean') {
      throw invalid(`${where}.${shown(k)} must be a string, number or boolean`);
    }
  }
  return v as OipParameters;
}

function checkShape(v: unknown, name: string): number[] {
  if (!Array.isArray(v) || v.length > MAX_OIP_RANK || !v.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw invalid(`Input '${shown(name)}': shape must be a list of at most ${MAX_OIP_RANK} non-negative integers`);
  }
  return v as number[];
}

/** Parses and checks an inference request body (depth bounded before parsing). */
export function parseInferRequest(body: Buffer): OipRequest {
  const text = body.toString('utf8');
  if (jsonNestingDepth(text, MAX_OIP_DEPTH) > MAX_OIP_DEPTH) throw invalid(`The request body is nested more than ${MAX_OIP_DEPTH} levels deep`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw invalid(`The request body is not valid JSON: ${jsonSyntaxMessage(e)}`);
  }
  if (!isObject(v)) throw invalid('Send an inference request: {"inputs": [{"name", "shape", "datatype", "data"}, ...]}');
  if (v.id !== undefined && typeof v.id !== 'string') throw invalid('"id" must be a string');
  const parameters = checkParameters(v.parameters, 'parameters');
  if (!Array.isArray(v.inputs) || v.inputs.length === 0) throw invalid('"inputs" must be a non-empty list of {"name", "shape", "datatype", "data"}');
  const seen = new Set<string>();
  const inputs = v.inputs.map((x: unknown, i: number): OipInput => {
    if (!isObject(x) || typeof x.name !== 'string' || !x.name) throw invalid(`inputs[${i}] must be an object with a non-empty "name"`);
    const name = x.name;
    if (seen.has(name)) throw invalid(`Input '${shown(name)}' is given twice`);
    seen.add(name);
    const shape = checkShape(x.shape, name);
    if (typeof x.datatype !== 'string' || !DATATYPES.has(x.datatype)) {
      throw invalid(`Input '${shown(name)}': datatype must be one of ${OIP_DATATYPES.join(', ')}`);
    }
    if (!Array.isArray(x.data)) throw invalid(`Input '${shown(name)}': data must be a list (row-major, flat or nested)`);
    const p = checkParameters(x.parameters, `inputs[${i}].parameters`);
    return { name, shape, datatype: x.datatype as OipDatatype, data: x.data, ...(p ? { parameters: p } : {}) };
  });
  let outputs: OipRequest['outputs'];
  if (v.outputs !== undefined) {
    if (!Array.isArray(v.outputs)) throw invalid('"outputs" must be a list of {"name"}');
    outputs = v.outputs.map((o: unknown, i: number) => {
      if (!isObject(o) || typeof o.name !== 'string' || !o.name) throw invalid(`outputs[${i}] must be an object with a non-empty "name"`);
      const p = checkParameters(o.parameters, `outputs[${i}].parameters`);
      return { name: o.name, ...(p ? { parameters: p } : {}) };
    });
  }
  return { ...(v.id !== undefined ? { id: v.id as string } : {}), ...(parameters ? { parameters } : {}), inputs, ...(outputs ? { outputs } : {}) };
}

const INT_RANGE: Partial<Record<OipDatatype, [number, number]>> = {
  UINT8: [0, 255], UINT16: [0, 65535], UINT32: [0, 4294967295], UINT64: [0, Number.MAX_SAFE_INTEGER],
  INT8: [-128, 127], INT16: [-32768, 32767], INT32: [-2147483648, 2147483647], INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** A checker of one element of `datatype` (throws a 400 naming the tensor). */
function elementCheck(datatype: OipDatatype, name: string): (x: unknown) => void {
  const wrong = (what: string) => invalid(`Input '${shown(name)}' is ${datatype}: its data must be ${what}`);
  if (datatype === 'BOOL') return (x) => { if (typeof x !== 'boolean') throw wrong('true / false'); };
  if (datatype === 'BYTES') return (x) => { if (typeof x !== 'string') throw wrong('strings'); };
  const range = INT_RANGE[datatype];
  if (range) {
    const [lo, hi] = range;
    return (x) => { if (typeof x !== 'number' || !Number.isInteger(x) || x < lo || x > hi) throw wrong(`integers in [${lo}, ${hi}]`); };
  }
  return (x) => { if (typeof x !== 'number') throw wrong('numbers'); };
}

/** Elements in a tensor of `shape`. */
export const elementCount = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * Walks an input's data in row-major order (flat, or nested exactly along its shape), checking each element
 * against the datatype and calling `put(index, element)`; returns the element count.
 */
export function forEachElement(t: OipInput, put: (i: number, x: unknown) => void): number {
  const count = elementCount(t.shape);
  const check = elementCheck(t.datatype, t.name);
  const { data, shape } = t;
  if (!Array.isArray(data[0])) {
    if (data.length !== count) {
      throw invalid(`Input '${shown(t.name)}' has shape [${shape.join(', ')}] (${count} elements) but ${data.length} data elements`);
    }
    for (let i = 0; i < count; i++) {
      const x = data[i];
      check(x);
      put(i, x);
    }
    return count;
  }
  const last = shape.length - 1;
  let pos = 0;
  const ragged = () => invalid(`Input '${shown(t.name)}': nested data does not match shape [${shape.join(', ')}]`);
  const walk = (v: unknown, depth: number): void => {
    if (depth > last || !Array.isArray(v) || v.length !== shape[depth]) throw ragged();
    if (depth === last) {
      for (let i = 0; i < v.length; i++) {
        const x: unknown = v[i];
        check(x);
        put(pos++, x);
      }
    } else for (let i = 0; i < v.length; i++) walk(v[i], depth + 1);
  };
  walk(data, 0);
  return count;
}

/** Flat elements → nested arrays along `shape` (`[]` → the single element). */
export function nest(flat: ArrayLike<unknown>, shape: readonly number[]): unknown {
  if (shape.length === 0) return flat[0];
  let pos = 0;
  const last = shape.length - 1;
  const build = (depth: number): unknown[] => {
    const n = shape[depth];
    const out = new Array<unknown>(n);
    if (depth < last) for (let i = 0; i < n; i++) out[i] = build(depth + 1);
    else for (let i = 0; i < n; i++) out[i] = flat[pos++];
    return out;
  };
  return build(0);
}

/** The requested outputs, in the order asked (all of them, in the model's order, when none are named). */
export function selectOutputs(all: OipOutput[], requested: OipRequest['outputs']): OipOutput[] {
  if (!requested) return all;
  const byName = new Map(all.map((o) => [o.name, o]));
  return requested.map((r) => {
    const o = byName.get(r.name);
    if (!o) throw invalid(`Unknown output '${shown(r.name)}'; the model's outputs are ${[...byName.keys()].join(', ')}`);
    return r.parameters ? { ...o, parameters: r.parameters } : o;
  });
}

/** The inference response: model, version, the request's id and `parameters` passed through, the outputs. */
export function inferResponse(target: OipTarget, request: OipRequest, outputs: OipOutput[]): OipResponse {
  return {
    model_name: target.model,
    ...(target.version !== undefined ? { model_version: target.version } : {}),
    ...(request.id !== undefined ? { id: request.id } : {}),
    ...(request.parameters ? { parameters: request.parameters } : {}),
    outputs: selectOutputs(outputs, request.outputs),
  };
}
