/**
 * A lone `.onnx` (deployed with defaults once its folder has settled) claims its service at the door like every
 * other start: a service another accepted deployment holds refuses it with 409 `ServiceBusy`, recorded beside the
 * model in `deploy.error.json` as for a blob manifest — no run starts (it used to start and fail at `prepare`).
 * Once the service is free, the same folder deploys. Run `npm run build` first (the host loads the app from dist/).
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { storageFromConnectionString, type StorageClients } from '../../shared/storage';
import { runIdFor } from '../../shared/deploy/run-status';
import { ServiceRegistry } from '../../shared/registry/services';
import { waitRun as waitRunOf } from '../helpers/runs';

const ONNX = fs.readFileSync(path.join(__dirname, '../../examples/models/diabetes-onnx/model.onnx'));
let env: TestEnvironment;
let storage: StorageClients;

beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-lone-claim-', settings: { LONE_ONNX_SETTLE_SECONDS: '1' }, pollIntervalMs: 100 });
  storage = storageFromConnectionString(env.connectionString);
}, 120_000);

afterAll(async () => {
  await env?.stop();
});

const waitRun = (runId: string, timeoutMs = 120_000): Promise<any> => waitRunOf(env, runId, timeoutMs);

test('a lone .onnx for a service another accepted deployment holds → deploy.error.json with ServiceBusy, no run; once free it deploys', async () => {
  const services = new ServiceRegistry(storage);
  // The door claim of an accepted request whose run has not started yet (it is still receiving its files).
  await services.claim('lone-busy', 'deploy-http-still-uploading', async () => false);
  const incoming = await storage.ensureContainer('incoming');
  const written = await incoming.getBlockBlobClient('lone-busy/model.onnx').uploadData(ONNX);
  const etag = String(written.etag).replace(/"/g, '');
  const runId = runIdFor('blob', `incoming/lone-busy/model.onnx@${etag}`);

  // The settle run starts once the poller has seen the blob; then it waits 1 s, checks the folder and claims.
  const until = Date.now() + 60_000;
  while (!(await env.status(`${runId}-settle`)) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  const settle = await env.waitFor(`${runId}-settle`, { timeoutMs: 60_000 });
  expect(settle.runtimeStatus).toBe('Completed');
  expect(settle.output).toMatchObject({ deployed: false, error: { code: 'ServiceBusy' } });
  const report = JSON.parse((await incoming.getBlockBlobClient('lone-busy/deploy.error.json').downloadToBuffer()).toString());
  expect(report).toMatchObject({ error: { code: 'ServiceBusy', message: expect.stringContaining('deploy-http-still-uploading') }, manifest: 'incoming/lone-busy/model.onnx', etag });
  expect((await env.request('GET', `/api/runs/${runId}`)).status).toBe(404);
  expect((await env.request('GET', '/api/services/lone-busy')).status).toBe(404);

  // The holder goes away: the same model, uploaded again, deploys with defaults (its refusal report is no "other file").
  await services.releaseClaim('lone-busy', 'deploy-http-still-uploading');
  const again = await incoming.getBlockBlobClient('lone-busy/model.onnx').uploadData(ONNX);
  const nextRun = runIdFor('blob', `incoming/lone-busy/model.onnx@${String(again.etag).replace(/"/g, '')}`);
  const deadline = Date.now() + 60_000;
  while ((await env.request('GET', `/api/runs/${nextRun}`)).status === 404 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  const run = await waitRun(nextRun);
  expect(JSON.stringify(run.error ?? null) + run.state).toBe('null' + 'Succeeded');
  expect(run.result.serviceName).toBe('lone-busy');
  expect((await env.request('DELETE', '/api/services/lone-busy')).status).toBe(200);
}, 300_000);
