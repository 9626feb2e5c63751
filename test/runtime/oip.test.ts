/**
 * Open Inference Protocol (V2 REST) conformance, through the real HTTP server, for ONNX, Python and Node models:
 * paths and methods, status codes, the error body `{"error": "<message>"}`, metadata (datatype, shape with -1),
 * tensors (flat and nested data, BOOL / INT64 / FP32 / FP64 / BYTES), shape and datatype checks, `id` and
 * `parameters` passed through, requested outputs, auth, readiness (loaded AND answered once).
 * Spec: kserve/open-inference-protocol, specification/protocol/inference_rest.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { identityOnnx, linearPredict, ONNX_ELEM, writeLinearOnnx } from '../../examples/runtime/onnx-model';
import { describeWithPythonMl, EX, post, start, SYSTEM_PYTHON, tempDir, waitFor, type Started } from './helpers';

const KEY = { primaryKey: 'oip-primary-key', secondaryKey: 'oip-secondary-key' };
const AUTH = { authorization: `Bearer ${KEY.primaryKey}` };

async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(url, { headers });
  return { status: r.status, body: await r.json(), headers: r.headers };
}

async function infer(base: string, request: unknown, model = 'scoring-service', headers: Record<string, string> = AUTH): Promise<{ status: number; body: any }> {
  const r = await post(`${base}/v2/models/${model}/infer`, request, headers);
  return { status: r.status, body: await r.json() };
}

/** An error answer of the protocol: the status, and a body that is exactly `{"error": "<message>"}`. */
function expectError(r: { status: number; body: any }, status: number, message: RegExp): void {
  expect(r.status).toBe(status);
  expect(Object.keys(r.body)).toEqual(['error']);
  expect(typeof r.body.error).toBe('string');
  expect(r.body.error).toMatch(message);
}

function expectClose(actual: number[], expected: number[]): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 4));
}

