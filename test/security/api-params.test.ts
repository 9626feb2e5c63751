/**
 * Route parameters and query flags of the management API (functions/management.ts, functions/day2.ts through
 * shared/api/handlers.ts), through the real host:
 * - `{name}` is normalised (trimmed) then checked, on every route alike (management's routes passed the raw
 *   parameter on, so ` svc` was 400 there and found on the day-2 routes);
 * - a rejected name or version is quoted in the error at most 64 characters (the whole parameter was echoed: a
 *   route parameter can be kilobytes);
 * - `?force=` is true/1/yes or false/0/no (or absent); anything else is 400 `InvalidForce` and nothing is deleted (a
 *   typo was silently a delete without force);
 * - a malformed JSON body is 400 without any piece of it: V8's syntax error quotes the text around the fault
 *   (`..."ary_key": supersecre"...`), which the error used to pass on (shared/parse.ts `jsonSyntaxMessage`).
 */
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString } from '../../shared/storage';

let env: TestEnvironment;
const MODEL = 'params-model';

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-api-params-', pollIntervalMs: 100 });
  const storage = storageFromConnectionString(env.connectionString);
  const staging = await storage.ensureContainer('staging');
  await staging.getBlockBlobClient('params/model.json').uploadData(Buffer.from('{"w":[1,2,3]}'));
  const r = await env.request('POST', '/api/models', { name: MODEL, folder: 'staging/params', files: ['model.json'] }, { 'content-type': 'application/json' });
  expect(r.status).toBe(201);
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

test('{name} is trimmed then checked on every route; a rejected name is quoted briefly', async () => {
  const spaced = encodeURIComponent(` ${MODEL} `);
  expect((await env.request('GET', `/api/models/${spaced}`)).body.latest.id).toBe(`${MODEL}:1`);
  expect((await env.request('GET', `/api/models/${spaced}/1`)).body.id).toBe(`${MODEL}:1`);
  expect((await env.request('GET', `/api/models/${spaced}/1/download`)).status).toBe(200);
  expect((await env.request('PATCH', `/api/models/${spaced}/1`, { tags: { t: '1' } })).body.tags).toEqual({ t: '1' });
  for (const route of ['', '/keys', '/metrics', '/token', '/logs']) {
    const r = await env.request('GET', `/api/services/${encodeURIComponent(' no-such-svc ')}${route}`);
    expect({ route, status: r.status, code: r.body.error.code }).toEqual({ route, status: 404, code: 'ServiceNotFound' });
  }
  const r = await env.request('POST', `/api/services/${encodeURIComponent(' no-such-svc ')}/keys/regenerate`, { keyType: 'Primary' });
  expect([r.status, r.body.error.code]).toEqual([404, 'ServiceNotFound']);

  const long = `A${'b'.repeat(1500)}SECRETTAIL!`;
  const cases: Array<[string, string, string]> = [
    ['GET', `/api/models/${long}`, 'InvalidModelName'],
    ['DELETE', `/api/models/${long}/1`, 'InvalidModelName'],
    ['PATCH', `/api/models/${long}/1`, 'InvalidModelName'],
    ['GET', `/api/images/${long.toLowerCase()}`, 'InvalidImageName'],
    ['GET', `/api/services/${long}`, 'InvalidServiceName'],
    ['GET', `/api/services/${long}/keys`, 'InvalidServiceName'],
    ['POST', `/api/services/${long}/keys/regenerate`, 'InvalidServiceName'],
    ['GET', `/api/services/${long}/metrics`, 'InvalidServiceName'],
    ['GET', `/api/models/${MODEL}/${'9'.repeat(1500)}`, 'InvalidVersion'],
  ];
  for (const [method, url, code] of cases) {
    const res = await env.request(method, url, method === 'GET' ? undefined : { keyType: 'Primary', tags: { a: 'b' } });
    expect({ url: url.slice(0, 40), status: res.status, code: res.body.error?.code }).toEqual({ url: url.slice(0, 40), status: 400, code });
    expect(res.text.length).toBeLessThan(600);
    expect(res.text).not.toContain('SECRETTAIL');
  }
}, 60_000);

test('?force= is a boolean or 400 InvalidForce, with nothing deleted', async () => {
  for (const v of ['maybe', 'ture', '2', 'true!', 'x'.repeat(300)]) {
    const r = await env.request('DELETE', `/api/models/${MODEL}/1?force=${encodeURIComponent(v)}`);
    expect({ v: v.slice(0, 10), status: r.status, code: r.body.error?.code }).toEqual({ v: v.slice(0, 10), status: 400, code: 'InvalidForce' });
    expect(r.text.length).toBeLessThan(300);
    const d = await env.request('DELETE', `/api/services/no-such-svc?force=${encodeURIComponent(v)}`);
    expect([d.status, d.body.error?.code]).toEqual([404, 'ServiceNotFound']); // the service lookup comes first
  }
  expect((await env.request('GET', `/api/models/${MODEL}/1`)).status).toBe(200);
  const del = await env.request('DELETE', `/api/models/${MODEL}/1?force=false`);
  expect(del.status).toBe(200);
  expect(del.body.deleted).toEqual([`${MODEL}:1`]);
  expect((await env.request('GET', `/api/models/${MODEL}/1`)).status).toBe(404);
}, 60_000);

test('a malformed JSON body is refused without quoting any of it', async () => {
  const SECRET = 'supersecretkey0123456789';
  const manifest = `{"model": {"name": "m", "files": ["model.json"]}, "image": {"name": "i", "runtime": "node", "entry_script": "score.js"}, "target": {"kind": "local", "auth_enabled": true, "primary_key": ${SECRET}}}`;
  const cases: Array<[string, string, string]> = [
    ['POST', '/api/deployments?folder=staging/params', manifest],
    ['POST', '/api/deployments?folder=staging/params', SECRET],
    ['POST', '/api/services/no-such-svc/keys/regenerate', SECRET],
    ['POST', '/api/services/no-such-svc/keys/regenerate', `{"keyType": ${SECRET}}`],
    ['PATCH', '/api/services/no-such-svc', `{"primary_key": ${SECRET}}`],
    ['POST', '/api/models', `{"name": "x", "description": ${SECRET}}`],
    ['PATCH', `/api/models/${MODEL}/1`, `{"tags": {"k": ${SECRET}}}`],
    ['PATCH', `/api/models/${MODEL}/1`, `"${SECRET}`],
  ];
  for (const [method, url, body] of cases) {
    const res = await fetch(`${env.baseUrl}${url}`, { method, body, headers: { 'content-type': 'application/json' } });
    const text = await res.text();
    expect({ url, body: body.slice(0, 30), status: res.status }).toEqual({ url, body: body.slice(0, 30), status: 400 });
    expect(text).not.toMatch(/supersecre|secretkey|0123456789/);
    expect(JSON.parse(text).error.message).toMatch(/JSON/);
  }
}, 60_000);
