/**
 * The deployment chain through the real app on the local host (Azurite + host + local target + runtime):
 * blob trigger, HTTP API, Service Bus substitute queue, management API, bad input.
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { runIdFor } from '../../shared/deploy/run-status';
import { ServiceRegistry } from '../../shared/registry/services';
import { deployConfigFor } from '../../shared/manifest';
import { waitRun as waitRunOf } from '../helpers/runs';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
let env: TestEnvironment;
let storage: StorageClients;

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-e2e-', settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000', MAX_UPLOAD_BYTES: String(256 * 1024), LONE_ONNX_SETTLE_SECONDS: '1' }, pollIntervalMs: 100 });
  storage = storageFromConnectionString(env.connectionString);
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

const waitRun = (runId: string, timeoutMs = 60_000): Promise<any> => waitRunOf(env, runId, timeoutMs);

async function uploadFolder(name: string, files: Record<string, Buffer | string>): Promise<string> {
  const c = await storage.ensureContainer('incoming');
  let etag = '';
  const entries = Object.entries(files).sort(([a], [b]) => (a === 'deploy.json' ? 1 : b === 'deploy.json' ? -1 : 0));
  for (const [p, data] of entries) {
    const r = await c.getBlockBlobClient(`${name}/${p}`).uploadData(Buffer.isBuffer(data) ? data : Buffer.from(data));
    if (p === 'deploy.json') etag = String(r.etag).replace(/"/g, '');
  }
  return etag;
}

const exampleFiles = () => Object.fromEntries(fs.readdirSync(EXAMPLE).map((f) => [f, fs.readFileSync(path.join(EXAMPLE, f))]));

test('HTTP deployment → Succeeded run → scoring endpoint; update; rolled-back update; management API', async () => {
  // The example's files in blob storage (not under incoming/, so the blob trigger stays out of this test).
  const files = exampleFiles();
  const up = await storage.ensureContainer('staging');
  for (const [p, data] of Object.entries(files)) await up.getBlockBlobClient(`diabetes-node/${p}`).uploadData(data);
  const manifest = JSON.parse(files['deploy.json'].toString());
  const first = await env.request('POST', '/api/deployments?folder=staging/diabetes-node', manifest, { 'content-type': 'application/json' });
  expect(first.status).toBe(202);
  const run = await waitRun(first.body.runId);
  expect(run.error).toBeUndefined();
  expect(run).toMatchObject({ state: 'Succeeded', result: { outcome: 'Deployed', serviceName: 'diabetes-node', model: 'diabetes-linear:1', image: 'diabetes-node:1' } });
  expect(run.steps.map((s: any) => `${s.name}:${s.state}`)).toEqual(['register:Succeeded', 'image:Succeeded', 'prepare:Succeeded', 'deploy:Succeeded', 'smokeTest:Succeeded', 'promote:Succeeded']);
  for (const s of run.steps) expect(Date.parse(s.endedTime)).toBeGreaterThanOrEqual(Date.parse(s.startedTime));

  const scored = await fetch(run.result.scoringUri, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data: [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]] }) });
  expect(scored.status).toBe(200);
  expect(((await scored.json()) as number[])[0]).toBeCloseTo(152.538047, 5);

  // The same manifest again → an update (blue/green), idempotent per Idempotency-Key.
  const post = () => env.request('POST', '/api/deployments?folder=staging/diabetes-node', manifest, { 'content-type': 'application/json', 'idempotency-key': 'update-1' });
  const a = await post();
  expect(a.status).toBe(202);
  expect(a.body).toMatchObject({ started: true, serviceName: 'diabetes-node' });
  const b = await post();
  expect(b.body).toMatchObject({ runId: a.body.runId, started: false });
  const upd = await waitRun(a.body.runId);
  expect(upd).toMatchObject({ state: 'Succeeded', result: { outcome: 'Updated', model: 'diabetes-linear:2', image: 'diabetes-node:2', scoringUri: run.result.scoringUri } });

  // A failing smoke test on update → RolledBack; version 2 keeps serving.
  const bad = { ...manifest, smoke_test: { ...manifest.smoke_test, expected_output: [1, 2] } };
  const c = await env.request('POST', '/api/deployments?folder=staging/diabetes-node', bad, { 'content-type': 'application/json' });
  const rb = await waitRun(c.body.runId);
  expect(rb.state).toBe('RolledBack');
  expect(rb.error.code).toBe('SmokeTestFailed');
  const svc = await env.request('GET', '/api/services/diabetes-node');
  expect(svc.body).toMatchObject({ state: 'Healthy', image: 'diabetes-node:2' });

  // Management API.
  const models = await env.request('GET', '/api/models/diabetes-linear');
  expect(models.body.value.map((m: any) => m.version)).toEqual([3, 2, 1]);
  expect((await env.request('GET', '/api/models/diabetes-linear/2')).body.id).toBe('diabetes-linear:2');
  expect((await env.request('GET', '/api/images/diabetes-node/2')).body.state).toBe('Succeeded');
  const list = await env.request('GET', '/api/services');
  const keys = await env.request('GET', '/api/services/diabetes-node/keys');
  expect(keys.body.primaryKey).toBeTruthy();
  expect(list.text).not.toContain(keys.body.primaryKey);
  const regen = await env.request('POST', '/api/services/diabetes-node/keys/regenerate', { keyType: 'Secondary' });
  expect(regen.body.primaryKey).toBe(keys.body.primaryKey);
  expect(regen.body.secondaryKey).not.toBe(keys.body.secondaryKey);
  expect((await env.request('DELETE', '/api/images/diabetes-node/2')).status).toBe(409);
  expect((await env.request('DELETE', '/api/models/diabetes-linear/2')).body.error.code).toBe('ModelInUse');
  expect((await env.request('DELETE', '/api/services/diabetes-node')).status).toBe(200);
  expect((await env.request('DELETE', '/api/images/diabetes-node/2')).status).toBe(200);
  expect((await env.request('DELETE', '/api/models/diabetes-linear/2')).status).toBe(200);
  expect((await env.request('GET', '/api/services/diabetes-node')).status).toBe(404);
}, 180_000);

test('bad input over HTTP: malformed, unknown field, missing file, traversal, unknown target', async () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
  const send = (body: unknown, q = '?folder=incoming/nothing-here') => env.request('POST', `/api/deployments${q}`, body, { 'content-type': 'application/json' });
  const malformed = await env.request('POST', '/api/deployments', '{"model": ', { 'content-type': 'application/json' });
  expect(malformed.status).toBe(400);
  expect(malformed.body.error.code).toBe('ManifestMalformed');
  const unknown = await send({ ...manifest, colour: 'red' });
  expect(unknown.body.error).toMatchObject({ code: 'InvalidManifest', message: expect.stringContaining('colour: unknown field') });
  const missing = await send(manifest);
  expect(missing.status).toBe(404);
  expect(missing.body.error.code).toBe('ManifestFileMissing');
  const trav = await send({ ...manifest, model: { ...manifest.model, files: ['../../etc/passwd'] } });
  expect(trav.body.error.code).toBe('InvalidPath');
  expect((await send(manifest, '?folder=../x')).body.error.code).toBe('InvalidPath');
  expect((await send({ ...manifest, target: 'gke' })).body.error.code).toBe('UnknownTarget');
  expect((await send({ ...manifest, service: { name: 'Bad_Name' } })).body.error.code).toBe('InvalidServiceName');

  // Sources: no SAS (it would reach run history), no other account, none of the app's system containers.
  const withSource = (source: string) => ({ ...manifest, model: { ...manifest.model, files: [{ path: 'model.json', source }] } });
  const sas = await send(withSource(`${storage.blobService.url}/staging/m/model.json?sv=2022-11-02&sig=SECRETSIG`));
  expect(sas.status).toBe(400);
  expect(sas.body.error).toMatchObject({ code: 'SasNotAllowed', message: expect.stringContaining('model.files[0].source') });
  expect(sas.text).not.toContain('SECRETSIG');
  const foreign = await send(withSource('https://someoneelse.blob.core.windows.net/staging/m/model.json'));
  expect(foreign.status).toBe(400);
  expect(foreign.body.error.code).toBe('ForeignStorageAccount');
  for (const container of ['azure-webjobs-secrets', 'azure-webjobs-hosts', 'batch-pools', 'modeldeployflow-large']) {
    const sys = await send(withSource(`${container}/host.json`));
    expect(sys.status).toBe(400);
    expect(sys.body.error).toMatchObject({ code: 'ContainerNotAllowed', message: expect.stringContaining('model.files[0].source') });
  }
  const folder = await send(manifest, '?folder=azure-webjobs-secrets/modeldeployflow');
  expect(folder.body.error).toMatchObject({ code: 'ContainerNotAllowed', message: expect.stringContaining('folder') });
});

/** Blob and Service Bus triggers start orchestrations through the durable client input binding (as in Azure). */
test('blob upload → Succeeded run (deploy.json written last)', async () => {
  const etag = await uploadFolder('diabetes-blob', { ...exampleFiles(), 'deploy.json': JSON.stringify({ ...JSON.parse(exampleFiles()['deploy.json'].toString()), service: { name: 'diabetes-blob' } }) });
  const run = await waitRun(runIdFor('blob', `incoming/diabetes-blob/deploy.json@${etag}`));
  expect(run).toMatchObject({ state: 'Succeeded', result: { outcome: 'Deployed', serviceName: 'diabetes-blob' } });
  expect((await env.request('DELETE', '/api/services/diabetes-blob')).status).toBe(200);
}, 120_000);