describe('ONNX model (FP32, dynamic batch dimension)', () => {
  let s: Started;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('oip-onnx');
    writeLinearOnnx(path.join(dir, 'model.onnx'));
    s = await start({ modelDir: dir, keys: KEY, modelName: 'iris', modelVersion: '3', workers: 1 });
  });
  afterAll(async () => {
    await s.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves server metadata, liveness and readiness without a key', async () => {
    const meta = await getJson(`${s.url}/v2`);
    expect(meta.status).toBe(200);
    expect(meta.body).toEqual({ name: expect.any(String), version: expect.any(String), extensions: [] });
    expect(await getJson(`${s.url}/v2/health/live`)).toMatchObject({ status: 200, body: { live: true } });
    expect(await getJson(`${s.url}/v2/health/ready`)).toMatchObject({ status: 200, body: { ready: true } });
    expect(s.server.oipReady).toBe(true);
  });

  it('model metadata: name, versions, platform, tensors with datatype and shape (-1 = variable)', async () => {
    const expected = {
      name: 'iris', versions: ['3'], platform: 'onnx_onnxv1',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 3] }],
    };
    expect(await getJson(`${s.url}/v2/models/iris`)).toMatchObject({ status: 200, body: expected });
    expect(await getJson(`${s.url}/v2/models/iris/versions/3`)).toMatchObject({ status: 200, body: expected });
    expect(await getJson(`${s.url}/v2/models/iris/ready`)).toMatchObject({ status: 200, body: { name: 'iris', ready: true } });
    expect(await getJson(`${s.url}/v2/models/iris/versions/3/ready`)).toMatchObject({ status: 200, body: { name: 'iris', ready: true } });
  });

  it('unknown model, unknown version and unknown routes → 404 {"error"}', async () => {
    for (const p of ['/v2/models/other', '/v2/models/other/ready', '/v2/models/iris/versions/4', '/v2/models/iris/versions/4/ready', '/v2/models/iris/explain', '/v2/repository/index', '/v2/models/iris/versions/3/x']) {
      expectError(await getJson(`${s.url}${p}`), 404, /./);
    }
    expectError(await getJson(`${s.url}/v2/models/other`), 404, /Unknown model 'other'; this server serves 'iris'/);
    expectError(await infer(s.url, { inputs: [] }, 'other'), 404, /Unknown model 'other'/);
    expectError(await infer(s.url, { inputs: [] }, 'iris/versions/9'), 404, /Unknown version '9'/);
    expectError(await getJson(`${s.url}/v2/models/%E0%A4%A`), 400, /percent-encoding/);
  });

  it('infers with flat and nested data alike; id, parameters and model version come back; FP32 outputs', async () => {
    const x = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]];
    const flat = await infer(s.url, { id: 'req-1', parameters: { tag: 'a', n: 2, on: true }, inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4], data: x.flat() }] }, 'iris');
    expect(flat.status).toBe(200);
    expect(flat.body).toMatchObject({ model_name: 'iris', model_version: '3', id: 'req-1', parameters: { tag: 'a', n: 2, on: true } });
    expect(flat.body.outputs).toHaveLength(1);
    const out = flat.body.outputs[0];
    expect(out).toMatchObject({ name: 'output', datatype: 'FP32', shape: [2, 3] });
    expectClose(out.data, linearPredict(x).flat());
    const nested = await infer(s.url, { inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4], data: x }] }, 'iris/versions/3');
    expect(nested.status).toBe(200);
    expect(nested.body.id).toBeUndefined();
    expect(nested.body.parameters).toBeUndefined();
    expect(nested.body.outputs[0].data).toEqual(out.data);
    // Requested outputs; an unknown one is a 400.
    const asked = await infer(s.url, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: x[0] }], outputs: [{ name: 'output', parameters: { p: 1 } }] }, 'iris');
    expect(asked.body.outputs).toEqual([expect.objectContaining({ name: 'output', shape: [1, 3], parameters: { p: 1 } })]);
    expectError(await infer(s.url, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: x[0] }], outputs: [{ name: 'nope' }] }, 'iris'), 400, /Unknown output 'nope'/);
  });

  it('checks datatype, shape, element types and the request structure: 400 {"error"} naming the problem', async () => {
    const t = (o: Record<string, unknown>) => ({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4], ...o }] });
    const cases: Array<[unknown, RegExp]> = [
      [t({ datatype: 'INT64' }), /Input 'input' is FP32 in the model; got INT64/],
      [t({ datatype: 'FLOAT' }), /datatype must be one of BOOL, .*BYTES/],
      [t({ shape: [1, 3] }), /must have size 4 on dimension 1/],
      [t({ shape: [4] }), /must have 2 dimensions/],
      [t({ shape: [2, 4] }), /shape \[2, 4\] \(8 elements\) but 4 data elements/],
      [t({ shape: [1, -4] }), /shape must be a list of at most 32 non-negative integers/],
      [t({ data: [[1, 2], [3, 4]] }), /nested data does not match shape \[1, 4\]/],
      [t({ data: [1, 2, '3', 4] }), /is FP32: its data must be numbers/],
      [t({ data: 'abc' }), /data must be a list/],
      [t({ name: 'x' }), /Unknown input 'x'/],
      [t({ parameters: { a: { b: 1 } } }), /parameters\.a must be a string, number or boolean/],
      [{ inputs: [] }, /"inputs" must be a non-empty list/],
      [{ id: 7, inputs: t({}).inputs }, /"id" must be a string/],
      [[1, 2], /Send an inference request/],
      ['{"inputs": [', /not valid JSON/],
      [`{"inputs": ${'['.repeat(100)}${']'.repeat(100)}}`, /nested more than 64 levels/],
    ];
    for (const [body, message] of cases) expectError(await infer(s.url, body, 'iris'), 400, message);
  });

  it('infer needs the key (401 with WWW-Authenticate) and POST (405); metadata is GET only', async () => {
    const body = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] };
    const r = await post(`${s.url}/v2/models/iris/infer`, body);
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Bearer');
    expectError({ status: r.status, body: await r.json() }, 401, /Authorization: Bearer/);
    expect((await infer(s.url, body, 'iris', { authorization: `Bearer ${KEY.secondaryKey}` })).status).toBe(200);
    const get = await fetch(`${s.url}/v2/models/iris/infer`, { headers: AUTH });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expectError({ status: get.status, body: await get.json() }, 405, /Use POST/);
    const postMeta = await post(`${s.url}/v2/models/iris`, {});
    expect(postMeta.status).toBe(405);
    expect(postMeta.headers.get('allow')).toBe('GET');
    expect(Object.keys(await postMeta.json())).toEqual(['error']);
  });

  it('a body over the limit → 413 {"error"}', async () => {
    const small = await start({ modelDir: dir, maxBodyBytes: 1000 });
    try {
      const big = { inputs: [{ name: 'input', datatype: 'FP32', shape: [100, 4], data: Array(400).fill(1.5) }] };
      expectError(await infer(small.url, big, 'scoring-service', {}), 413, /over the limit of 1000 bytes/);
    } finally {
      await small.server.stop();
    }
  });

  it('dynamic batching stacks /infer and /score requests into one model run, each gets its own rows', async () => {
    // --max-batch-delay-ms 60 s: a batch starts only once 8 requests are queued, so the 8 below run together
    // (the warm-up at start runs alone and is not counted).
    const b = await start({ modelDir: dir, workers: 1, maxConcurrent: 8, maxWaitMs: 60_000, maxBatchSize: 8, maxBatchDelayMs: 60_000 });
    try {
      const rows = Array.from({ length: 8 }, (_, i) => [[i, 1, 2, 3]]);
      const answers = await Promise.all(rows.map((x, i) => (i % 2
        ? post(`${b.url}/score`, { data: x }).then(async (r) => ({ status: r.status, out: (await r.json()).output.flat() as number[] }))
        : infer(b.url, { id: `b${i}`, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: x.flat() }] }, 'scoring-service', {})
          .then((r) => { expect(r.body.id).toBe(`b${i}`); return { status: r.status, out: r.body.outputs[0].data as number[] }; }))));
      answers.forEach((a, i) => {
        expect(a.status).toBe(200);
        expectClose(a.out, linearPredict(rows[i]).flat());
      });
      const metrics = await (await fetch(`${b.url}/metrics`)).text();
      expect(metrics).toMatch(/^scoring_batch_size_count 1$/m);
      expect(metrics).toMatch(/^scoring_batch_size_sum 8$/m);
      expect(metrics).toMatch(/^scoring_requests_total\{route="infer",status="200"\} 4$/m);
      expect(metrics).toMatch(/^scoring_requests_total\{route="score",status="200"\} 4$/m);
    } finally {
      await b.server.stop();
    }
  });
});

