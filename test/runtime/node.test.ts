/** Node worker (score.js / .mjs / .ts / raw) and ONNX models with no script. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { linearPredict, writeLinearOnnx } from '../../examples/runtime/onnx-model';
import { EX, post, start, tempDir, type Started } from './helpers';

const node = (p: string) => path.join(EX, 'node', p);

describe('score.js', () => {
  let s: Started;
  beforeAll(async () => {
    s = await start({ entryScript: node('score.js'), env: { FACTOR: '10' }, workers: 2 });
  });
  afterAll(() => s.server.stop());

  it('runs init() then run(parsed JSON) and returns JSON', async () => {
    expect((await fetch(`${s.url}/`)).status).toBe(200);
    const res = await post(`${s.url}/score`, { data: [1, 2] });
    expect(res.status).toBe(200);
    expect((await res.json()).result).toEqual([10, 20]);
  });

  it('builds the swagger from inputSample / outputSample', async () => {
    const doc = await (await fetch(`${s.url}/swagger.json`)).json();
    expect(doc.definitions.ServiceInput).toEqual({
      type: 'object', properties: { data: { type: 'array', items: { type: 'integer', format: 'int64' } } }, required: ['data'], example: { data: [1, 2, 3] },
    });
    expect(doc.definitions.ServiceOutput.example).toEqual({ result: [3, 6, 9] });
    // The service is plain HTTP: the swagger says so (it said https before).
    expect(doc.schemes).toEqual(['http']);
  });

  it('answers 400 for a body that is not JSON, 500 for a run() error', async () => {
    const bad = await post(`${s.url}/score`, 'nope');
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.code).toBe('InvalidInput');
    const err = await post(`${s.url}/score`, { other: 1 });
    expect(err.status).toBe(500);
    expect((await err.json()).error).toEqual({ code: 'RunFailed', message: "TypeError: Cannot read properties of undefined (reading 'map')" });
  });
});

describe('score.mjs, score.ts, raw.js', () => {
  let mjs: Started;
  let ts: Started;
  let raw: Started;
  beforeAll(async () => {
    [mjs, ts, raw] = await Promise.all([
      start({ entryScript: node('score.mjs') }),
      start({ entryScript: node('score.ts') }),
      start({ entryScript: node('raw.js') }),
    ]);
  });
  afterAll(() => Promise.all([mjs.server.stop(), ts.server.stop(), raw.server.stop()]));

  it('an ES module with an async run()', async () => {
    expect(await (await post(`${mjs.url}/score`, { text: 'abc' })).json()).toEqual({ upper: 'ABC' });
    expect((await fetch(`${mjs.url}/swagger.json`)).status).toBe(404);
  });

  it('a TypeScript script, including the batch entry', async () => {
    expect(await (await post(`${ts.url}/score`, { a: 1, b: 2 })).json()).toBe(103);
    expect(await (await post(`${ts.url}/batch`, { mini_batch: [{ a: 1, b: 1 }, { a: 2, b: 2 }] })).json()).toEqual({ results: [102, 104], count: 2 });
  });

  it('a raw script sees method, path and bytes and sets status and headers', async () => {
    const get = await fetch(`${raw.url}/score?x=1`);
    expect(await get.text()).toBe('/score?x=1');
    const p = await fetch(`${raw.url}/score`, { method: 'POST', body: Uint8Array.from([1, 2, 3]) });
    expect(p.status).toBe(201);
    expect(p.headers.get('x-script')).toBe('raw');
    expect([...new Uint8Array(await p.arrayBuffer())]).toEqual([3, 2, 1]);
  });
});

describe('ONNX model with no entry script', () => {
  let s: Started;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('onnx');
    writeLinearOnnx(path.join(dir, 'model.onnx'));
    s = await start({ modelDir: dir });
  });
  afterAll(async () => {
    await s.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('scores {"data": [[...]]} and named inputs', async () => {
    expect(s.server.kind).toBe('onnx');
    const x = [[1, 2, 3, 4], [0.5, 0, -1, 2]];
    const byData = await (await post(`${s.url}/score`, { data: x })).json();
    const byName = await (await post(`${s.url}/score`, { input: x })).json();
    expect(byName).toEqual(byData);
    const expected = linearPredict(x);
    byData.output.forEach((row: number[], i: number) => row.forEach((v, j) => expect(v).toBeCloseTo(expected[i][j], 5)));
  });

  it('derives the swagger from the model metadata', async () => {
    const doc = await (await fetch(`${s.url}/swagger.json`)).json();
    // The fixed feature dimension is exact (the example must be an input the model accepts); the batch one is free.
    expect(doc.definitions.ServiceInput.properties.input).toEqual({ type: 'array', items: { type: 'array', items: { type: 'number', format: 'float' }, minItems: 4, maxItems: 4 } });
    expect(doc.definitions.ServiceInput.example).toEqual({ input: [[0, 0, 0, 0]] });
    expect(Object.keys(doc.definitions.ServiceOutput.properties)).toEqual(['output']);
  });

  it('answers 400 for wrong shapes, unknown or missing inputs', async () => {
    const cases: Array<[unknown, string]> = [
      [{ data: [[1, 2, 3]] }, 'size 4 on dimension 1'],
      [{ data: [1, 2, 3, 4] }, 'must have 2 dimensions'],
      [{ data: [[1, 2, 3, 4], [1]] }, 'not a rectangular array'],
      [{ nope: [[1, 2, 3, 4]] }, "Unknown input 'nope'"],
      [{}, 'Missing input(s): input'],
      [[1], 'Send a JSON object'],
    ];
    for (const [body, message] of cases) {
      const res = await post(`${s.url}/score`, body);
      expect(res.status).toBe(400);
      expect((await res.json()).error.message).toContain(message);
    }
  });

  it('batch rows give one output per row', async () => {
    const res = await post(`${s.url}/batch`, { mini_batch: [[1, 0, 0, 0], [0, 1, 0, 0]] });
    const body = await res.json();
    expect(body.count).toBe(2);
    expect(body.results[1].output[0]).toBeCloseTo(1.1, 5);
  });

  it('fails to start without a model', async () => {
    const empty = tempDir('empty');
    await expect(start({ modelDir: empty })).rejects.toMatchObject({ code: 'OnnxModelNotFound' });
    fs.rmSync(empty, { recursive: true, force: true });
  });
});
