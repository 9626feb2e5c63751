/**
 * Day-2 deployments through the HTTP API on the local host (Azurite + host + local target + runtime): deploying what
 * is registered already (a model version, a built image) without registering or building again, and a script that
 * needs no model (the seed's @rawhttp example, unmodified) deployed without a placeholder model file.
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { waitRun } from '../helpers/runs';

const EXAMPLE = path.join(__dirname, '../../examples/models/diabetes-node');
const RAWHTTP = path.join(__dirname, '../../examples/runtime/python/rawhttp/score.py');
const ROW = [0.038076, 0.05068, 0.061696, 0.021872, -0.044223, -0.034821, -0.043401, -0.002592, 0.019907, -0.017646];
let env: TestEnvironment;
let storage: StorageClients;

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-update-', settings: { SMOKE_TEST_LIVENESS_TIMEOUT_MS: '30000' }, pollIntervalMs: 100 });
  storage = storageFromConnectionString(env.connectionString);
  const up = await storage.ensureContainer('staging');
  for (const f of fs.readdirSync(EXAMPLE)) await up.getBlockBlobClient(`upd/${f}`).uploadData(fs.readFileSync(path.join(EXAMPLE, f)));
  await up.getBlockBlobClient('rawhttp/score.py').uploadData(fs.readFileSync(RAWHTTP));
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

const manifest = (): any => JSON.parse(fs.readFileSync(path.join(EXAMPLE, 'deploy.json'), 'utf8'));
const post = (m: unknown, folder = 'staging/upd') => env.request('POST', `/api/deployments?folder=${folder}`, m, { 'content-type': 'application/json' });

async function deploy(m: unknown, folder?: string): Promise<any> {
  const r = await post(m, folder);
  expect([r.status, r.body.error]).toEqual([202, undefined]);
  const run = await waitRun(env, r.body.runId, 120_000);
  expect(run.error).toBeUndefined();
  expect(run.state).toBe('Succeeded');
  return run;
}

const score = async (uri: string) => {
  const r = await fetch(uri, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data: [ROW] }) });
  return { status: r.status, body: (await r.json()) as unknown };
};

test('deploy a registered model version and a built image: no new model version, no new image; bad references refused before a run', async () => {
  const m = manifest();
  m.service = { name: 'upd-first' };
  const first = await deploy(m);
  const [imageName, imageVersion] = String(first.result.image).split(':');
  const modelId = String(first.result.model);
  const images = async () => ((await env.request('GET', '/api/images')).body.value as Array<{ id: string }>).map((i) => i.id).sort();
  const models = async () => (await env.request('GET', `/api/models/${modelId.split(':')[0]}`)).body as unknown;
  const imagesBefore = await images();
  const modelsBefore = JSON.stringify(await models());

  // Another service from the built image: nothing registered, nothing built; the steps say what was reused.
  const fromImage = await deploy({ model: { id: modelId }, image: `${imageName}:${imageVersion}`, target: { kind: 'local', num_replicas: 1 }, service: { name: 'upd-from-image' }, smoke_test: m.smoke_test });
  expect(fromImage.result).toMatchObject({ image: first.result.image, model: modelId, outcome: 'Deployed' });
  expect(fromImage.steps.find((s: any) => s.name === 'register').detail).toBe(`existing ${modelId}`);
  expect(fromImage.steps.find((s: any) => s.name === 'image').detail).toBe(`existing ${first.result.image}`);
  expect(await images()).toEqual(imagesBefore);
  expect(JSON.stringify(await models())).toBe(modelsBefore);
  const served = await score(fromImage.result.scoringUri);
  expect(served.status).toBe(200);
  expect(served).toEqual(await score(first.result.scoringUri));

  // Only the image named (its model is the one it embeds).
  const imageOnly = await deploy({ image: `${imageName}:${imageVersion}`, target: { kind: 'local', num_replicas: 1 }, service: { name: 'upd-image-only' } });
  expect(imageOnly.result).toMatchObject({ image: first.result.image, model: modelId });
  expect(await images()).toEqual(imagesBefore);

  // A registered model with a new image built around it: a new image version, still no new model version.
  const fromModel = await deploy({ ...m, model: { id: modelId }, service: { name: 'upd-from-model' } });
  expect(fromModel.result.model).toBe(modelId);
  expect(fromModel.result.image).not.toBe(first.result.image);
  expect(JSON.stringify(await models())).toBe(modelsBefore);

  // Refused at the door, before a run or a claim: unknown versions, a mismatched model, model.files with an image.
  for (const [body, status, code] of [
    [{ model: { id: `${modelId.split(':')[0]}:999` }, image: m.image, service: { name: 'upd-bad' } }, 404, 'ModelNotFound'],
    [{ image: `${imageName}:999`, service: { name: 'upd-bad' } }, 404, 'ImageNotFound'],
    [{ model: { id: 'no-such-model:1' }, image: `${imageName}:${imageVersion}`, service: { name: 'upd-bad' } }, 404, 'ModelNotFound'],
    [{ model: { id: `${modelId.split(':')[0]}:${fromModel.result.model.split(':')[1]}`, files: ['model.json'] }, image: m.image, service: { name: 'upd-bad' } }, 400, 'InvalidManifest'],
    [{ model: { files: ['model.json'] }, image: `${imageName}:${imageVersion}`, service: { name: 'upd-bad' } }, 400, 'InvalidManifest'],
    [{ image: 'Bad_Name:1', service: { name: 'upd-bad' } }, 400, 'InvalidImageName'],
  ] as const) {
    const r = await post(body);
    expect([r.status, r.body.error?.code]).toEqual([status, code]);
  }
  expect((await env.request('GET', '/api/services/upd-bad')).status).toBe(404);
}, 420_000);

test('an image embedding another model than model.id → 400 ImageModelMismatch', async () => {
  const m = manifest();
  const other = await deploy({ ...m, model: { ...m.model, name: 'upd-other' }, image: { ...m.image, name: 'upd-other' }, service: { name: 'upd-other' } });
  const images = (await env.request('GET', '/api/images')).body.value as Array<{ id: string; models: string[] }>;
  const foreign = images.find((i) => !i.models.includes(String(other.result.model)))!;
  const r = await post({ model: { id: other.result.model }, image: foreign.id, service: { name: 'upd-bad2' } });
  expect([r.status, r.body.error?.code]).toEqual([400, 'ImageModelMismatch']);
  expect(r.body.error.message).toContain(String(other.result.model));
}, 240_000);

test('the seed @rawhttp script (no model) deploys without a model file and answers raw bytes', async () => {
  const sample = Buffer.from('abc\u0001');
  const run = await deploy(
    {
      image: { name: 'rawhttp', runtime: 'python', entry_script: 'score.py' },
      target: { kind: 'local', num_replicas: 1 },
      service: { name: 'rawhttp' },
      smoke_test: { sample_base64: sample.toString('base64'), expected_output: Buffer.from(sample).reverse().toString('base64'), expected_output_format: 'base64' },
    },
    'staging/rawhttp',
  );
  expect(run.result.model).toBeUndefined();
  expect(run.steps.find((s: any) => s.name === 'register').detail).toBe('no model (the script needs none)');
  const image = (await env.request('GET', `/api/images/${String(run.result.image).replace(':', '/')}`)).body;
  expect(image.models).toEqual([]);
  const r = await fetch(run.result.scoringUri, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from('hello') });
  expect(r.status).toBe(200);
  expect(Buffer.from(await r.arrayBuffer()).toString()).toBe('olleh');
  // The onnx runtime serves a model: a manifest without one is refused.
  const onnx = await post({ image: { name: 'x', runtime: 'onnx' }, service: { name: 'upd-onnx' } });
  expect([onnx.status, onnx.body.error?.code]).toEqual([400, 'ModelFilesMissing']);
}, 240_000);

test('PATCH /api/services/{name}: replicas and concurrency → a run of the same image in the other slot; tags and description recorded; bad input, missing service, busy service', async () => {
  const m = manifest();
  m.service = { name: 'upd-patch' };
  const first = await deploy(m);
  const before = (await env.request('GET', '/api/services/upd-patch')).body;
  const patch = (body: unknown, name = 'upd-patch') => env.request('PATCH', `/api/services/${name}`, body, { 'content-type': 'application/json' });

  const r = await patch({ num_replicas: 2, replica_max_concurrent_requests: 2, tags: { stage: 'blue-green' }, description: 'two replicas' });
  expect(r.status).toBe(202);
  expect(r.body).toMatchObject({ serviceName: 'upd-patch', image: first.result.image, started: true });
  // While it runs the service is held: another update is refused at the door.
  const busy = await patch({ num_replicas: 3 });
  expect([busy.status, busy.body.error?.code]).toEqual([409, expect.stringMatching(/ServiceBusy|DeploymentInProgress/)]);
  const run = await waitRun(env, r.body.runId, 120_000);
  expect([run.state, run.error]).toEqual(['Succeeded', undefined]);
  expect(run.result).toMatchObject({ outcome: 'Updated', image: first.result.image });
  expect(run.steps.find((s: any) => s.name === 'image').detail).toBe(`existing ${first.result.image}`);
  const after = (await env.request('GET', '/api/services/upd-patch')).body;
  expect(after.activeSlot).not.toBe(before.activeSlot);
  expect(after).toMatchObject({ image: first.result.image, tags: { stage: 'blue-green' }, description: 'two replicas', config: { numReplicas: 2, autoscaleEnabled: false, replicaMaxConcurrentRequests: 2 } });
  expect((await score(after.scoringUri)).status).toBe(200);
  const logs = (await env.request('GET', '/api/services/upd-patch/logs?tail=200')).body.lines.join('\n');
  expect(logs).toContain('[replica 1]');

  for (const [body, code] of [
    [{}, 'InvalidServiceUpdate'],
    [{ replicas: 2 }, 'InvalidServiceUpdate'],
    [{ num_replicas: 0 }, 'InvalidServiceUpdate'],
    [{ num_replicas: 2, autoscale_enabled: true }, 'InvalidServiceUpdate'],
    [{ auth_enabled: true, token_auth_enabled: true }, 'AuthModesExclusive'],
    [[1], 'InvalidServiceUpdate'],
  ] as const) {
    const b = await patch(body);
    expect([JSON.stringify(body), b.status, b.body.error?.code]).toEqual([JSON.stringify(body), 400, code]);
  }
  expect((await patch({ image: 'diabetes-node:999' })).body.error?.code).toBe('ImageNotFound');
  const missing = await patch({ num_replicas: 2 }, 'upd-nobody');
  expect([missing.status, missing.body.error?.code]).toEqual([404, 'ServiceNotFound']);
}, 300_000);