describe('ONNX model served from worker processes (--onnx-worker-processes)', () => {
  it('answers /infer like the in-process model (metadata, tensors, errors)', async () => {
    const dir = tempDir('oip-onnx-proc');
    writeLinearOnnx(path.join(dir, 'model.onnx'));
    const s = await start({ modelDir: dir, onnxWorkerProcesses: true, workers: 1 });
    try {
      expect(await getJson(`${s.url}/v2/health/ready`)).toMatchObject({ status: 200, body: { ready: true } });
      expect((await getJson(`${s.url}/v2/models/scoring-service`)).body).toMatchObject({ platform: 'onnx_onnxv1', inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }] });
      const x = [[1, 2, 3, 4], [0, 0, 0, 1]];
      const r = await infer(s.url, { id: 'w1', inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4], data: x }] }, 'scoring-service', {});
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ model_name: 'scoring-service', id: 'w1', outputs: [{ name: 'output', datatype: 'FP32', shape: [2, 3] }] });
      expectClose(r.body.outputs[0].data, linearPredict(x).flat());
      expectError(await infer(s.url, { inputs: [{ name: 'input', datatype: 'FP64', shape: [1, 4], data: [1, 2, 3, 4] }] }, 'scoring-service', {}), 400, /is FP32 in the model; got FP64/);
    } finally {
      await s.server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ONNX model with INT64, BOOL and BYTES tensors', () => {
  let s: Started;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('oip-types');
    fs.writeFileSync(path.join(dir, 'model.onnx'), identityOnnx([
      { name: 'ids', elemType: ONNX_ELEM.int64, dims: ['N', 2] },
      { name: 'mask', elemType: ONNX_ELEM.bool, dims: ['N'] },
      { name: 'words', elemType: ONNX_ELEM.string, dims: ['N'] },
    ]));
    s = await start({ modelDir: dir, maxBatchSize: 1 });
  });
  afterAll(async () => {
    await s.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('declares and round-trips each datatype', async () => {
    expect((await getJson(`${s.url}/v2/models/scoring-service`)).body).toMatchObject({
      inputs: [{ name: 'ids', datatype: 'INT64', shape: [-1, 2] }, { name: 'mask', datatype: 'BOOL', shape: [-1] }, { name: 'words', datatype: 'BYTES', shape: [-1] }],
      outputs: [{ name: 'ids_out', datatype: 'INT64', shape: [-1, 2] }, { name: 'mask_out', datatype: 'BOOL', shape: [-1] }, { name: 'words_out', datatype: 'BYTES', shape: [-1] }],
    });
    // The warm-up ran the model with zeros / false / "" of the declared shape: ready.
    expect(await getJson(`${s.url}/v2/health/ready`)).toMatchObject({ status: 200, body: { ready: true } });
    const r = await infer(s.url, {
      inputs: [
        { name: 'ids', datatype: 'INT64', shape: [2, 2], data: [[1, 9007199254740991], [-3, 4]] },
        { name: 'mask', datatype: 'BOOL', shape: [2], data: [true, false] },
        { name: 'words', datatype: 'BYTES', shape: [2], data: ['héllo', ''] },
      ],
    }, 'scoring-service', {});
    expect(r.status).toBe(200);
    expect(r.body.outputs).toEqual([
      { name: 'ids_out', datatype: 'INT64', shape: [2, 2], data: [1, 9007199254740991, -3, 4] },
      { name: 'mask_out', datatype: 'BOOL', shape: [2], data: [true, false] },
      { name: 'words_out', datatype: 'BYTES', shape: [2], data: ['héllo', ''] },
    ]);
  });

  it('rejects elements that do not fit the datatype, and missing inputs', async () => {
    const base = [
      { name: 'ids', datatype: 'INT64', shape: [1, 2], data: [1, 2] },
      { name: 'mask', datatype: 'BOOL', shape: [1], data: [true] },
      { name: 'words', datatype: 'BYTES', shape: [1], data: ['a'] },
    ];
    const withInput = (i: number, o: Record<string, unknown>) => ({ inputs: base.map((b, k) => (k === i ? { ...b, ...o } : b)) });
    expectError(await infer(s.url, withInput(0, { data: [1.5, 2] }), 'scoring-service', {}), 400, /'ids' is INT64: its data must be integers/);
    expectError(await infer(s.url, withInput(1, { data: [1] }), 'scoring-service', {}), 400, /'mask' is BOOL: its data must be true \/ false/);
    expectError(await infer(s.url, withInput(2, { data: [3] }), 'scoring-service', {}), 400, /'words' is BYTES: its data must be strings/);
    expectError(await infer(s.url, withInput(1, { datatype: 'UINT8' }), 'scoring-service', {}), 400, /'mask' is BOOL in the model; got UINT8/);
    expectError(await infer(s.url, { inputs: base.slice(0, 2) }, 'scoring-service', {}), 400, /Missing input\(s\): words/);
    expectError(await infer(s.url, { inputs: [base[0], base[0]] }, 'scoring-service', {}), 400, /'ids' is given twice/);
  });
});