test('Service Bus: a failing promotion policy registers without deploying; the same event twice → one run', async () => {
  const c = await storage.ensureContainer('outputs');
  await c.getBlockBlobClient('run-7/model.json').uploadData(fs.readFileSync(path.join(EXAMPLE, 'model.json')));
  const q = await storage.ensureQueue('training-completed');
  const msg = { model_name: 'diabetes-sb', training_run_id: 'run-7', artifacts: ['outputs/run-7/model.json'], metrics: { r2: 0.33 }, promotion: { min_metrics: { r2: 0.5 } }, deploy: { image: { runtime: 'node', entry_script: { path: 'score.js', source: 'staging/diabetes-node/score.js' } }, target: 'local' } };
  await q.sendMessage(JSON.stringify(msg));
  await q.sendMessage(JSON.stringify(msg)); // the same event twice → one run
  const runId = runIdFor('servicebus', 'training:diabetes-sb:run-7');
  const run = await waitRun(runId);
  expect(run).toMatchObject({ state: 'NotPromoted', error: { code: 'PromotionPolicyNotMet' }, result: { model: 'diabetes-sb:1', promotion: { promote: false } } });
  expect(run.error.message).toContain('r2 = 0.33 is below the minimum 0.5');
  expect((await env.request('GET', '/api/models/diabetes-sb')).body.value.length).toBe(1);

}, 180_000);

