/**
 * Writes a tiny ONNX model with no ML framework: y = x · W + b (MatMul + Add), x float[N, inputs],
 * y float[N, outputs]. The protobuf is encoded by hand (a few ModelProto/GraphProto fields), so tests and
 * benchmarks get a real model file without downloading weights.
 */
import * as fs from 'node:fs';

function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

const key = (field: number, wire: number) => varint((field << 3) | wire);
const int = (field: number, value: number) => [...key(field, 0), ...varint(value)];
const bytes = (field: number, data: number[] | Uint8Array) => [...key(field, 2), ...varint(data.length), ...data];
const str = (field: number, s: string) => bytes(field, [...Buffer.from(s, 'utf8')]);

function tensor(name: string, dims: number[], values: number[]): number[] {
  const raw = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => raw.writeFloatLE(v, i * 4));
  return [...dims.flatMap((d) => int(1, d)), ...int(2, 1), ...str(8, name), ...bytes(9, raw)];
}

function valueInfo(name: string, dims: Array<number | string>): number[] {
  const shape = dims.flatMap((d) => bytes(1, typeof d === 'number' ? int(1, d) : str(2, d)));
  const tensorType = [...int(1, 1), ...bytes(2, shape)];
  return [...str(1, name), ...bytes(2, bytes(1, tensorType))];
}

function node(op: string, inputs: string[], outputs: string[], name: string): number[] {
  return [...inputs.flatMap((i) => str(1, i)), ...outputs.flatMap((o) => str(2, o)), ...str(3, name), ...str(4, op)];
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
  const graph = [
    ...bytes(1, node('MatMul', ['input', 'W'], ['mm'], 'matmul')),
    ...bytes(1, node('Add', ['mm', 'B'], ['output'], 'add')),
    ...str(2, 'linear'),
    ...bytes(5, tensor('W', [nIn, nOut], model.weights.flat())),
    ...bytes(5, tensor('B', [nOut], model.bias)),
    ...bytes(11, valueInfo('input', ['N', nIn])),
    ...bytes(12, valueInfo('output', ['N', nOut])),
  ];
  const modelProto = [...int(1, 8), ...str(2, 'model-deploy-flow'), ...bytes(7, graph), ...bytes(8, [...str(1, ''), ...int(2, 13)])];
  return Buffer.from(modelProto);
}

/** The expected output of the linear model (for assertions). */
export function linearPredict(x: number[][], model: LinearModel = SAMPLE_LINEAR): number[][] {
  return x.map((row) => model.bias.map((b, j) => row.reduce((s, v, i) => s + v * model.weights[i][j], b)));
}

export function writeLinearOnnx(file: string, model: LinearModel = SAMPLE_LINEAR): void {
  fs.writeFileSync(file, linearOnnx(model));
}
