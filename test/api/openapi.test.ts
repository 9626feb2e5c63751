/**
 * `GET /api/openapi.json` against the real app on the local host:
 * - every HTTP function the compiled app registers (read as the Functions worker reads them, test/azure/app-bindings.ts)
 *   is in the document with each of its methods and paths, and the document has no route the app does not register;
 * - answers of a real deployment, batch run and management calls (successes and errors) validate against the
 *   document's response schema for their route, method and status (Ajv, JSON Schema 2020-12 = OpenAPI 3.1).
 */
import Ajv2020 from 'ajv/dist/2020';
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { loadRegistrations } from '../azure/app-bindings';
import { killPools, prepareFixture, uploadIris } from '../e2e/batch-helpers';
import { waitRun } from '../helpers/runs';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');

let env: TestEnvironment;
let doc: any;
let ajv: Ajv2020;

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-openapi-', settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' }, pollIntervalMs: 100 });
  const r = await env.request('GET', '/api/openapi.json');
  expect(r.status).toBe(200);
  doc = r.body;
  ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
  ajv.addSchema(doc, 'openapi');
}, 120_000);

afterAll(async () => {
  if (env) killPools(env.workDir);
  await env?.stop();
});

/** `models/{name}/{version?}` → `/models/{name}`, `/models/{name}/{version}`; `{version:int}` → `{version}`. */
function pathsOf(route: string): string[] {
  // A catch-all `{*name}` is optional too (Functions routing): listed as the path without it and with `{name}`.
  const clean = route.replace(/\{(\w+):[^}]+\}/g, '{$1}').replace(/\{\*(\w+)\}/g, '{$1?}');
  const optional = /\/\{(\w+)\?\}/.exec(clean);
  if (!optional) return [`/${clean}`];
  return [`/${clean.replace(optional[0], '')}`, `/${clean.replace(optional[0], `/{${optional[1]}}`)}`];
}

test('every registered HTTP function is in the document (each method and path), and nothing else is', () => {
  expect(doc).toMatchObject({ openapi: '3.1.0', servers: [{ url: `${env.baseUrl}/api` }] });
  const registered: Array<{ fn: string; method: string; path: string }> = [];
  for (const r of loadRegistrations()) {
    const trigger = r.bindings.find((b) => b.type === 'httpTrigger');
    if (!trigger) continue;
    const methods = (trigger.methods as string[] | undefined) ?? ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
    for (const p of pathsOf(String(trigger.route ?? r.name))) for (const m of methods) registered.push({ fn: r.name, method: m.toLowerCase(), path: p });
  }
  expect(registered.length).toBeGreaterThan(10);
  const missing = registered
    .filter((x) => doc.paths[x.path]?.[x.method]?.['x-function-name'] !== x.fn)
    .map((x) => `${x.method.toUpperCase()} /api${x.path} (function ${x.fn}) is not in the OpenAPI document: add it to ROUTES in shared/api/routes.ts`);
  const documented = Object.entries(doc.paths as Record<string, Record<string, { 'x-function-name': string }>>).flatMap(([p, ops]) => Object.entries(ops).map(([m, op]) => ({ p, m, fn: op['x-function-name'] })));
  const stale = documented
    .filter((d) => !registered.some((x) => x.path === d.p && x.method === d.m && x.fn === d.fn))
    .map((d) => `${d.m.toUpperCase()} /api${d.p} (function ${d.fn}) is documented but the app registers no such route`);
  expect([...missing, ...stale]).toEqual([]);
  // Operation ids are unique.
  const ids = documented.map((d) => doc.paths[d.p][d.m].operationId);
  expect(new Set(ids).size).toBe(ids.length);
});

const checked = new Set<string>();

/** The answer validates against the document's schema for this route, method and status. */
function check(method: string, template: string, r: { status: number; body: unknown }): void {
  const op = doc.paths[template]?.[method];
  if (!op) throw new Error(`${method} ${template} is not in the document`);
  let response = op.responses[String(r.status)];
  if (!response) throw new Error(`${method.toUpperCase()} ${template} answered ${r.status}, which the document does not list (${Object.keys(op.responses).join(', ')}): ${JSON.stringify(r.body).slice(0, 300)}`);
  if (response.$ref) response = doc.components.responses[response.$ref.split('/').pop()];
  const ref: string = (Object.values(response.content)[0] as { schema: { $ref: string } }).schema.$ref;
  const validate = ajv.getSchema(`openapi${ref}`)!;
  if (!validate(r.body)) throw new Error(`${method.toUpperCase()} ${template} → ${r.status} does not match ${ref}: ${ajv.errorsText(validate.errors, { separator: '\n' })}\n${JSON.stringify(r.body).slice(0, 1000)}`);
  checked.add(`${method} ${template} ${r.status}`);
}

