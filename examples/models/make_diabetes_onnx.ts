/**
 * Writes `diabetes-onnx/model.onnx`: the diabetes linear model (coefficients from `diabetes-node/model.json`,
 * trained by train_diabetes.py) as an ONNX graph (MatMul + Add, float32), served by the runtime with no script.
 *
 *   npm run build && node dist/examples/models/make_diabetes_onnx.js
 */
import * as fs from 'fs';
import * as path from 'path';
import { linearOnnx } from '../runtime/onnx-model';

const root = path.resolve(__dirname, '..', '..', '..', 'examples', 'models');
const source = fs.existsSync(path.join(root, 'diabetes-node', 'model.json')) ? root : path.resolve(__dirname);
const model = JSON.parse(fs.readFileSync(path.join(source, 'diabetes-node', 'model.json'), 'utf8')) as { intercept: number; coef: number[] };
const out = path.join(source, 'diabetes-onnx', 'model.onnx');
fs.writeFileSync(out, linearOnnx({ weights: model.coef.map((c) => [c]), bias: [model.intercept] }));
process.stdout.write(`${out}\n`);