describe('Node entry scripts', () => {
  let s: Started;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('oip-node');
    fs.writeFileSync(path.join(dir, 'list.js'), [
      '// A script whose input sample is a plain list: run() gets the one input itself.',
      'exports.inputSample = [[0.5, 1.5]];',
      'exports.outputSample = [2.5];',
      'exports.run = (rows) => {',
      '  if (rows.length === 3) return [{ not: "a tensor" }];',
      '  if (rows.length === 4) return [[1, 2], [3]];',
      '  if (rows.length === 5) throw new Error("five rows are too many");',
      '  return rows.map((r) => r.reduce((a, b) => a + b, 0));',
      '};',
    ].join('\n'));
    s = await start({ entryScript: path.join(EX, 'node/score.js'), env: { FACTOR: '10' }, workers: 2, keys: KEY });
  });
  afterAll(async () => {
    await s.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('metadata from inputSample / outputSample; named inputs become run({name: nested data}); outputs become tensors', async () => {
    expect(await getJson(`${s.url}/v2/models/scoring-service`)).toMatchObject({
      status: 200,
      body: { name: 'scoring-service', platform: 'node_script', inputs: [{ name: 'data', datatype: 'INT64', shape: [-1] }], outputs: [{ name: 'result', datatype: 'INT64', shape: [-1] }] },
    });
    expect(await getJson(`${s.url}/v2/health/ready`)).toMatchObject({ status: 200, body: { ready: true } });
    const r = await infer(s.url, { id: 'n1', parameters: { x: 'y' }, inputs: [{ name: 'data', datatype: 'INT64', shape: [3], data: [1, 2, 3] }], outputs: [{ name: 'result' }] });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ model_name: 'scoring-service', id: 'n1', parameters: { x: 'y' }, outputs: [{ name: 'result', datatype: 'INT64', shape: [3], data: [10, 20, 30] }] });
    // Without `outputs`, every property of the result is an output (pid: a single number → shape [1]).
    const all = await infer(s.url, { inputs: [{ name: 'data', datatype: 'FP64', shape: [2], data: [0.5, 1] }] });
    expect(all.body.outputs).toEqual([
      { name: 'result', datatype: 'INT64', shape: [2], data: [5, 10] },
      { name: 'pid', datatype: 'INT64', shape: [1], data: [expect.any(Number)] },
    ]);
    expectError(await infer(s.url, { inputs: [{ name: 'other', datatype: 'INT64', shape: [1], data: [1] }] }), 400, /Unknown input 'other'; the script's inputs are data/);
    expectError(await infer(s.url, { inputs: [{ name: 'data', datatype: 'INT64', shape: [1], data: [1] }], outputs: [{ name: 'x' }] }), 400, /Unknown output 'x'/);
    expectError(await infer(s.url, { inputs: [{ name: 'data', datatype: 'INT64', shape: [1], data: [1] }] }, 'scoring-service', {}), 401, /Bearer/);
  });

  it('a plain-list sample: run() gets the tensor itself; results that are no tensor → 500, run() errors → 500, all {"error"}', async () => {
    const list = await start({ entryScript: path.join(dir, 'list.js') });
    try {
      expect((await getJson(`${list.url}/v2/models/scoring-service`)).body).toMatchObject({
        inputs: [{ name: 'input', datatype: 'FP64', shape: [-1, 2] }], outputs: [{ name: 'output0', datatype: 'FP64', shape: [-1] }],
      });
      const rows = (n: number) => ({ inputs: [{ name: 'input', datatype: 'FP64', shape: [n, 2], data: Array(n * 2).fill(1.25) }] });
      const ok = await infer(list.url, rows(2), 'scoring-service', {});
      expect(ok.body.outputs).toEqual([{ name: 'output0', datatype: 'FP64', shape: [2], data: [2.5, 2.5] }]);
      expectError(await infer(list.url, rows(3), 'scoring-service', {}), 500, /not a tensor: output 'output0' holds an object/);
      expectError(await infer(list.url, rows(4), 'scoring-service', {}), 500, /not a tensor: output 'output0' is not a rectangular list/);
      expectError(await infer(list.url, rows(5), 'scoring-service', {}), 500, /five rows are too many/);
      expectError(await infer(list.url, { inputs: [rows(1).inputs[0], { ...rows(1).inputs[0], name: 'b' }] }, 'scoring-service', {}), 400, /Unknown input 'b'/);
    } finally {
      await list.server.stop();
    }
  });
});