test('answers of a deployment, a batch run and the management routes validate against the document', async () => {
  const get = async (template: string, url: string) => {
    const r = await env.request('GET', url);
    check('get', template, r);
    return r;
  };
  check('get', '/health', await env.request('GET', '/api/health'));
  check('get', '/openapi.json', { status: 200, body: doc });

  // A deployment (multipart), followed to its end.
  const form = new FormData();
  // With token auth: GET /services/{name}/token answers a real token (keys still answer).
  const manifest = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
  manifest.target = { ...manifest.target, token_auth_enabled: true };
  form.append('manifest', new Blob([JSON.stringify(manifest)]), 'deploy.json');
  for (const f of ['model.json', 'score.js', 'package.json']) form.append(f, new Blob([fs.readFileSync(path.join(EXAMPLE, f))]), f);
  const res = await fetch(`${env.baseUrl}/api/deployments`, { method: 'POST', body: form });
  const accepted = { status: res.status, body: await res.json() };
  check('post', '/deployments', accepted);
  await get('/runs/{id}', `/api/runs/${accepted.body.runId}`);
  const run = await waitRun(env, accepted.body.runId);
  expect(run.state).toBe('Succeeded');
  await get('/runs/{id}', `/api/runs/${accepted.body.runId}`);

  await get('/models', '/api/models');
  await get('/models/{name}', '/api/models/diabetes-linear');
  await get('/models/{name}/{version}', '/api/models/diabetes-linear/1');
  const patched = await env.request('PATCH', '/api/models/diabetes-linear/1', { tags: { stage: 'test' } });
  check('patch', '/models/{name}/{version}', patched);
  check('patch', '/models/{name}/{version}', await env.request('PATCH', '/api/models/diabetes-linear/1', { colour: 'blue' }));
  await get('/images', '/api/images');
  await get('/images/{name}', '/api/images/diabetes-node');
  await get('/images/{name}/{version}', '/api/images/diabetes-node/1');
  await get('/services', '/api/services');
  await get('/services/{name}', '/api/services/diabetes-node');
  await get('/services/{name}/keys', '/api/services/diabetes-node/keys');
  check('post', '/services/{name}/keys/regenerate', await env.request('POST', '/api/services/diabetes-node/keys/regenerate', { keyType: 'Secondary' }));
  check('post', '/services/{name}/keys/regenerate', await env.request('POST', '/api/services/diabetes-node/keys/regenerate', { keyType: 'Tertiary' }));
  // Day 2: runs list, logs, build log, token (never printed), tags of an image, a model registered and downloaded.
  const runs = await get('/runs', '/api/runs?type=deployment&top=5');
  expect(runs.body.value.map((r: { id: string }) => r.id)).toContain(accepted.body.runId);
  await get('/runs', '/api/runs?status=Exploded');
  await get('/services/{name}/logs', '/api/services/diabetes-node/logs?tail=20');
  await get('/services/{name}/logs', '/api/services/diabetes-node/logs?tail=0');
  const token = await get('/services/{name}/token', '/api/services/diabetes-node/token');
  expect(token.body.tokenType).toBe('Bearer');
  await get('/services/{name}/token', '/api/services/no-such-service/token');
  const buildLog = await env.request('GET', '/api/images/diabetes-node/1/log');
  expect(buildLog.headers.get('content-type')).toMatch(/^text\/plain/);
  expect(doc.paths['/images/{name}/{version}/log'].get.responses['200'].content['text/plain']).toBeDefined();
  check('get', '/images/{name}/{version}/log', buildLog);
  check('patch', '/images/{name}/{version}', await env.request('PATCH', '/api/images/diabetes-node/1', { tags: { stage: 'test' } }));
  check('patch', '/images/{name}/{version}', await env.request('PATCH', '/api/images/diabetes-node/1', { tags: { stage: 'test' }, colour: 'blue' }));
  const reg = new FormData();
  reg.append('model', new Blob([JSON.stringify({ name: 'openapi-model', tags: { k: 'v' } })]), 'model');
  reg.append('model.json', new Blob([fs.readFileSync(path.join(EXAMPLE, 'model.json'))]), 'model.json');
  const regRes = await fetch(`${env.baseUrl}/api/models`, { method: 'POST', body: reg });
  check('post', '/models', { status: regRes.status, body: await regRes.json() });
  check('post', '/models', await env.request('POST', '/api/models', { name: 'openapi-model' }));
  const dl = await fetch(`${env.baseUrl}/api/models/openapi-model/1/download`);
  expect(dl.status).toBe(200);
  expect(dl.headers.get('content-type')).toBe('application/gzip');
  expect(Object.keys(doc.paths['/models/{name}/{version}/download'].get.responses['200'].content)).toEqual(['application/gzip']);
  expect(Buffer.from(await dl.arrayBuffer()).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
  check('get', '/models/{name}/{version}/download', await env.request('GET', '/api/models/openapi-model/9/download'));

  // Errors: the Error body.
  await get('/services/{name}', '/api/services/no-such-service');
  await get('/models/{name}/{version}', '/api/models/diabetes-linear/0');
  await get('/runs/{id}', '/api/runs/no-such-run');
  check('delete', '/images/{name}/{version}', await env.request('DELETE', '/api/images/diabetes-node/1'));

  // A batch run.
  const fx = await prepareFixture(env.connectionString);
  await uploadIris(fx.storage, 'oa/', 2, 20);
  const job = { model: 'iris-linear', entry_script: 'iris.js', source_directory: 'code/scripts', inputs: { container: 'batch-data', prefix: 'oa/' }, input_kind: 'tabular', mini_batch_size: '5 rows', process_count_per_node: 1 };
  const started = await env.request('POST', '/api/batch-runs', job);
  check('post', '/batch-runs', started);
  check('post', '/batch-runs', await env.request('POST', '/api/batch-runs', { ...job, colour: 'blue' }));
  const ended = await waitRun(env, started.body.id);
  expect(ended.state).toBe('Succeeded');
  await get('/batch-runs/{id}', `/api/batch-runs/${started.body.id}`);
  await get('/runs/{id}', `/api/runs/${started.body.id}`);
  check('post', '/batch-runs/{id}/terminate', await env.request('POST', `/api/batch-runs/${started.body.id}/terminate`));

  check('delete', '/services/{name}', await env.request('DELETE', '/api/services/diabetes-node'));
  check('delete', '/models/{name}', await env.request('DELETE', '/api/models/diabetes-linear?force=true'));
  expect(checked.size).toBeGreaterThanOrEqual(38);
}, 240_000);

test('the document carries the error shape, examples and the request schemas the handlers validate with', () => {
  expect(doc.components.schemas.Error).toMatchObject({ type: 'object', required: ['error'], properties: { error: { $ref: '#/components/schemas/ErrorInfo' } } });
  expect(doc.components.schemas.Error.examples[0].error.code).toBe('InvalidVersion');
  // The manifest schema is the one deployments are parsed with: strict objects, the fields of deploy.json.
  expect(doc.components.schemas.DeploymentManifest).toMatchObject({ type: 'object', additionalProperties: false, properties: { model: { type: 'object' }, image: { anyOf: [{ type: 'string' }, { type: 'object' }] } } });
  const validManifest = ajv.getSchema('openapi#/components/schemas/DeploymentManifest')!;
  expect(validManifest(JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8')))).toBe(true);
  expect(validManifest({ model: { files: ['m'] }, colour: 'blue' })).toBe(false);
  const validJob = ajv.getSchema('openapi#/components/schemas/BatchJob')!;
  expect(validJob(JSON.parse(fs.readFileSync(path.join(__dirname, '../../examples/batch/batch.json'), 'utf8')))).toBe(true);
  expect(doc.paths['/services/{name}/keys/regenerate'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/RegenerateKey' });
  expect(doc.components.schemas.RegenerateKey.properties.keyType.enum).toEqual(['Primary', 'Secondary']);
  expect(doc.paths['/deployments'].post.requestBody.content['multipart/form-data'].schema.required).toEqual(['manifest']);
  expect(doc.paths['/health'].get.security).toEqual([]);
  expect(doc.security).toEqual([{ functionKey: [] }]);
});
