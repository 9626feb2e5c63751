/**
 * The real `deployLoneOnnx` orchestrator (and the real `deployModel` it starts) on the local durable engine, with the
 * activities answered by the test: a lone `.onnx` that is no longer alone is skipped, a refused claim ends the wait
 * without a deployment run, a claimed one starts `deployModel` under the run id the event gave it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { startTestEnvironment, type TestEnvironment } from '../../local/testing';
import { scriptedActivities, type Answer, type Scenario } from '../helpers/scenarios';
import { DEPLOY, type ClaimLoneOnnxInput, type ClaimLoneOnnxOutput, type CheckLoneOnnxOutput, type DeployLoneOnnxInput, type DeployLoneOnnxResult, type DeployRunInput, type ImageSummary } from '../../shared/deploy/contract';
import type { RunView } from '../../shared/deploy/run-status';
import { runIdFor } from '../../shared/deploy/run-status';

/** One scenario per test, found by the instance id of the wait and of the deployment run it starts. */
const scenarios = new Map<string, Scenario>();
const overrides = scriptedActivities(
  [DEPLOY.checkLoneOnnx, DEPLOY.claimLoneOnnx, DEPLOY.registerModel, DEPLOY.createImage, DEPLOY.prepareDeployment, DEPLOY.deploySlot, DEPLOY.smokeTest, DEPLOY.promote, DEPLOY.publishEvent].map((a) => a.name),
  (_input, ctx) => scenarios.get(ctx.instanceId),
);