describe('readiness: loaded AND answered once, never just "the server is up"', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('oip-ready');
    fs.writeFileSync(path.join(dir, 'slow.js'), [
      'const fs = require("fs");',
      '// init() waits (bounded) for a file the test creates; the sample run fails until a second file exists.',
      'exports.init = async () => { for (let i = 0; i < 600 && !fs.existsSync(process.env.GO); i++) await new Promise((r) => setTimeout(r, 50)); };',
      'exports.inputSample = { x: [1] };',
      'exports.run = (input) => { if (!fs.existsSync(process.env.HEAL)) throw new Error("not yet"); return { y: input.x }; };',
    ].join('\n'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is not ready while init() runs, nor after init() while the warm-up failed; ready once the model answered', async () => {
    const go = path.join(dir, 'go');
    const heal = path.join(dir, 'heal');
    const s = await start({ entryScript: path.join(dir, 'slow.js'), env: { GO: go, HEAL: heal } }, false);
    try {
      const live = await getJson(`${s.url}/v2/health/live`);
      expect(live).toMatchObject({ status: 200, body: { live: true } });
      const loading = await getJson(`${s.url}/v2/health/ready`);
      expect(loading.status).toBe(400);
      expect(loading.body).toMatchObject({ ready: false, error: expect.stringContaining('init()') });
      expect((await getJson(`${s.url}/v2/models/scoring-service/ready`)).body).toMatchObject({ name: 'scoring-service', ready: false });
      fs.writeFileSync(go, '');
      await s.server.initialized;
      // init() succeeded (GET / says Healthy) but the warm-up run failed: not ready.
      expect((await fetch(`${s.url}/`)).status).toBe(200);
      const warm = await getJson(`${s.url}/v2/health/ready`);
      expect(warm).toMatchObject({ status: 400, body: { ready: false, error: expect.stringMatching(/not answered yet/) } });
      expect(s.server.oipReady).toBe(false);
      fs.writeFileSync(heal, '');
      expect((await infer(s.url, { inputs: [{ name: 'x', datatype: 'INT64', shape: [1], data: [7] }] }, 'scoring-service', {})).body.outputs)
        .toEqual([{ name: 'y', datatype: 'INT64', shape: [1], data: [7] }]);
      expect(await getJson(`${s.url}/v2/health/ready`)).toMatchObject({ status: 200, body: { ready: true } });
      expect(await getJson(`${s.url}/v2/models/scoring-service/ready`)).toMatchObject({ status: 200, body: { name: 'scoring-service', ready: true } });
    } finally {
      fs.writeFileSync(go, '');
      await s.server.stop();
    }
  });

  it('a failed init() is never ready', async () => {
    const s = await start({ entryScript: path.join(EX, 'python/faults/score.py'), env: { FAIL_INIT: '1' } });
    try {
      const r = await getJson(`${s.url}/v2/health/ready`);
      expect(r).toMatchObject({ status: 400, body: { ready: false, error: expect.stringContaining('model file is corrupt') } });
      expectError(await getJson(`${s.url}/v2/models/scoring-service`), 503, /not loaded/);
    } finally {
      await s.server.stop();
    }
  });
});