test('Service Bus: a passing policy deploys, then the batch scoring the message asked for runs on the new model', async () => {
  const out = await storage.ensureContainer('outputs');
  await out.getBlockBlobClient('run-8/model.json').uploadData(fs.readFileSync(path.join(EXAMPLE, 'model.json')));
  // Batch entry script (run(mini_batch) over JSONL rows) and inputs.
  const scripts = await storage.ensureContainer('staging');
  await scripts.getBlockBlobClient('diabetes-node/score.js').uploadData(fs.readFileSync(path.join(EXAMPLE, 'score.js')));
  const batchScript = `'use strict';
const fs = require('fs'); const path = require('path');
let m;
function init() { const d = process.env.AZUREML_MODEL_DIR; m = JSON.parse(fs.readFileSync(d.endsWith('.json') ? d : path.join(d, 'model.json'), 'utf8')); }
function run(rows) { return rows.map((r) => JSON.stringify({ id: r.id, n: r.x.length })); }
module.exports = { init, run };
`;
  await scripts.getBlockBlobClient('diabetes-batch/batch_score.js').uploadData(Buffer.from(batchScript));
  const data = await storage.ensureContainer('sb-batch-in');
  const rows = Array.from({ length: 12 }, (_, i) => JSON.stringify({ id: i, x: [0.01 * i, 0.02, 0.03] })).join('\n') + '\n';
  await data.getBlockBlobClient('rows/part-0.jsonl').uploadData(Buffer.from(rows));
  const msg = {
    model_name: 'diabetes-sbb',
    training_run_id: 'run-8',
    artifacts: ['outputs/run-8/model.json'],
    metrics: { r2: 0.6 },
    promotion: { min_metrics: { r2: 0.5 } },
    deploy: { image: { runtime: 'node', entry_script: { path: 'score.js', source: 'staging/diabetes-node/score.js' } }, target: 'local', service: { name: 'diabetes-sbb' } },
    batch: {
      entry_script: 'batch_score.js',
      source_directory: 'staging/diabetes-batch',
      runtime: 'node',
      inputs: { container: 'sb-batch-in', prefix: 'rows/' },
      input_kind: 'tabular',
      mini_batch_size: '5 rows',
      node_count: 1,
      process_count_per_node: 1,
      output: { container: 'sb-batch-out', prefix: 'scores/' },
    },
  };
  await (await storage.ensureQueue('training-completed')).sendMessage(JSON.stringify(msg));
  const run = await waitRun(runIdFor('servicebus', 'training:diabetes-sbb:run-8'), 120_000);
  expect(run.state).toBe('Succeeded');
  expect(run.result.batch.runId).toBeTruthy();
  const batch = await waitRun(run.result.batch.runId, 120_000);
  expect(batch.kind).toBe('batch');
  expect(JSON.stringify(batch)).toContain('diabetes-sbb:1');
  expect(batch.state).toBe('Succeeded');
  expect(batch.counts.items).toMatchObject({ total: 12, succeeded: 12, failed: 0 });
}, 300_000);

