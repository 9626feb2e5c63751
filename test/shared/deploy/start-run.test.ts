import { startAzurite, type AzuriteInstance } from '../../../local/azurite';
import { storageFromConnectionString, type StorageClients } from '../../../shared/storage';
import {
  assertFilesExist,
  isLoneOnnx,
  runFromBlobManifest,
  runFromLoneOnnx,
  runFromTrainingMessage,
  startDeployRun,
  type RunClient,
} from '../../../shared/deploy/start-run';
import { runView, StepTracker } from '../../../shared/deploy/run-status';

let azurite: AzuriteInstance;
let storage: StorageClients;
beforeAll(async () => {
  azurite = await startAzurite();
  storage = storageFromConnectionString(azurite.connectionString);
});
afterAll(async () => {
  await azurite?.stop();
});

const manifest = JSON.stringify({ model: { files: ['model.json'] }, image: { runtime: 'node', entry_script: 'score.js' } });

test('the same event → the same run id → one orchestration', async () => {
  const a = runFromBlobManifest('demo', 'deploy.json', manifest, 'etag-1');
  const b = runFromBlobManifest('demo', 'deploy.json', manifest, 'etag-1');
  const c = runFromBlobManifest('demo', 'deploy.json', manifest, 'etag-2');
  expect(a.runId).toBe(b.runId);
  expect(c.runId).not.toBe(a.runId);
  expect(a.input.files).toEqual({ model: [{ path: 'model.json', blob: 'incoming/demo/model.json' }], entryScript: { path: 'score.js', blob: 'incoming/demo/score.js' } });
  expect(a.input.manifest?.service.name).toBe('demo');

  const started: string[] = [];
  const statuses = new Map<string, { runtimeStatus: string }>();
  const client: RunClient = {
    startNew: async (_name, { instanceId }) => {
      started.push(instanceId);
      statuses.set(instanceId, { runtimeStatus: 'Pending' });
      return instanceId;
    },
    getStatus: async (id) => {
      const s = statuses.get(id);
      if (!s) throw new Error(`DurableClient error: Durable Functions extension replied with HTTP 404 response for ${id}`);
      return { instanceId: id, ...s };
    },
  };
  expect(await startDeployRun(client, a.runId, a.input)).toEqual({ runId: a.runId, started: true });
  expect(await startDeployRun(client, b.runId, b.input)).toEqual({ runId: a.runId, started: false });
  expect(started).toEqual([a.runId]);
});

test('training messages: one run per training run and model', () => {
  const msg = { model_name: 'm', training_run_id: 'r1', artifacts: ['outputs/r1/model.json?sig=SECRET'], metrics: { r2: 0.5 } };
  const a = runFromTrainingMessage(JSON.stringify(msg));
  const b = runFromTrainingMessage(msg);
  expect(a.runId).toBe(b.runId);
  expect(a.input.manifest).toBeUndefined();
  expect(a.input.training).toEqual({ trainingRunId: 'r1', metrics: { r2: 0.5 } });
  expect(JSON.stringify(a.input)).not.toContain('SECRET');
  expect(runFromTrainingMessage({ ...msg, training_run_id: 'r2' }).runId).not.toBe(a.runId);
});

test('lone ONNX detection and missing files', async () => {
  const c = await storage.ensureContainer('incoming');
  await c.getBlockBlobClient('solo/model.onnx').uploadData(Buffer.from('onnx'));
  expect(await isLoneOnnx(storage, 'solo', 'model.onnx')).toEqual({ lone: true });
  const run = runFromLoneOnnx('solo', 'model.onnx', 'e1');
  expect(run.input.manifest).toMatchObject({ target: 'local', image: { runtime: 'onnx' }, service: { name: 'solo' } });
  await assertFilesExist(storage, run.input);
  await c.getBlockBlobClient('solo/deploy.json').uploadData(Buffer.from(manifest));
  expect((await isLoneOnnx(storage, 'solo', 'model.onnx')).lone).toBe(false);
  const withScript = runFromBlobManifest('solo', 'deploy.json', manifest, 'e2');
  await expect(assertFilesExist(storage, withScript.input)).rejects.toMatchObject({ code: 'ManifestFileMissing', message: expect.stringContaining('model.json (incoming/solo/model.json)') });
});

test('run view: steps, current step, results and failures', () => {
  const t = new StepTracker();
  t.start('register', new Date('2026-01-01T00:00:00Z'));
  t.end('register', 'Succeeded', new Date('2026-01-01T00:00:01Z'), 'm:1');
  t.start('image', new Date('2026-01-01T00:00:01Z'));
  expect(runView({ instanceId: 'r', runtimeStatus: 'Running', customStatus: t.status })).toMatchObject({ state: 'Running', currentStep: 'image', steps: [{ name: 'register', state: 'Succeeded', detail: 'm:1' }, { name: 'image', state: 'Running' }] });
  expect(runView({ instanceId: 'r', runtimeStatus: 'Completed', output: { state: 'RolledBack', error: { code: 'SmokeTestFailed', message: 'x' }, serviceName: 's' } })).toMatchObject({
    state: 'RolledBack',
    error: { code: 'SmokeTestFailed' },
    result: { serviceName: 's' },
  });
  expect(runView({ instanceId: 'r', runtimeStatus: 'Failed', output: 'boom' })).toMatchObject({ state: 'Failed', error: { code: 'RunFailed', message: 'boom' } });
});
