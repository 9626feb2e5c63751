/** Python worker + the compatibility modules (azureml.core.model, azureml.contrib.services, inference_schema). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeWithPythonMl, EX, post, start, SYSTEM_PYTHON, tempDir, waitFor, type Started } from './helpers';

const py = (p: string) => path.join(EX, 'python', p);

describe('Model.get_model_path + JSON scoring (seed example 1)', () => {
  let s: Started;
  beforeAll(async () => {
    s = await start({ entryScript: py('json-model/score.py'), modelDir: py('json-model/model'), workers: 2 });
  });
  afterAll(() => s.server.stop());

  it('is healthy once init() ran in the workers', async () => {
    const res = await fetch(`${s.url}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('Healthy');
    // Each worker ran init(); their prints arrive on their own stdout pipes.
    // A worker's print can arrive before its ready message: wait for both, then check.
    await waitFor(() => s.output.includes('1:model loaded from model.json') && s.output.includes('2:model loaded from model.json') && s.server.pool.readyCount === 2);
    expect(s.server.pool.readyCount).toBe(2);
  });

  it('passes the body to run() and returns its value as JSON (a str result is a JSON string, as in AML)', async () => {
    const res = await post(`${s.url}/score`, { data: [[1, 2, 3], [0, 0, 0]] });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(JSON.parse(await res.json())).toEqual([2 - 2 + 1.5 + 1, 1]);
  });

  it('answers 500 with the script error message and no stack', async () => {
    const res = await post(`${s.url}/score`, { nodata: 1 });
    expect(res.status).toBe(500);
    const body = await res.json();
    expect(body.error.code).toBe('RunFailed');
    expect(body.error.message).toBe("KeyError: 'data'");
    expect(body.error.stack).toBeUndefined();
  });

  it('has no swagger without schema decorators', async () => {
    expect((await fetch(`${s.url}/swagger.json`)).status).toBe(404);
    expect((await fetch(`${s.url}/openapi.json`)).status).toBe(404);
  });

  it('rejects GET /score for a non-raw script with 405', async () => {
    const res = await fetch(`${s.url}/score`);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
  });
});

describe('get_model_path layouts', () => {
  let s: Started;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('models');
    fs.mkdirSync(path.join(dir, 'a', '1'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'a', '2'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'a', '1', 'm.pkl'), 'v1');
    fs.writeFileSync(path.join(dir, 'a', '2', 'm.pkl'), 'v2');
    fs.writeFileSync(path.join(dir, 'score.py'), [
      'import json, os',
      'from azureml.core.model import Model',
      'def init(): pass',
      'def run(raw):',
      '    req = json.loads(raw)',
      '    try:',
      '        p = Model.get_model_path(req["name"], req.get("version"))',
      '    except Exception as e:',
      '        return {"error": type(e).__name__, "message": str(e)}',
      '    return {"path": os.path.relpath(p, os.environ["AZUREML_MODEL_DIR"]), "content": open(p).read() if os.path.isfile(p) else None}',
    ].join('\n'));
    s = await start({ entryScript: path.join(dir, 'score.py'), modelDir: dir });
  });
  afterAll(async () => {
    await s.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('picks the highest version, or the one asked for', async () => {
    expect(await (await post(`${s.url}/score`, { name: 'a' })).json()).toEqual({ path: 'a/2/m.pkl', content: 'v2' });
    expect(await (await post(`${s.url}/score`, { name: 'a', version: 1 })).json()).toEqual({ path: 'a/1/m.pkl', content: 'v1' });
    const missing = await (await post(`${s.url}/score`, { name: 'a', version: 7 })).json();
    expect(missing.error).toBe('ModelNotFoundException');
    expect(missing.message).toContain('available versions: [1, 2]');
  });
});

describe('@rawhttp, AMLRequest, AMLResponse (seed example 2, unmodified)', () => {
  let s: Started;
  beforeAll(async () => {
    s = await start({ entryScript: py('rawhttp/score.py') });
  });
  afterAll(() => s.server.stop());

  it('POST returns the request bytes reversed', async () => {
    const bytes = Uint8Array.from([0, 1, 2, 250, 255]);
    const res = await fetch(`${s.url}/score`, { method: 'POST', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
    expect(res.status).toBe(200);
    expect([...new Uint8Array(await res.arrayBuffer())]).toEqual([255, 250, 2, 1, 0]);
    await waitFor(() => s.output.some((l) => l.includes('Request: [<AMLRequest POST /score?>]')));
  });

  it('GET returns the full path', async () => {
    const res = await fetch(`${s.url}/score?a=1&b=two`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('/score?a=1&b=two');
  });

  it('other methods get the script answer (500 "bad request")', async () => {
    const res = await fetch(`${s.url}/score`, { method: 'PUT', body: 'x' });
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('bad request');
  });
});

describeWithPythonMl('inference_schema decorators (numpy / sklearn; seed example 3)', () => {
  let s: Started;
  beforeAll(async () => {
    s = await start({ entryScript: py('schema/score.py'), modelDir: py('schema/model'), python: SYSTEM_PYTHON, serviceName: 'salary' });
  });
  afterAll(() => s.server.stop());

  it('serves a Swagger 2.0 document built from the samples', async () => {
    const res = await fetch(`${s.url}/swagger.json`);
    expect(res.status).toBe(200);
    const doc = await res.json();
    expect(doc.swagger).toBe('2.0');
    expect(doc.info.title).toBe('salary');
    expect(doc.paths['/score'].post.parameters[0].schema).toEqual({ $ref: '#/definitions/ServiceInput' });
    expect(doc.definitions.ServiceInput).toEqual({
      type: 'object',
      properties: { data: { type: 'array', items: { type: 'array', items: { type: 'number', format: 'double' } } } },
      required: ['data'],
      example: { data: [[1.8]] },
    });
    expect(doc.definitions.ServiceOutput).toEqual({
      type: 'array', items: { type: 'number', format: 'double' }, example: [43638.88],
    });
    expect(doc.paths['/score'].post.security).toBeUndefined();
  });

  it('serves the same schemas as OpenAPI 3.0', async () => {
    const doc = await (await fetch(`${s.url}/openapi.json`)).json();
    expect(doc.openapi).toMatch(/^3\.0\./);
    expect(doc.components.schemas.ServiceInput.properties.data.items.items.format).toBe('double');
    expect(doc.paths['/score'].post.requestBody.content['application/json'].example).toEqual({ data: [[1.8]] });
  });

  it('converts the JSON input to a numpy array before run()', async () => {
    const res = await post(`${s.url}/score`, { data: [[4], [5]] });
    expect(res.status).toBe(200);
    const y = (await res.json()) as number[];
    expect(y[0]).toBeCloseTo(60000, 6);
    expect(y[1]).toBeCloseTo(70000, 6);
  });

  it('answers 400 when the input does not fit the sample (shape, JSON)', async () => {
    const wrongShape = await post(`${s.url}/score`, { data: [[1, 2]] });
    expect(wrongShape.status).toBe(400);
    expect((await wrongShape.json()).error).toMatchObject({ code: 'InvalidInput', message: expect.stringContaining('dimension #1') });
    const notJson = await post(`${s.url}/score`, 'not json');
    expect(notJson.status).toBe(400);
  });
});

describeWithPythonMl('inference_schema: seed-style run(raw_data), standard and pandas types', () => {
  let seed: Started;
  let types: Started;
  beforeAll(async () => {
    [seed, types] = await Promise.all([
      start({ entryScript: py('schema/score_seed.py'), python: SYSTEM_PYTHON }),
      start({ entryScript: py('schema/score_types.py'), python: SYSTEM_PYTHON }),
    ]);
  });
  afterAll(() => Promise.all([seed.server.stop(), types.server.stop()]));

  it('a decorated run(raw_data) receives the raw body, and still has a swagger', async () => {
    const res = await post(`${seed.url}/score`, { data: [[1.5], [2]] });
    expect(res.status).toBe(200);
    expect(JSON.parse(await res.json())).toEqual([3, 4]);
    expect((await fetch(`${seed.url}/swagger.json`)).status).toBe(200);
  });

  it('converts records to a DataFrame and ints to the float sample type', async () => {
    const res = await post(`${types.url}/score`, { frame: [{ age: 10, income: 2 }, { age: 1, income: 0.5 }], scale: 3 });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ total: 61.5, kinds: ['DataFrame', 'int64'] });
    const doc = await (await fetch(`${types.url}/swagger.json`)).json();
    expect(doc.definitions.ServiceInput.properties.frame).toEqual({
      type: 'array',
      items: { type: 'object', required: ['age', 'income'], properties: { age: { type: 'integer', format: 'int64' }, income: { type: 'number', format: 'double' } } },
      format: 'pandas.DataFrame:records',
    });
    expect(doc.definitions.ServiceInput.properties.scale).toEqual({ type: 'number', format: 'double' });
    expect(doc.definitions.ServiceInput.example).toEqual({ frame: [{ age: 30, income: 1.5 }], scale: 2 });
  });

  it('answers 400 for unknown inputs', async () => {
    const res = await post(`${types.url}/score`, { frame: [], scale: 1, other: 2 });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toContain("Unknown input(s) ['other']");
  });
});

describe('init() failure and debug mode', () => {
  it('reports the init error on GET / with 503 and refuses scoring', async () => {
    const s = await start({ entryScript: py('faults/score.py'), env: { FAIL_INIT: '1' }, workers: 2 });
    try {
      expect(await s.server.initialized).toEqual({ ok: false, error: 'init() failed: RuntimeError: model file is corrupt' });
      const res = await fetch(`${s.url}/`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ error: { code: 'InitFailed', message: 'init() failed: RuntimeError: model file is corrupt' } });
      const score = await post(`${s.url}/score`, {});
      expect(score.status).toBe(503);
      expect((await score.json()).error.code).toBe('InitFailed');
    } finally {
      await s.server.stop();
    }
  });

  it('includes the stack in 500s only with debug on', async () => {
    const s = await start({ entryScript: py('faults/score.py'), debug: true });
    try {
      const res = await post(`${s.url}/score`, { action: 'raise', value: 42 });
      expect(res.status).toBe(500);
      const { error } = await res.json();
      expect(error.message).toBe('ValueError: bad input: 42');
      expect(error.stack).toContain('Traceback');
    } finally {
      await s.server.stop();
    }
  });
});

describe('batch entry (ParallelRunStep contract)', () => {
  let s: Started;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('batch');
    s = await start({ entryScript: py('batch/score.py'), mode: 'batch' });
  });
  afterAll(async () => {
    await s.server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('POST /batch calls run(mini_batch) and returns one result per input', async () => {
    const files = ['a.csv', 'b.csv', 'c.csv'].map((f, i) => {
      const p = path.join(dir, f);
      fs.writeFileSync(p, Array.from({ length: i + 1 }, (_, j) => `row${j}`).join('\n'));
      return p;
    });
    const res = await post(`${s.url}/batch`, { mini_batch: files });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ results: ['a.csv,lines,1', 'b.csv,lines,2', 'c.csv,lines,3'], count: 3 });
  });

  it('rejects a body without a mini_batch list (400) and /score in batch mode (404)', async () => {
    const bad = await post(`${s.url}/batch`, { rows: [] });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.code).toBe('InvalidMiniBatch');
    expect((await post(`${s.url}/score`, {})).status).toBe(404);
  });

  it('a failing run(mini_batch) is a 500 with the message', async () => {
    const res = await post(`${s.url}/batch`, { mini_batch: ['/nonexistent/file.csv'] });
    expect(res.status).toBe(500);
    expect((await res.json()).error.message).toContain('FileNotFoundError');
  });
});