test('bad input on the event triggers: non-JSON message dead-lettered with the reason; bad blob manifest reported beside it', async () => {
  const q = await storage.ensureQueue('training-completed');
  await q.sendMessage('this is not json');
  const dead = await storage.ensureQueue('training-completed-deadletter');
  const deadline = Date.now() + 60_000;
  let reason = '';
  while (!reason && Date.now() < deadline) {
    const { receivedMessageItems } = await dead.receiveMessages();
    for (const m of receivedMessageItems) if (m.messageText.includes('not json')) reason = JSON.parse(m.messageText).deadLetterErrorDescription;
    if (!reason) await new Promise((r) => setTimeout(r, 300));
  }
  expect(reason).toMatch(/not JSON/);

  // A bad batch section is rejected when the message arrives: dead-lettered with the reason, nothing registered.
  const outputs = await storage.ensureContainer('outputs');
  await outputs.getBlockBlobClient('run-9/model.json').uploadData(fs.readFileSync(path.join(EXAMPLE, 'model.json')));
  await q.sendMessage(JSON.stringify({ model_name: 'diabetes-badbatch', training_run_id: 'run-9', artifacts: ['outputs/run-9/model.json'], batch: { entry_script: 'b.js', inputs: { container: 'in', prefix: 'x/' }, node_count: 0 } }));
  let batchReason = '';
  const until9 = Date.now() + 60_000;
  while (!batchReason && Date.now() < until9) {
    const { receivedMessageItems } = await dead.receiveMessages({ numberOfMessages: 32 });
    for (const m of receivedMessageItems) if (m.messageText.includes('diabetes-badbatch')) batchReason = JSON.parse(m.messageText).deadLetterErrorDescription;
    if (!batchReason) await new Promise((r) => setTimeout(r, 300));
  }
  expect(batchReason).toMatch(/batch: .*node_count/);
  expect((await env.request('GET', '/api/models/diabetes-badbatch')).status).toBe(404);

  await uploadFolder('broken', { 'deploy.json': '{"model": {"files": ["m.json"]}, "image": {"runtime": "node", "entry_script": "score.js"}, "extra": 1}' });
  const report = storage.container('incoming').getBlockBlobClient('broken/deploy.error.json');
  const until = Date.now() + 30_000;
  while (!(await report.exists()) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  const body = JSON.parse((await report.downloadToBuffer()).toString());
  expect(body.error).toMatchObject({ code: 'InvalidManifest', message: expect.stringContaining('extra: unknown field') });
}, 120_000);

test('multipart upload deploys; idempotent replay; refused uploads cleaned; oversize → 413; stale hold taken over; deleting → 409', async () => {
  const files = exampleFiles();
  const manifest = { ...JSON.parse(files['deploy.json'].toString()), service: { name: 'diabetes-upload' } };
  const form = new FormData();
  form.append('manifest', JSON.stringify(manifest));
  for (const p of ['model.json', 'score.js', 'package.json']) form.append(p, new Blob([files[p]]), p);
  const res = await fetch(`${env.baseUrl}/api/deployments`, { method: 'POST', body: form, headers: { 'idempotency-key': 'upload-1' } });
  expect(res.status).toBe(202);
  const body = (await res.json()) as { runId: string };
  const run = await waitRun(body.runId);
  expect(run).toMatchObject({ state: 'Succeeded', result: { serviceName: 'diabetes-upload' } });

  // The same Idempotency-Key again: the original 202 for the same request; another request with it is refused
  // (422 IdempotencyKeyReused), and the run's uploaded files are not overwritten.
  const uploadedModel = () => storage.container('uploads').getBlockBlobClient(`${body.runId}/model.json`).downloadToBuffer();
  const replay = await fetch(`${env.baseUrl}/api/deployments`, { method: 'POST', body: form, headers: { 'idempotency-key': 'upload-1' } });
  expect(replay.status).toBe(202);
  expect(await replay.json()).toMatchObject({ runId: body.runId, started: false });
  const again = new FormData();
  again.append('manifest', JSON.stringify(manifest));
  again.append('model.json', new Blob([Buffer.from('{"other": true}')]), 'model.json');
  const reused = await fetch(`${env.baseUrl}/api/deployments`, { method: 'POST', body: again, headers: { 'idempotency-key': 'upload-1' } });
  expect(reused.status).toBe(422);
  expect(((await reused.json()) as any).error.code).toBe('IdempotencyKeyReused');
  expect((await uploadedModel()).equals(files['model.json'])).toBe(true);

  // A refused multipart request (a referenced file is not in the upload) leaves nothing under uploads/<runId>/.
  const partial = new FormData();
  partial.append('manifest', JSON.stringify(manifest));
  partial.append('model.json', new Blob([files['model.json']]), 'model.json');
  const refused = await fetch(`${env.baseUrl}/api/deployments`, { method: 'POST', body: partial, headers: { 'idempotency-key': 'upload-partial' } });
  expect(refused.status).toBe(404);
  expect(((await refused.json()) as any).error.code).toBe('ManifestFileMissing');
  const left: string[] = [];
  for await (const b of storage.container('uploads').listBlobsFlat({ prefix: `${runIdFor('http', 'upload-partial')}/` })) left.push(b.name);
  expect(left).toEqual([]);

  const big = new FormData();
  big.append('manifest', JSON.stringify(manifest));
  big.append('model.json', new Blob([Buffer.alloc(300 * 1024, 1)]), 'model.json');
  const tooBig = await fetch(`${env.baseUrl}/api/deployments`, { method: 'POST', body: big });
  expect(tooBig.status).toBe(413);
  expect(((await tooBig.json()) as any).error.code).toBe('PayloadTooLarge');

  // A hold by a run that does not run (crashed, terminated, purged) is stale: the next deployment takes over.
  const registry = new ServiceRegistry(storage);
  await registry.beginDeployment({ name: 'diabetes-upload', runId: 'dead-run', target: 'local', image: 'x:1', config: deployConfigFor({ kind: 'local' }) });
  const takeover = await fetch(`${env.baseUrl}/api/deployments`, { method: 'POST', body: form });
  expect(takeover.status).toBe(202);
  const taken = await waitRun(((await takeover.json()) as { runId: string }).runId);
  expect(taken).toMatchObject({ state: 'Succeeded', result: { outcome: 'Updated', serviceName: 'diabetes-upload' } });

  // A service being deleted → 409 ServiceDeleting, nothing uploaded.
  await registry.beginDelete('diabetes-upload');
  const deleting = await fetch(`${env.baseUrl}/api/deployments`, { method: 'POST', body: form, headers: { 'idempotency-key': 'upload-deleting' } });
  expect(deleting.status).toBe(409);
  expect(((await deleting.json()) as any).error.code).toBe('ServiceDeleting');
  for await (const b of storage.container('uploads').listBlobsFlat({ prefix: `${runIdFor('http', 'upload-deleting')}/` })) left.push(b.name);
  expect(left).toEqual([]);
  expect((await env.request('DELETE', '/api/services/diabetes-upload')).status).toBe(200);
}, 180_000);

test('PATCH a model: tags are mutable, properties add-only, bad bodies are clear 400s', async () => {
  const { ModelRegistry } = await import('../../shared/registry/models');
  await new ModelRegistry(storage).register({ name: 'patchme', files: [{ path: 'm.json', content: Buffer.from('{}') }], tags: { stage: 'dev' }, properties: { owner: 'ana' }, source: { kind: 'http', eventId: 'patch-1' } });
  const r = await env.request('PATCH', '/api/models/patchme/1', { tags: { stage: 'prod', team: 'ml' } });
  expect(r.status).toBe(200);
  expect(r.body.tags).toEqual({ stage: 'prod', team: 'ml' });
  const removed = await env.request('PATCH', '/api/models/patchme/1', { remove_tags: ['team'], properties: { dataset: 'diabetes' } });
  expect(removed.body.tags).toEqual({ stage: 'prod' });
  expect(removed.body.properties).toMatchObject({ owner: 'ana', dataset: 'diabetes' });
  const immutable = await env.request('PATCH', '/api/models/patchme/1', { properties: { owner: 'bob' } });
  expect(immutable.status).toBe(409);
  expect(immutable.body.error.code).toBe('PropertyImmutable');
  expect((await env.request('PATCH', '/api/models/patchme/1', { tag: { x: 'y' } })).body.error.message).toContain('tag: unknown field');
  expect((await env.request('PATCH', '/api/models/patchme/1', '{oops')).body.error.code).toBe('InvalidJson');
  expect((await env.request('PATCH', '/api/models/patchme/9', { tags: { a: 'b' } })).status).toBe(404);
});

test('a lone .onnx deploys with defaults once its folder has settled; one followed by a deploy.json does not', async () => {
  const onnx = fs.readFileSync(path.join(__dirname, '../../examples/models/diabetes-onnx/model.onnx'));
  const c = await storage.ensureContainer('incoming');
  const lone = await c.getBlockBlobClient('lonely/model.onnx').uploadData(onnx);
  const loneRun = runIdFor('blob', `incoming/lonely/model.onnx@${String(lone.etag).replace(/"/g, '')}`);
  const run = await waitRun(loneRun, 60_000);
  expect(JSON.stringify(run.error ?? null) + run.state).toBe('null' + 'Succeeded');
  expect(run.result.serviceName).toBe('lonely');

  // The documented order: model first, deploy.json last (within the settle time) → only the manifest's run.
  const first = await c.getBlockBlobClient('withmanifest/model.onnx').uploadData(onnx);
  const skippedRun = runIdFor('blob', `incoming/withmanifest/model.onnx@${String(first.etag).replace(/"/g, '')}`);
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '../../examples/models/diabetes-onnx/deploy.json'), 'utf8'));
  const m = await c.getBlockBlobClient('withmanifest/deploy.json').uploadData(Buffer.from(JSON.stringify({ ...manifest, service: { name: 'withmanifest' } })));
  const manifestRun = await waitRun(runIdFor('blob', `incoming/withmanifest/deploy.json@${String(m.etag).replace(/"/g, '')}`), 60_000);
  expect(manifestRun.state).toBe('Succeeded');
  // Whether the .onnx trigger fired before the manifest landed (then its settle wait skips) or after (then it never
  // waits): after the settle time, no default deployment exists.
  await new Promise((r) => setTimeout(r, 3000));
  const settle = await env.status(`${skippedRun}-settle`);
  if (settle) expect(settle.output).toMatchObject({ deployed: false });
  expect((await env.request('GET', `/api/runs/${skippedRun}`)).status).toBe(404);
}, 180_000);

