import * as http from 'http';
import type { AddressInfo } from 'net';
import { matchesExpected, shapeMismatch, runSmokeTest } from '../../../shared/scoring';

test('matchesExpected with tolerance', () => {
  expect(matchesExpected([1.0000001, { a: 2 }], [1, { a: 2 }], 1e-6)).toBe(true);
  expect(matchesExpected([1.1], [1], 1e-6)).toBe(false);
  expect(matchesExpected({ a: 1, b: 2 }, { a: 1 })).toBe(false);
  expect(matchesExpected('x', 'x')).toBe(true);
});

test('shapeMismatch compares structure, not lengths', () => {
  expect(shapeMismatch([[1, 2], [3, 4], [5, 6]], [[0.5, 0.5]])).toBeUndefined();
  expect(shapeMismatch([1, 2], [[0.5]])).toBe('output[0] is number, the output sample has array');
  expect(shapeMismatch({ label: 'a' }, { label: 'x', score: 1 })).toBe('output.score is missing');
});

describe('against a fake service', () => {
  let server: http.Server;
  let base: string;
  let mode = 'ok';
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/') {
        if (mode === 'init') {
          res.writeHead(503, { 'content-type': 'application/json' });
          return res.end(JSON.stringify({ error: { code: 'InitFailed', message: 'init() failed: no model' } }));
        }
        return res.end('Healthy');
      }
      if (req.url === '/swagger.json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ definitions: { ServiceInput: { example: { data: [[1, 2]] } }, ServiceOutput: { example: [0.5] } } }));
      }
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        if (req.headers.authorization !== 'Bearer secret-key') {
          res.writeHead(401);
          return res.end();
        }
        if (mode === 'busy' || mode === 'busy-once') {
          if (mode === 'busy-once') mode = 'ok';
          res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
          return res.end(JSON.stringify({ error: { code: 'ServiceOverloaded', message: 'every worker slot stayed busy' } }));
        }
        const rows = JSON.parse(body).data as number[][];
        res.writeHead(200, { 'content-type': 'application/json' });
        // AML-style double encoding: run() returned json.dumps(...).
        res.end(JSON.stringify(JSON.stringify(mode === 'shape' ? rows.map(() => 'x') : rows.map((r) => r[0] + r[1]))));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const req = () => ({ healthUri: `${base}/`, scoringUri: `${base}/score`, swaggerUri: `${base}/swagger.json`, key: 'secret-key', livenessTimeoutMs: 2000, logTail: async () => 'line 1\nline 2' });

  test('a 503 with Retry-After (workers busy, e.g. with a call a killed host left running) is retried; one that lasts fails', async () => {
    mode = 'busy-once';
    const r = await runSmokeTest(req());
    expect(r.ok).toBe(true);
    expect(r.output).toEqual([3]);
    mode = 'busy';
    const busy = await runSmokeTest({ ...req(), requestTimeoutMs: 600 });
    expect(busy.ok).toBe(false);
    expect(busy.reason).toMatch(/answered 503: ServiceOverloaded/);
    mode = 'ok';
  });

  test('generates the sample from the swagger example and checks the output shape', async () => {
    mode = 'ok';
    const r = await runSmokeTest(req());
    expect(r.ok).toBe(true);
    expect(r.swagger).toBe('present');
    expect(r.output).toEqual([3]);
    expect(r.checks).toContain("output has the output sample's shape");
  });

  test('wrong shape fails with a reason and the log tail; the key never appears', async () => {
    mode = 'shape';
    const r = await runSmokeTest(req());
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/output\[0\] is string/);
    expect(r.logTail).toBe('line 1\nline 2');
    expect(JSON.stringify(r)).not.toContain('secret-key');
  });

  test('InitFailed ends the liveness wait at once', async () => {
    mode = 'init';
    const r = await runSmokeTest({ ...req(), livenessTimeoutMs: 60_000 });
    expect(r.ok).toBe(false);
    expect(r.reason).toContain('init() failed: no model');
  });

  test('liveness is bounded', async () => {
    const r = await runSmokeTest({ healthUri: 'http://127.0.0.1:1/', scoringUri: 'http://127.0.0.1:1/score', livenessTimeoutMs: 300 });
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/within 300 ms/);
  });

  test('stopIf ends the liveness wait at once with its code (no waiting out the window)', async () => {
    let asked = 0;
    const deleted = { code: 'ServiceDeleted', message: 'Service s was deleted while run r was deploying it.' };
    // Nothing listens on port 1: without stopIf this would probe for the whole minute (the test's 5 s limit would fail it).
    const r = await runSmokeTest({
      healthUri: 'http://127.0.0.1:1/',
      scoringUri: 'http://127.0.0.1:1/score',
      livenessTimeoutMs: 60_000,
      logTail: async () => 'tail',
      stopIf: async () => (++asked >= 3 ? deleted : undefined),
    });
    expect(r).toMatchObject({ ok: false, code: 'ServiceDeleted', reason: deleted.message, swagger: 'skipped' });
    expect(asked).toBe(3);
    expect(r.logTail).toBeUndefined();
    expect(r.livenessMs).toBeUndefined();
  });

  test('a failure once the service is gone reports the deletion, not the symptom', async () => {
    mode = 'shape';
    let asked = 0;
    const r = await runSmokeTest({ ...req(), stopIf: async () => (++asked > 1 ? { code: 'ServiceDeleted', message: 'gone' } : undefined) });
    expect(r).toMatchObject({ ok: false, code: 'ServiceDeleted', reason: 'gone' });
    mode = 'ok';
    const ok = await runSmokeTest({ ...req(), stopIf: async () => undefined });
    expect(ok.ok).toBe(true);
    expect(ok.code).toBeUndefined();
  });

  test('expected output mismatch', async () => {
    mode = 'ok';
    const r = await runSmokeTest({ ...req(), sample: { data: [[1, 1]] }, expectedOutput: [3] });
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/differs from the expected \[3\]/);
  });
});

