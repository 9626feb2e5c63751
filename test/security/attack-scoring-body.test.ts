/**
 * Nesting bombs in scoring bodies, through the runtime's HTTP front (regression battery): a body nested deeper
 * than a parser can take is bad input — 400 with a code, never a 500 `RunFailed` that blames the script — and the
 * service keeps answering. Python parsed `/score` bodies (scripts with a schema) and `/batch` bodies with
 * `json.loads`, whose RecursionError became 500 RunFailed; Node scripts and ONNX models (V8's JSON parser is not
 * recursive) are checked to hold. A Node script's schema sample nested too deep fails init() with a message that says so.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { post, ROOT, start, SYSTEM_PYTHON, tempDir, type Started } from '../runtime/helpers';

const PY_SCHEMA = `from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

def init():
    pass

@input_schema("data", StandardPythonParameterType([[1.0, 2.0]]))
@output_schema(StandardPythonParameterType([1.0]))
def run(data):
    return [float(len(data))]
`;

const JS = `exports.init = () => {};
exports.run = (input) => (Array.isArray(input) ? input.length : [input && input.data ? 1 : 0]);
`;

const deep = (n: number) => `{"data":${'['.repeat(n)}1${']'.repeat(n)}}`;
const deepBatch = (n: number) => `{"mini_batch":${'['.repeat(n)}${']'.repeat(n)}}`;

async function answer(r: Response): Promise<{ status: number; code?: string; message?: string }> {
  const text = await r.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: r.status, code: body?.error?.code, message: body?.error?.message };
}

describe('Python scripts', () => {
  let s: Started;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('deep-py');
    fs.writeFileSync(path.join(dir, 'score.py'), PY_SCHEMA);
    s = await start({ entryScript: path.join(dir, 'score.py'), python: SYSTEM_PYTHON });
  }, 60_000);
  afterAll(async () => {
    await s?.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a /score body nested past the recursion limit → 400 InvalidInput naming the nesting; the service keeps answering', async () => {
    for (const n of [5_000, 1_000_000]) {
      const r = await answer(await post(`${s.url}/score`, deep(n)));
      expect({ n, ...r }).toEqual({ n, status: 400, code: 'InvalidInput', message: expect.stringMatching(/nested too deeply/) });
    }
    const ok = await post(`${s.url}/score`, { data: [[1, 2], [3, 4]] });
    expect([ok.status, await ok.json()]).toEqual([200, [2]]);
  }, 60_000);

  test('a /batch body nested past the recursion limit → 400 InvalidMiniBatch; the service keeps answering', async () => {
    const r = await answer(await post(`${s.url}/batch`, deepBatch(100_000)));
    expect(r).toEqual({ status: 400, code: 'InvalidMiniBatch', message: expect.stringMatching(/nested too deeply/) });
    const ok = await post(`${s.url}/batch`, { mini_batch: [[1, 2]] });
    expect(ok.status).toBe(200);
    expect((await ok.json()).count).toBe(1);
  }, 60_000);
});

describe('Node scripts and ONNX models hold', () => {
  test('a node script gets the deep body (V8 parses it iteratively) and answers; the service keeps answering', async () => {
    const dir = tempDir('deep-js');
    fs.writeFileSync(path.join(dir, 'score.js'), JS);
    const s = await start({ entryScript: path.join(dir, 'score.js') });
    try {
      for (const n of [5_000, 1_000_000]) expect((await post(`${s.url}/score`, deep(n))).status).toBe(200);
      expect((await post(`${s.url}/batch`, deepBatch(100_000))).status).toBe(200);
      expect((await fetch(`${s.url}/`)).status).toBe(200);
    } finally {
      await s.server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test('a node script whose inputSample is nested 100000 deep fails init() saying so (was a stack overflow)', async () => {
    const dir = tempDir('deep-sample');
    fs.writeFileSync(path.join(dir, 'score.js'), `let x = [1];\nfor (let i = 0; i < 100000; i++) x = [x];\nexports.init = () => {};\nexports.run = () => 1;\nexports.inputSample = { data: x };\n`);
    const s = await start({ entryScript: path.join(dir, 'score.js') });
    try {
      const r = await answer(await fetch(`${s.url}/`));
      expect(r).toEqual({ status: 503, code: 'InitFailed', message: expect.stringMatching(/schema sample .* nested more than 64 levels deep/) });
    } finally {
      await s.server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test('an ONNX model refuses a deep body as a shape error (400 InvalidInput) and keeps scoring', async () => {
    const s = await start({ modelDir: path.join(ROOT, 'examples/models/diabetes-onnx') });
    try {
      for (const n of [5_000, 1_000_000]) {
        const r = await answer(await post(`${s.url}/score`, deep(n)));
        expect({ n, status: r.status, code: r.code }).toEqual({ n, status: 400, code: 'InvalidInput' });
      }
      const ok = await post(`${s.url}/score`, { data: [[0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, -0.002, 0.02, -0.02]] });
      expect(ok.status).toBe(200);
    } finally {
      await s.server.stop();
    }
  }, 60_000);
});