describe('Python entry scripts', () => {
  let s: Started;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('oip-py');
    fs.writeFileSync(path.join(dir, 'score.py'), [
      'from inference_schema.schema_decorators import input_schema, output_schema',
      'from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType',
      'def init():',
      '    pass',
      "@input_schema('x', StandardPythonParameterType([[1.5, 2.5]]))",
      "@input_schema('flag', StandardPythonParameterType(True))",
      "@input_schema('words', StandardPythonParameterType(['a']))",
      "@output_schema(StandardPythonParameterType({'sums': [4.0], 'n': 1}))",
      'def run(x, flag, words):',
      "    if words == ['nested']:",
      "        return {'sums': {'a': 1}}",
      "    if words == ['boom']:",
      "        raise ValueError('boom')",
      "    return {'sums': [sum(r) for r in x], 'n': len(x), 'flag': [flag], 'upper': [w.upper() for w in words]}",
    ].join('\n'));
    s = await start({ entryScript: path.join(dir, 'score.py'), python: SYSTEM_PYTHON, workers: 2 });
  });
  afterAll(async () => {
    await s.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const request = (words: string[]) => ({
    id: 'p1',
    inputs: [
      { name: 'x', datatype: 'FP64', shape: [2, 2], data: [1, 2, 3, 4.5] },
      { name: 'flag', datatype: 'BOOL', shape: [1], data: [false] },
      { name: 'words', datatype: 'BYTES', shape: [words.length], data: words },
    ],
  });

  it('metadata from the schema samples (a single-value sample is shape [1]); ready after the warm-up', async () => {
    expect(await getJson(`${s.url}/v2/models/scoring-service`)).toMatchObject({
      status: 200,
      body: {
        platform: 'python_script',
        inputs: expect.arrayContaining([
          { name: 'x', datatype: 'FP64', shape: [-1, 2] }, { name: 'flag', datatype: 'BOOL', shape: [1] }, { name: 'words', datatype: 'BYTES', shape: [-1] },
        ]),
        outputs: [{ name: 'sums', datatype: 'FP64', shape: [-1] }, { name: 'n', datatype: 'INT64', shape: [1] }],
      },
    });
    expect(await getJson(`${s.url}/v2/health/ready`)).toMatchObject({ status: 200, body: { ready: true } });
  });

  it('named inputs become run(**inputs) (BOOL, BYTES, FP64 nested), outputs become tensors', async () => {
    const r = await infer(s.url, request(['ab', 'ç']), 'scoring-service', {});
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      model_name: 'scoring-service', id: 'p1',
      outputs: [
        { name: 'sums', datatype: 'FP64', shape: [2], data: [3, 7.5] },
        { name: 'n', datatype: 'INT64', shape: [1], data: [2] },
        { name: 'flag', datatype: 'BOOL', shape: [1], data: [false] },
        { name: 'upper', datatype: 'BYTES', shape: [2], data: ['AB', 'Ç'] },
      ],
    });
  });

  it('not a tensor → 500; run() error → 500; bad input → 400; all {"error"}', async () => {
    expectError(await infer(s.url, request(['nested']), 'scoring-service', {}), 500, /not a tensor: output 'sums' holds an object/);
    expectError(await infer(s.url, request(['boom']), 'scoring-service', {}), 500, /ValueError: boom/);
    const two = request(['a']);
    two.inputs[1] = { name: 'flag', datatype: 'BOOL', shape: [2], data: [true, false] };
    expectError(await infer(s.url, two, 'scoring-service', {}), 400, /'flag' is a single value; send shape \[1\]/);
    expectError(await infer(s.url, { inputs: request(['a']).inputs.slice(0, 2) }, 'scoring-service', {}), 400, /Missing input\(s\): words/);
  });
});