describe('a raw (@rawhttp) service: text and bytes compared as such', () => {
  let server: http.Server;
  let base: string;
  const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]);
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/') return res.end('Healthy');
      if (req.url === '/swagger.json') {
        res.writeHead(404);
        return res.end();
      }
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.url === '/text') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          return res.end(`got ${body.length} bytes of ${req.headers['content-type']}`);
        }
        res.writeHead(200, { 'content-type': 'image/png' });
        res.end(Buffer.concat([PNG, body]));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  test('text: a non-JSON body equal to the expected text passes; another text fails naming both formats', async () => {
    const common = { healthUri: `${base}/`, scoringUri: `${base}/text`, swaggerUri: `${base}/swagger.json`, sampleBase64: Buffer.from('abc').toString('base64'), expectedOutputFormat: 'text' as const };
    const ok = await runSmokeTest({ ...common, expectedOutput: 'got 3 bytes of application/octet-stream' });
    expect(ok.ok).toBe(true);
    expect(ok.checks).toContain('output matches the expected text output');
    expect(ok.output).toBe('got 3 bytes of application/octet-stream');
    const bad = await runSmokeTest({ ...common, expectedOutput: 'something else' });
    expect(bad.ok).toBe(false);
    expect(bad.reason).toContain('The text output "got 3 bytes of application/octet-stream" differs from the expected text output');
    // Without a format the same body is "not JSON", as before.
    const json = await runSmokeTest({ ...common, expectedOutputFormat: undefined, expectedOutput: 'x' });
    expect(json.reason).toMatch(/not JSON/);
  });

  test('base64: the body bytes equal the expected bytes', async () => {
    const common = { healthUri: `${base}/`, scoringUri: `${base}/bytes`, swaggerUri: `${base}/swagger.json`, sampleBase64: Buffer.from([1, 2]).toString('base64'), expectedOutputFormat: 'base64' as const };
    const ok = await runSmokeTest({ ...common, expectedOutput: Buffer.concat([PNG, Buffer.from([1, 2])]).toString('base64') });
    expect(ok.ok).toBe(true);
    const bad = await runSmokeTest({ ...common, expectedOutput: PNG.toString('base64') });
    expect(bad.ok).toBe(false);
    expect(bad.reason).toContain('The base64 output 8 bytes');
  });
});