let env: TestEnvironment;
beforeAll(async () => {
  env = await startTestEnvironment({ tempWorkDir: 'mdf-orch-onnx-', pollIntervalMs: 100, activityOverrides: overrides });
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

const image: ImageSummary = { id: 'iris:1', name: 'iris', version: 1, state: 'Succeeded', runtime: 'onnx', models: ['iris:1'], imageRef: 'local/iris:1', contextBlob: 'images/iris/1.tar.gz' };

/** A first deployment of `iris` that works. */
function deploys(): Record<string, Answer> {
  return {
    [DEPLOY.registerModel.name]: () => ({ ok: true, value: { created: true, model: { id: 'iris:1', name: 'iris', version: 1, files: 1, bytes: 100 } } }),
    [DEPLOY.createImage.name]: () => ({ ok: true, value: { image } }),
    [DEPLOY.prepareDeployment.name]: () => ({ ok: true, value: { slot: 'blue', isUpdate: false } }),
    [DEPLOY.deploySlot.name]: () => ({ serviceName: 'iris', slot: 'blue', state: 'Healthy', scoringUri: 'http://127.0.0.1:1/blue/score', swaggerUri: '', healthUri: '' }),
    [DEPLOY.smokeTest.name]: () => ({ ok: true, checks: ['liveness'], swagger: 'absent' }),
    [DEPLOY.promote.name]: () => ({ name: 'iris', state: 'Healthy', image: 'iris:1', scoringUri: 'http://127.0.0.1:2/score', swaggerUri: '' }),
    [DEPLOY.publishEvent.name]: (e: { type: string }) => `event-${e.type}`,
  };
}

let seq = 0;
/** Start the wait for `incoming/iris/model.onnx` (no settling: the check runs at once) and let it end. */
async function loneOnnx(answers: Record<string, Answer>): Promise<{ result: DeployLoneOnnxResult; custom: { step?: string; why?: string }; names: string[]; calls: Scenario['calls']; runId: string }> {
  const n = ++seq;
  const runId = runIdFor('blob', `lone-onnx-test|${n}|${Date.now()}`);
  const run: unknown = {
    source: { kind: 'blob', eventId: `incoming/iris/model.onnx@etag-${n}`, location: 'incoming/iris/model.onnx' },
    model: { name: 'iris', files: [{ path: 'model.onnx' }], tags: {}, properties: {} },
    files: { model: [{ path: 'model.onnx', blob: 'incoming/iris/model.onnx' }] },
    manifest: { service: { name: 'iris', tags: {} }, image: { name: 'iris' }, target: 'local', deployConfig: { authEnabled: false } },
  };
  const input: DeployLoneOnnxInput = { folder: 'iris', onnxFile: 'model.onnx', settleSeconds: 0, runId, run: run as DeployRunInput };
  const waitId = `lone-onnx-${runId}`;
  const scenario: Scenario = { answers, calls: [] };
  scenarios.set(waitId, scenario);
  scenarios.set(runId, scenario);
  await env.startOrchestration(DEPLOY.loneOnnx.name, input, waitId);
  const s = await env.waitFor(waitId, { timeoutMs: 45_000 });
  expect(s.runtimeStatus).toBe('Completed');
  return { result: s.output as DeployLoneOnnxResult, custom: s.customStatus as { step?: string; why?: string }, names: scenario.calls.map((c) => c.name).filter((x) => x !== DEPLOY.publishEvent.name), calls: scenario.calls, runId };
}

test('still alone and claimed → the deployment run starts under the run id the event gave it and Succeeds', async () => {
  const { result, custom, names, calls, runId } = await loneOnnx({
    ...deploys(),
    [DEPLOY.checkLoneOnnx.name]: (): CheckLoneOnnxOutput => ({ lone: true }),
    [DEPLOY.claimLoneOnnx.name]: (): ClaimLoneOnnxOutput => ({ claimed: true }),
  });
  expect(result).toEqual({ deployed: true, runId });
  expect(custom.step).toBe('deploying');
  expect(names).toEqual([DEPLOY.checkLoneOnnx, DEPLOY.claimLoneOnnx, DEPLOY.registerModel, DEPLOY.createImage, DEPLOY.prepareDeployment, DEPLOY.deploySlot, DEPLOY.smokeTest, DEPLOY.promote].map((a) => a.name));
  // The folder check carries the run id (its step span is in the run's trace).
  expect(calls.find((c) => c.name === DEPLOY.checkLoneOnnx.name)!.input).toEqual({ folder: 'iris', onnxFile: 'model.onnx', runId });
  const claim = calls.find((c) => c.name === DEPLOY.claimLoneOnnx.name)!.input as ClaimLoneOnnxInput;
  expect(claim).toMatchObject({ folder: 'iris', onnxFile: 'model.onnx', runId, run: { manifest: { service: { name: 'iris' } } } });
  const r = await env.request('GET', `/api/runs/${runId}`);
  expect(r.status).toBe(200);
  expect(r.body as RunView).toMatchObject({ id: runId, state: 'Succeeded', result: { outcome: 'Deployed', serviceName: 'iris', model: 'iris:1', image: 'iris:1' } });
}, 60_000);

test('no longer alone once settled (its deploy.json came) → skipped: nothing is claimed or deployed', async () => {
  const { result, custom, names, runId } = await loneOnnx({
    ...deploys(),
    [DEPLOY.checkLoneOnnx.name]: (): CheckLoneOnnxOutput => ({ lone: false, why: 'incoming/iris/ has deploy.json' }),
  });
  expect(result).toEqual({ deployed: false, why: 'incoming/iris/ has deploy.json' });
  expect(custom).toMatchObject({ step: 'skipped', why: 'incoming/iris/ has deploy.json' });
  expect(names).toEqual([DEPLOY.checkLoneOnnx.name]);
  expect((await env.request('GET', `/api/runs/${runId}`)).status).toBe(404);
}, 60_000);

test('the claim is refused (the service is busy) → the wait ends with the refusal; no deployment run exists', async () => {
  const error = { code: 'DeploymentInProgress', message: 'Service iris is being deployed by run deploy-blob-x.' };
  const { result, custom, names, runId } = await loneOnnx({
    ...deploys(),
    [DEPLOY.checkLoneOnnx.name]: (): CheckLoneOnnxOutput => ({ lone: true }),
    [DEPLOY.claimLoneOnnx.name]: (): ClaimLoneOnnxOutput => ({ claimed: false, error }),
  });
  expect(result).toEqual({ deployed: false, why: `${error.code}: ${error.message}`, error });
  expect(custom).toMatchObject({ step: 'refused', why: `${error.code}: ${error.message}` });
  expect(names).toEqual([DEPLOY.checkLoneOnnx.name, DEPLOY.claimLoneOnnx.name]);
  expect((await env.request('GET', `/api/runs/${runId}`)).status).toBe(404);
}, 60_000);
