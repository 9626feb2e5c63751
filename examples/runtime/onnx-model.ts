/**
 * Writes a tiny ONNX model with no ML framework: y = x · W + b (MatMul + Add), x float[N, inputs],
 * y float[N, outputs]. The protobuf is encoded by hand (a few ModelProto/GraphProto fields), so tests and
 * benchmarks get a real model file without downloading weights.
 */
import * as fs from 'node:fs';

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

const cat = (parts: Buffer[]) => Buffer.concat(parts);
const key = (field: number, wire: number) => varint((field << 3) | wire);
const int = (field: number, value: number) => cat([key(field, 0), varint(value)]);
const bytes = (field: number, data: Buffer) => cat([key(field, 2), varint(data.length), data]);
const str = (field: number, s: string) => bytes(field, Buffer.from(s, 'utf8'));

function tensor(name: string, dims: number[], values: ArrayLike<number>): Buffer {
  const raw = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) raw.writeFloatLE(values[i], i * 4);
  return cat([...dims.map((d) => int(1, d)), int(2, 1), str(8, name), bytes(9, raw)]);
}

function valueInfo(name: string, dims: Array<number | string>, elemType = 1): Buffer {
  const shape = cat(dims.map((d) => bytes(1, typeof d === 'number' ? int(1, d) : str(2, d))));
  const tensorType = cat([int(1, elemType), bytes(2, shape)]);
  return cat([str(1, name), bytes(2, bytes(1, tensorType))]);
}

function node(op: string, inputs: string[], outputs: string[], name: string): Buffer {
  return cat([...inputs.map((i) => str(1, i)), ...outputs.map((o) => str(2, o)), str(3, name), str(4, op)]);
}

function modelProto(graph: Buffer[]): Buffer {
  return cat([int(1, 8), str(2, 'model-deploy-flow'), bytes(7, cat(graph)), bytes(8, cat([str(1, ''), int(2, 13)]))]);
}

export interface LinearModel {
  weights: number[][]; // [inputs][outputs]
  bias: number[]; // [outputs]
}

/** A deterministic 4 → 3 linear model (think iris features → class scores). */
export const SAMPLE_LINEAR: LinearModel = {
  weights: [
    [0.5, -0.25, 0.125],
    [1, 0.5, -1],
    [-0.5, 2, 0.25],
    [0.75, 0, 1.5],
  ],
  bias: [0.1, -0.2, 0.3],
};

export function linearOnnx(model: LinearModel = SAMPLE_LINEAR): Buffer {
  const nIn = model.weights.length;
  const nOut = model.bias.length;
  return modelProto([
    bytes(1, node('MatMul', ['input', 'W'], ['mm'], 'matmul')),
    bytes(1, node('Add', ['mm', 'B'], ['output'], 'add')),
    str(2, 'linear'),
    bytes(5, tensor('W', [nIn, nOut], model.weights.flat())),
    bytes(5, tensor('B', [nOut], model.bias)),
    bytes(11, valueInfo('input', ['N', nIn])),
    bytes(12, valueInfo('output', ['N', nOut])),
  ]);
}

/** The expected output of the linear model (for assertions). */
export function linearPredict(x: number[][], model: LinearModel = SAMPLE_LINEAR): number[][] {
  return x.map((row) => model.bias.map((b, j) => row.reduce((s, v, i) => s + v * model.weights[i][j], b)));
}

/**
 * A multi-layer perceptron (MatMul + Add + Relu per hidden layer) with deterministic pseudo-random weights:
 * `sizes = [64, 1024, 1024, 10]` gives ~1.1 M parameters — a small model with real compute, for benchmarks.
 */
export function mlpOnnx(sizes: number[], seed = 1): Buffer {
  let state = seed >>> 0;
  const rand = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
  const nodes: Buffer[] = [];
  const inits: Buffer[] = [];
  let current = 'input';
  for (let l = 0; l < sizes.length - 1; l++) {
    const [a, b] = [sizes[l], sizes[l + 1]];
    const scale = 2 / Math.sqrt(a);
    inits.push(bytes(5, tensor(`W${l}`, [a, b], Float64Array.from({ length: a * b }, () => rand() * scale))));
    inits.push(bytes(5, tensor(`B${l}`, [b], Float64Array.from({ length: b }, () => rand() * 0.1))));
    const last = l === sizes.length - 2;
    nodes.push(bytes(1, node('MatMul', [current, `W${l}`], [`mm${l}`], `matmul${l}`)));
    nodes.push(bytes(1, node('Add', [`mm${l}`, `B${l}`], [last ? 'output' : `add${l}`], `add${l}`)));
    if (!last) {
      nodes.push(bytes(1, node('Relu', [`add${l}`], [`relu${l}`], `relu${l}`)));
      current = `relu${l}`;
    }
  }
  return modelProto([
    ...nodes,
    str(2, 'mlp'),
    ...inits,
    bytes(11, valueInfo('input', ['N', sizes[0]])),
    bytes(12, valueInfo('output', ['N', sizes[sizes.length - 1]])),
  ]);
}

/** ONNX element types (TensorProto.DataType) of `identityOnnx`'s tensors. */
export const ONNX_ELEM = { float: 1, uint8: 2, int8: 3, int32: 6, int64: 7, string: 8, bool: 9, double: 11 } as const;

/**
 * A model that passes each input through unchanged (one Identity node per tensor): input `<name>` → output
 * `<name>_out`, same element type and shape. For tests of tensor types other than float (int64, bool, string).
 */
export function identityOnnx(tensors: Array<{ name: string; elemType: number; dims: Array<number | string> }>): Buffer {
  return modelProto([
    ...tensors.map((t) => bytes(1, node('Identity', [t.name], [`${t.name}_out`], `id_${t.name}`))),
    str(2, 'identity'),
    ...tensors.map((t) => bytes(11, valueInfo(t.name, t.dims, t.elemType))),
    ...tensors.map((t) => bytes(12, valueInfo(`${t.name}_out`, t.dims, t.elemType))),
  ]);
}

export function writeLinearOnnx(file: string, model: LinearModel = SAMPLE_LINEAR): void {
  fs.writeFileSync(file, linearOnnx(model));
}