describeWithPythonMl('Python entry script with numpy samples (seed example)', () => {
  it('NumpyParameterType sample → FP64 [-1, 1]; infer runs the model', async () => {
    const s = await start({ entryScript: path.join(EX, 'python/schema/score.py'), modelDir: path.join(EX, 'python/schema/model'), python: SYSTEM_PYTHON });
    try {
      expect((await getJson(`${s.url}/v2/models/scoring-service`)).body).toMatchObject({
        inputs: [{ name: 'data', datatype: 'FP64', shape: [-1, 1] }], outputs: [{ name: 'output0', datatype: 'FP64', shape: [-1] }],
      });
      expect(await getJson(`${s.url}/v2/health/ready`)).toMatchObject({ status: 200, body: { ready: true } });
      const r = await infer(s.url, { inputs: [{ name: 'data', datatype: 'FP32', shape: [2, 1], data: [1.8, 3] }] }, 'scoring-service', {});
      expect(r.status).toBe(200);
      expect(r.body.outputs[0]).toMatchObject({ name: 'output0', datatype: 'FP64', shape: [2] });
      const direct = await (await post(`${s.url}/score`, { data: [[1.8], [3]] })).json();
      expect(r.body.outputs[0].data).toEqual(direct);
    } finally {
      await s.server.stop();
    }
  });
});
